"""The phantom generator's controllable effects (radlang/ops/cohorts.py make_phantom): scanner shift, noise and blur per
site, an ordinal grade, a clinical stage; and unchanged files when those settings are absent."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

from radlang.compiler import compile_source
from radlang.ops.cohorts import PHANTOM_LATER, make_phantom

BASE = {"cases": 12, "effect": 1.0, "sites": 3, "site_shift": 0.0, "noise": 8.0, "size": [16, 16, 16], "spacing": [1.0, 1.0, 1.0]}


def generate(tmp_path, name, **kw):
    d = tmp_path / name
    return pd.read_csv(make_phantom({**BASE, **kw}, 3, str(d), "x")), d


def digests(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_new_settings_at_their_defaults_change_no_byte(tmp_path):
    old, d_old = generate(tmp_path, "old")
    _, d_new = generate(tmp_path, "new", **PHANTOM_LATER)
    assert list(old.columns) == ["case_id", "image", "mask", "malignant", "site", "age"]
    assert digests(d_old) == digests(d_new)


def background_mean(folder, row):
    img = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / row["image"]))).astype(float)
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / row["mask"]))) > 0
    return img[~mask].mean()


def test_site_effect_scales_the_scanner_offset(tmp_path):
    """site2 - site1 background: 25 HU x site_effect (the offsets table), up to the smooth tissue field's per-case mean
    (SD about 1 HU over a 16^3 volume) averaged over four cases per site."""
    for effect in (0.0, 2.0):
        m, d = generate(tmp_path, f"e{effect}", site_effect=effect)
        means = {s: np.mean([background_mean(d, r) for _, r in g.iterrows()]) for s, g in m.groupby("site")}
        assert abs(means["site2"] - means["site1"] - 25.0 * effect) < 3.0, means


def test_site_blur_smooths_the_later_sites(tmp_path):
    """Without noise, the voxel-to-voxel differences (texture) of site3 (blur SD 2 mm) are far smaller than site1's (none)."""
    m, d = generate(tmp_path, "blur", noise=0.0, site_blur=2.0)

    def roughness(row):
        a = sitk.GetArrayFromImage(sitk.ReadImage(str(d / row["image"]))).astype(float)
        return np.abs(np.diff(a, axis=2)).mean()

    r = {s: np.mean([roughness(row) for _, row in g.iterrows()]) for s, g in m.groupby("site")}
    assert r["site3"] < 0.5 * r["site1"] and r["site2"] < r["site1"], r


def test_grade_and_stage_columns(tmp_path):
    m, _ = generate(tmp_path, "gs", cases=24, effect=2.0, grades=3, stage_effect=3.0, size=[16, 16, 16])
    assert list(m.columns)[-2:] == ["grade", "stage"]
    assert m["grade"].value_counts().to_dict() == {1: 8, 2: 8, 3: 8}                   # equal-size groups of the latent severity
    assert m.groupby("malignant")["grade"].mean().diff().iloc[-1] > 0.8               # severity is `effect` higher when malignant
    assert m["stage"].between(1, 4).all()
    assert m.groupby("malignant")["stage"].mean().diff().iloc[-1] > 1.5               # stage_effect 3: about +3 before clipping


def test_grade_as_the_outcome_is_typed_multiclass():
    ok = compile_source('cohort c = phantom(30) { grades: 3, outcome: grade }\nfeatures f = pyradiomics(c.image, c.mask)\n'
                        'model m = logistic(f, target: c.outcome)\nvalidate v = evaluate(m) { cv: kfold(3) }', "<t>")
    assert ok.ok, [d.message for d in ok.diagnostics]
    assert next(s for s in ok.study.stages if s.name == "c").type.outcome == "multiclass"
    bad = compile_source("cohort c = phantom(30) { outcome: grade }\nfeatures f = pyradiomics(c.image, c.mask)\n"
                         "model m = logistic(f, target: c.outcome)\nvalidate v = evaluate(m) { cv: kfold(3) }", "<t>")
    assert "E306" in [d.code for d in bad.diagnostics]


def test_check_knows_the_grade_classes_the_generator_writes(tmp_path):
    """`radlang check` reads no phantom file: its class counts for a grade outcome must be the generator's own."""
    from types import SimpleNamespace

    from radlang.ops.cohorts import phantom_check_data

    m, _ = generate(tmp_path, "g31", cases=31, grades=3, outcome="grade", size=[16, 16, 16])
    facts = phantom_check_data(SimpleNamespace(params={"cases": 31, "grades": 3, "outcome": "grade"}), None, None, [], {})
    assert facts["classes"] == {str(g - 1): int(c) for g, c in sorted(m["grade"].value_counts().items())}
