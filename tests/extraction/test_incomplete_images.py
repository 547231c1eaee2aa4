"""Incomplete image files are bad data, never zero-filled voxels: a truncated NIfTI (SimpleITK reads it
without complaint), MetaImage / NRRD with a short data file, a DICOM series with a missing slice."""

from __future__ import annotations

import gzip
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from _extraction_util import run_spec, the_run_error, write_spec

from radlang.backends.executor import RunError
from radlang.ops.cohorts import image_payload_problem

VOXELS = np.arange(20 * 30 * 40, dtype=np.int16).reshape(20, 30, 40) % 997   # 48,000 bytes of int16


def _write(path, compress=True):
    sitk.WriteImage(sitk.GetImageFromArray(VOXELS), str(path), compress)
    return path


def _cut(path, keep):
    data = path.read_bytes()
    path.write_bytes(data[:keep if keep >= 0 else len(data) + keep])


@pytest.mark.parametrize("name,compress", [("a.nii.gz", True), ("a.nii", False), ("a.mha", True), ("a.mha", False),
                                           ("a.nrrd", True), ("a.nrrd", False)])
def test_a_truncated_single_file_image_is_incomplete(tmp_path, name, compress):
    p = _write(tmp_path / name, compress)
    assert image_payload_problem(str(p)) is None
    _cut(p, p.stat().st_size // 2)
    bad = image_payload_problem(str(p))
    assert bad["code"] == "E650" and bad["file"] == str(p) and "incomplete image" in bad["message"]


def test_the_first_400_bytes_of_a_nifti(tmp_path):
    p = _write(tmp_path / "a.nii.gz")
    _cut(p, 400)
    bad = image_payload_problem(str(p))
    assert bad["code"] == "E650" and "48,352 bytes" in bad["message"]   # 352-byte header + 20*30*40 int16 voxels
    _cut(p, 100)                                                        # not even the header
    assert "ends inside its NIfTI header" in image_payload_problem(str(p))["message"]


@pytest.mark.parametrize("name,data,compress", [("a.mhd", "a.raw", False), ("a.mhd", "a.zraw", True),
                                                ("a.nhdr", "a.raw", False), ("a.nhdr", "a.raw.gz", True), ("a.hdr", "a.img", False)])
def test_a_short_external_data_file(tmp_path, name, data, compress):
    p = _write(tmp_path / name, compress)
    assert (tmp_path / data).exists() and image_payload_problem(str(p)) is None
    _cut(tmp_path / data, -10)
    bad = image_payload_problem(str(p))
    assert bad["code"] == "E650" and bad["file"] == str(tmp_path / data)
    (tmp_path / data).unlink()
    assert image_payload_problem(str(p))["message"].endswith("is missing")


def test_a_complete_multi_member_gzip_is_accepted(tmp_path):
    """The gzip trailer records only the last member's size: a concatenated file is decompressed to be sure."""
    p = _write(tmp_path / "a.nii", False)
    raw = p.read_bytes()
    q = tmp_path / "b.nii.gz"
    q.write_bytes(gzip.compress(raw[:1000]) + gzip.compress(raw[1000:]))
    assert sitk.GetArrayFromImage(sitk.ReadImage(str(q))).tolist() == VOXELS.tolist()
    assert image_payload_problem(str(q)) is None
    q.write_bytes(gzip.compress(raw[:1000]) + gzip.compress(raw[1000:])[:-100])
    assert image_payload_problem(str(q))["code"] == "E650"


def _dicom_series(folder, slices=8, step=2.5):
    folder.mkdir()
    w = sitk.ImageFileWriter()
    w.KeepOriginalImageUIDOn()
    for k in range(slices):
        sl = sitk.GetImageFromArray(VOXELS[k:k + 1, :16, :16])
        sl.SetSpacing((0.8, 0.8, step))
        tags = {"0008|0060": "CT", "0020|000d": "1.2.826.0.1.1", "0020|000e": "1.2.826.0.1.1.2", "0020|0013": str(k + 1),
                "0020|0032": f"0\\0\\{step * k:g}", "0020|0037": "1\\0\\0\\0\\1\\0", "0008|0018": f"1.2.826.0.1.1.2.{k + 1}"}
        for t, v in tags.items():
            sl.SetMetaData(t, v)
        w.SetFileName(str(folder / f"s{k:02d}.dcm"))
        w.Execute(sl)
    return folder


def test_a_dicom_series_with_a_missing_slice(tmp_path):
    d = _dicom_series(tmp_path / "series")
    assert image_payload_problem(str(d)) is None
    (d / "s04.dcm").unlink()
    bad = image_payload_problem(str(d))
    assert bad["code"] == "E651" and bad["file"] == str(d)
    assert "1 slice(s) missing between slice 4 and 5 (at 7.5 and 12.5 mm; the other slices are 2.5 mm apart)" in bad["message"]


def _cohort_with_a_truncated_image(tmp_path, tiny_cohort, keep):
    m = pd.read_csv(tiny_cohort)
    m["image"] = [str(tiny_cohort.parent / p) for p in m["image"]]
    m["mask"] = [str(tiny_cohort.parent / p) for p in m["mask"]]
    cut = tmp_path / "cut.nii.gz"
    shutil.copy(m.loc[2, "image"], cut)
    _cut(cut, keep(cut.stat().st_size))
    m.loc[2, "image"] = str(cut)
    m.to_csv(tmp_path / "m.csv", index=False)
    return m, cut


@pytest.mark.parametrize("keep", [lambda n: n // 2, lambda n: 400], ids=["half", "400 bytes"])
def test_run_names_the_case_and_file_of_a_truncated_image(tmp_path, tiny_cohort, keep):
    m, cut = _cohort_with_a_truncated_image(tmp_path, tiny_cohort, keep)
    d = the_run_error(tmp_path)
    assert d.code == "E650"
    assert f"case `{m.loc[2, 'case_id']}`, column `image`, file `{cut}`: incomplete image" in d.message
    assert not (tmp_path / "out" / "features" / "f.csv").exists()


def test_on_error_skip_excludes_a_truncated_image(tmp_path, tiny_cohort):
    m, _ = _cohort_with_a_truncated_image(tmp_path, tiny_cohort, lambda n: n // 2)
    spec = write_spec(tmp_path, """
        study "s" { on_error: "skip" }
        cohort a = manifest("m.csv") { mask: mask, outcome: malignant as binary }
        features f = pyradiomics(a.image, a.mask) { classes: [firstorder(Mean)] }
    """)
    ctx = run_spec(spec)
    assert m.loc[2, "case_id"] not in ctx.results["f"].index and len(ctx.results["f"]) == 7
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    [e] = run["excluded_cases"]
    assert e["case"] == m.loc[2, "case_id"] and "incomplete image" in e["reason"]


def test_run_reports_a_dicom_series_with_a_missing_slice(tmp_path):
    d = _dicom_series(tmp_path / "series")
    (d / "s04.dcm").unlink()
    pd.DataFrame({"case_id": ["c1"], "image": ["series"]}).to_csv(tmp_path / "m.csv", index=False)
    spec = write_spec(tmp_path, """
        cohort a = manifest("m.csv")
        segment roi = threshold(a.image, lo: 0HU, hi: 500HU)
        features f = pyradiomics(a.image, roi) { classes: [firstorder(Mean)] }
    """)
    with pytest.raises(RunError) as ei:
        run_spec(spec)
    [diag] = ei.value.diagnostics
    assert diag.code == "E651" and f"case `c1`, column `image`, file `{d}`" in diag.message


def test_a_nii_gz_holding_plain_bytes_is_judged_by_its_content(tmp_path):
    plain = _write(tmp_path / "a.nii", False)
    p = tmp_path / "b.nii.gz"
    shutil.copy(plain, p)
    assert sitk.GetArrayFromImage(sitk.ReadImage(str(p))).tolist() == VOXELS.tolist()
    assert image_payload_problem(str(p)) is None
    _cut(p, -10)
    assert "holds 47,990 bytes of voxel data where its header implies 48,000" in image_payload_problem(str(p))["message"]
