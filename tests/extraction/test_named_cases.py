"""Bad data names what is bad: the cases behind stray outcome labels, and the image (not its mask) when a 2D image
sits among 3D volumes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from _extraction_util import run_spec, the_run_error, write_spec

from radlang.backends.executor import RunError


def _manifest(tmp_path, tiny_cohort):
    m = pd.read_csv(tiny_cohort)
    m["image"] = [str(tiny_cohort.parent / p) for p in m["image"]]
    m["mask"] = [str(tiny_cohort.parent / p) for p in m["mask"]]
    return m


def test_stray_binary_labels_name_their_cases(tmp_path, tiny_cohort):
    m = _manifest(tmp_path, tiny_cohort)
    m["malignant"] = m["malignant"].astype(str)
    m.loc[5, "malignant"] = "yes"
    m.to_csv(tmp_path / "m.csv", index=False)
    d = the_run_error(tmp_path)
    counts = m["malignant"].value_counts()
    assert d.code == "E601" and "a binary outcome needs two labels, found 3: " in d.message
    assert f"`0` ({counts['0']} cases)" in d.message and f"`1` ({counts['1']} cases)" in d.message
    assert d.message.endswith(f"`yes` (1 case: `{m.loc[5, 'case_id']}`)")           # the stray label, last, with its case
    assert "as multiclass" in d.hint


def test_stray_labels_in_a_table_name_their_cases(tmp_path):
    pd.DataFrame({"case": [f"t{i}" for i in range(6)], "y": ["0", "1", "0", "1", "2", "0"], "x": np.arange(6.0)}).to_csv(
        tmp_path / "t.csv", index=False)
    spec = write_spec(tmp_path, """
        cohort t = table("t.csv") { id: case, outcome: y as binary }
        features f = tabular(t)
        model m = logistic(f, target: t.outcome)
        validate v = evaluate(m) { cv: stratified_kfold(2) }
    """)
    with pytest.raises(RunError) as ei:
        run_spec(spec)
    [d] = ei.value.diagnostics
    assert "`0` (3 cases), `1` (2 cases), `2` (1 case: `t4`)" in d.message and d.hint


def test_a_2d_image_with_a_3d_mask_names_the_image(tmp_path, tiny_cohort):
    m = _manifest(tmp_path, tiny_cohort)
    img = sitk.ReadImage(m.loc[2, "image"])
    flat = tmp_path / "slice.nii.gz"
    sitk.WriteImage(img[:, :, 8], str(flat))                 # one axial slice: a 2D image
    m.loc[2, "image"] = str(flat)
    m.to_csv(tmp_path / "m.csv", index=False)
    d = the_run_error(tmp_path)
    assert d.code == "E604"
    assert d.message.startswith(f"`f`: case `{m.loc[2, 'case_id']}`, column `image`, file `{flat}`: the image is 2D (20 × 20 voxels) "
                                f"but its mask `{m.loc[2, 'mask']}` is 3D (20 × 20 × 16)")
