"""Typed artefacts: every stage's output is a file under the out folder, listed in manifest.json with its type,
its stage and the sha256 of its bytes; tables hand on paths relative to the out folder."""

from __future__ import annotations

import hashlib
import json
import os

import pandas as pd
import pytest

from radlang.backends.executor import run_study
from radlang.compiler import compile_source

pytest.importorskip("sklearn")

SPEC = """study "artefacts" { seed: 3 }
cohort dev = dataset("breast_cancer") { stop: 120 }
features feats = tabular(dev) { columns: [mean_radius, mean_texture, mean_smoothness, mean_concavity] }
select keep = variance(feats) { min: 0.0 }
model clf = logistic(keep, target: dev.outcome) { C: 1.0 }
validate v = evaluate(clf) { cv: stratified_kfold(3), metrics: [auc] }
"""


@pytest.fixture(scope="module")
def run_out(tmp_path_factory):
    root = tmp_path_factory.mktemp("artefacts")
    spec = root / "study.rad"
    spec.write_text(SPEC)
    res = compile_source(SPEC, str(spec))
    assert res.ok, [d.message for d in res.diagnostics]
    run_study(res.study, out=root / "out", workers=1, quiet=True)
    return root / "out", res.study


def test_every_stage_has_a_typed_artefact(run_out):
    out, study = run_out
    manifest = json.loads((out / "manifest.json").read_text())
    by_stage = {}
    for a in manifest["artefacts"]:
        by_stage.setdefault(a["stage"], set()).add((a["path"], a["type"]))
    assert by_stage["dev"] == {("tables/dev.csv", "stage table (CSV)")}
    assert by_stage["feats"] == {("tables/feats.csv", "stage table (CSV)")}
    assert by_stage["keep"] == {("recipes/keep.json", "fitted-stage recipe (JSON)")}
    assert by_stage["clf"] == {("recipes/clf.json", "fitted-stage recipe (JSON)")}
    assert ("metrics/v.json", "metrics (JSON)") in by_stage["v"]
    assert ("models/v.skops", "fitted model (skops)") in by_stage["v"]
    assert {s.name for s in study.stages} <= set(by_stage)


def test_manifest_hashes_are_the_files_bytes(run_out):
    out, _ = run_out
    manifest = json.loads((out / "manifest.json").read_text())
    on_disk = sorted(os.path.relpath(os.path.join(r, f), out) for r, ds, fs in os.walk(out)
                     for f in fs if not f.startswith(".") and ".cache" not in r and f not in ("run.json", "manifest.json", "spec.rad"))
    assert sorted(a["path"] for a in manifest["artefacts"]) == on_disk
    for a in manifest["artefacts"]:
        data = (out / a["path"]).read_bytes()
        assert a["sha256"] == hashlib.sha256(data).hexdigest() and a["bytes"] == len(data)


def test_stage_tables_equal_the_values_later_stages_read(run_out):
    out, study = run_out
    feats = pd.read_csv(out / "tables" / "feats.csv", index_col=0)
    assert list(feats.columns) == ["mean_radius", "mean_texture", "mean_smoothness", "mean_concavity"]
    assert len(feats) == 120
    recipe = json.loads((out / "recipes" / "clf.json").read_text())
    assert recipe["op"] == "logistic" and recipe["params"]["C"] == 1.0 and recipe["fit_within"] == ["v"]


def test_paths_in_stage_tables_are_relative_to_the_out_folder(tmp_path):
    from types import SimpleNamespace

    from radlang.backends.artefacts import write_stage_table

    img = tmp_path / "data" / "c1_image.nii.gz"
    outside = tmp_path.parent / "elsewhere" / "c2_image.nii.gz"
    df = pd.DataFrame({"case_id": ["c1", "c2"], "image": [str(img), str(outside)], "note": ["a", "/not only paths"]})
    out = tmp_path / "out"
    out.mkdir()
    write_stage_table(SimpleNamespace(out=out), "cohort", df)
    back = pd.read_csv(out / "tables" / "cohort.csv")
    assert list(back["image"]) == [os.path.relpath(img, out), os.path.relpath(outside, out)]
    assert list(back["note"]) == ["a", "/not only paths"]      # not every value is an absolute path: left as it is
    assert str(tmp_path) not in (out / "tables" / "cohort.csv").read_text()
