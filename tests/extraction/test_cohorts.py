"""Cohorts: the phantom generator, manifests, and every bad-input case named by case, file and column."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from _extraction_util import run_spec, write_spec

from radlang.backends.executor import RunError


def test_phantom_cohort_is_real_files_and_deterministic(tmp_path):
    spec = write_spec(tmp_path, """
        study "p" { seed: 5 }
        cohort train = phantom(8) { sites: 2, size: [20, 20, 16] }
        features f = pyradiomics(train.image, train.mask) { classes: [shape(VoxelVolume)] }
    """)
    ctx = run_spec(spec, tmp_path / "a")
    df = ctx.results["train"]
    assert list(df.columns) == ["case_id", "patient_id", "image", "mask", "outcome", "site", "clinical.age"]
    assert df["outcome"].tolist().count(1) == 4                      # balanced by construction
    assert set(df["site"]) == {"site1", "site2"}
    assert df.attrs["radlang"]["outcome"] == "binary"
    folders = list((tmp_path / "a" / "data").glob("train-*"))          # named by the settings' hash
    assert len(folders) == 1 and (folders[0] / "manifest.csv").exists()
    import SimpleITK as sitk

    img = sitk.ReadImage(df["image"][0])
    assert img.GetSize() == (20, 20, 16)
    # the same seed gives the same voxels in another output folder
    ctx2 = run_spec(spec, tmp_path / "b")
    a = sitk.GetArrayFromImage(sitk.ReadImage(df["image"][3]))
    b = sitk.GetArrayFromImage(sitk.ReadImage(ctx2.results["train"]["image"][3]))
    assert np.array_equal(a, b)
    assert ctx.results["f"].equals(ctx2.results["f"])


def test_phantom_effect_changes_lesion_texture():
    """With a strong effect, malignant lesions are more heterogeneous (the latent drives texture sd)."""
    import tempfile

    import SimpleITK as sitk

    from radlang.ops.cohorts import make_phantom

    with tempfile.TemporaryDirectory() as d:
        params = {"cases": 16, "effect": 3.0, "sites": 1, "site_shift": 0.0, "noise": 4.0, "size": [24, 24, 24], "spacing": [1, 1, 1]}
        m = pd.read_csv(make_phantom(params, 2, d, "x"))
        sd = []
        for _, r in m.iterrows():
            img = sitk.GetArrayFromImage(sitk.ReadImage(f"{d}/{r['image']}"))
            msk = sitk.GetArrayFromImage(sitk.ReadImage(f"{d}/{r['mask']}")) > 0
            sd.append(img[msk].std())
        sd = np.array(sd)
        y = m["malignant"].to_numpy()
        assert sd[y == 1].mean() > sd[y == 0].mean() + 10


def test_manifest_table_contract(tmp_path, tiny_cohort):
    m = pd.read_csv(tiny_cohort)
    m["grade"] = np.where(m["malignant"] == 1, "high", "low")
    m["os"] = np.arange(len(m)) + 1.5
    m["dead"] = m["malignant"]
    m["image"] = [str(tiny_cohort.parent / p) for p in m["image"]]   # absolute paths work too
    m["mask"] = [str(tiny_cohort.parent / p) for p in m["mask"]]
    m.to_csv(tmp_path / "m.csv", index=False)
    head = """
        cohort a = manifest("m.csv") { image: image, mask: mask, outcome: grade as binary(positive: "high"), site: site, clinical: [age] }
        cohort s = manifest("m.csv") { outcome: survival(time: os, event: dead) }
        features f = pyradiomics(a.image, a.mask) { classes: [firstorder(Mean)] }
    """
    from radlang.compiler import compile_file

    # the image of one cohort with the mask of another is an error before anything runs
    res = compile_file(write_spec(tmp_path, head + "features g = pyradiomics(s.image, a.mask)"))
    assert not res.ok and [d.code for d in res.diagnostics if d.is_error] == ["E207"]
    # an image is not a mask
    res = compile_file(write_spec(tmp_path, head + "features g = pyradiomics(s.image, s.image)"))
    assert not res.ok and [d.code for d in res.diagnostics if d.is_error] == ["E201"]
    spec = write_spec(tmp_path, head + """
        segment roi = otsu(s.image)
        features g = pyradiomics(s.image, roi) { classes: [firstorder(Mean)] }
    """)
    ctx = run_spec(spec)
    a = ctx.results["a"]
    assert a["outcome"].tolist() == m["malignant"].tolist()                  # positive: "high" -> 1
    assert a.attrs["radlang"]["classes"] == ["low", "high"]
    assert a.attrs["radlang"]["columns"]["outcome"] == "grade"
    assert a["clinical.age"].dtype == np.float64
    assert a["mask"].tolist() == m["mask"].tolist()
    s = ctx.results["s"]
    assert {"time", "event"} <= set(s.columns) and "outcome" not in s.columns and "mask" not in s.columns
    assert s["time"].tolist() == m["os"].tolist() and s["event"].tolist() == m["dead"].tolist()
    assert len(ctx.results["g"]) == 8


def _bad_manifest(tmp_path, tiny_cohort):
    src = tiny_cohort.parent
    m = pd.read_csv(tiny_cohort)
    m["image"] = [str(src / p) for p in m["image"]]
    m["mask"] = [str(src / p) for p in m["mask"]]
    m.loc[1, "image"] = str(tmp_path / "nowhere.nii.gz")                       # a missing file
    (tmp_path / "corrupt.nii.gz").write_bytes(b"this is not an image")
    m.loc[2, "mask"] = str(tmp_path / "corrupt.nii.gz")                        # an unreadable image
    m.loc[4, "case_id"] = m.loc[3, "case_id"]                                  # a duplicate case id
    m.to_csv(tmp_path / "bad.csv", index=False)
    return m


def test_bad_manifest_reports_all_problems_at_once(tmp_path, tiny_cohort):
    m = _bad_manifest(tmp_path, tiny_cohort)
    spec = write_spec(tmp_path, """
        cohort a = manifest("bad.csv") { mask: mask, outcome: malignant as binary }
        features f = pyradiomics(a.image, a.mask)
    """)
    with pytest.raises(RunError) as ei:
        run_spec(spec)
    msgs = [d.message for d in ei.value.diagnostics]
    assert len(msgs) == 3, msgs
    text = "\n".join(msgs)
    assert f"case `{m.loc[1, 'case_id']}`, column `image`, file `{tmp_path / 'nowhere.nii.gz'}`: file not found" in text
    assert f"case `{m.loc[2, 'case_id']}`, column `mask`" in text and "unreadable or corrupt image" in text
    corrupt = next(d for d in ei.value.diagnostics if "corrupt" in d.message)
    assert corrupt.code == "E602" and "ImageIO" in corrupt.message and ".cxx" not in corrupt.message   # SimpleITK's reason, not its source line
    assert f"duplicate case id `{m.loc[3, 'case_id']}` (rows 5 and 6)" in text
    assert not (tmp_path / "out" / "features" / "f.csv").exists()          # nothing half-written


def test_on_error_skip_lists_excluded_cases(tmp_path, tiny_cohort):
    m = _bad_manifest(tmp_path, tiny_cohort)
    spec = write_spec(tmp_path, """
        study "s" { on_error: "skip" }
        cohort a = manifest("bad.csv") { mask: mask, outcome: malignant as binary }
        features f = pyradiomics(a.image, a.mask) { classes: [firstorder(Mean)] }
    """)
    ctx = run_spec(spec)
    f = ctx.results["f"]
    bad = {m.loc[1, "case_id"], m.loc[2, "case_id"]}
    assert len(f) == 8 - 2 - 1 and not bad & set(f.index)
    assert {e["case"] for e in ctx.excluded} == bad | {m.loc[3, "case_id"]}
    import json

    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert {e["case"] for e in run["excluded_cases"]} == bad | {m.loc[3, "case_id"]}


def test_missing_column_names_the_column(tmp_path, tiny_cohort):
    shutil.copy(tiny_cohort, tmp_path / "m.csv")
    spec = write_spec(tmp_path, """
        cohort a = manifest("m.csv") { mask: roi_mask, outcome: malignent as binary }
        features f = pyradiomics(a.image, a.mask)
    """)
    with pytest.raises(RunError) as ei:
        run_spec(spec)
    msgs = sorted(d.message for d in ei.value.diagnostics)
    assert len(msgs) == 2
    assert "column `malignent`" in msgs[0] and "did you mean `malignant`?" in msgs[0]
    assert "column `roi_mask`" in msgs[1] and str(tmp_path / "m.csv") in msgs[1]


def test_several_image_columns_are_channels(tmp_path, tiny_cohort):
    m = pd.read_csv(tiny_cohort)
    m["t1"] = [str(tiny_cohort.parent / p) for p in m["image"]]
    m["t2"] = m["t1"]
    m["mask"] = [str(tiny_cohort.parent / p) for p in m["mask"]]
    m.to_csv(tmp_path / "mc.csv", index=False)
    spec = write_spec(tmp_path, """
        cohort c = manifest("mc.csv") { image: [t1, t2], mask: mask }
        features f = pyradiomics(c.image, c.mask) { classes: [firstorder(Mean)] }
    """)
    ctx = run_spec(spec)
    c = ctx.results["c"]
    assert [x for x in c.columns if x.startswith("image")] == ["image.t1", "image.t2"]
    assert c.attrs["radlang"]["images"] == ["image.t1", "image.t2"]
    f = ctx.results["f"]
    assert list(f.columns) == ["t1_original_firstorder_Mean", "t2_original_firstorder_Mean"]
    assert (f["t1_original_firstorder_Mean"] == f["t2_original_firstorder_Mean"]).all()
