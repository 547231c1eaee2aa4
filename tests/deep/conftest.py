"""Tiny NIfTI cohorts written by the tests themselves: 16^3 volumes, two co-registered channels and a
three-class label map (background, lesion rim, lesion core: two 'habitats')."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest


def write_cohort(folder: Path, n: int, seed: int, size=(16, 16, 16), spacing=(1.0, 1.0, 1.2), bad_spacing: tuple = ()):
    """n cases; channel t2 of the cases listed in `bad_spacing` gets another voxel spacing (not co-registered)."""
    import SimpleITK as sitk

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    z, y, x = np.meshgrid(*[np.arange(s) for s in reversed(size)], indexing="ij")
    for i in range(n):
        c = np.array(size[::-1]) / 2 + rng.uniform(-2, 2, 3)
        r = np.sqrt((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2)
        r0 = rng.uniform(4.0, 5.5)
        lab = np.where(r < r0, 1, 0) + np.where(r < r0 * 0.5, 1, 0)
        t1 = 100.0 + 60.0 * (lab > 0) + rng.normal(0, 8, lab.shape)
        t2 = 80.0 + 70.0 * (lab == 2) - 20.0 * (lab == 1) + rng.normal(0, 8, lab.shape)
        cid = f"c{i:02d}"
        paths = {}
        for name, arr, dtype in (("t1", t1, np.float32), ("t2", t2, np.float32), ("seg", lab, np.uint8)):
            im = sitk.GetImageFromArray(arr.astype(dtype))
            sp = spacing if not (name == "t2" and cid in bad_spacing) else (2.0, 2.0, 2.0)
            im.SetSpacing(sp)
            im.SetOrigin((-5.0, 3.0, 10.0))
            p = folder / f"{cid}_{name}.nii.gz"
            sitk.WriteImage(im, str(p))
            paths[name] = p.name
        rows.append([cid, paths["t1"], paths["t2"], paths["seg"], i % 2, f"site{i % 2 + 1}"])
    with open(folder / "manifest.csv", "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["case_id", "t1", "t2", "seg", "label", "hospital"])
        w.writerows(rows)
    return folder / "manifest.csv"


@pytest.fixture(scope="session")
def cohorts(tmp_path_factory):
    root = tmp_path_factory.mktemp("deepdata")
    return {"train": write_cohort(root / "train", 6, 1), "test": write_cohort(root / "test", 3, 2)}


def compile_spec(text: str, folder: Path, name="spec.rad"):
    from radlang.compiler import compile_file

    p = folder / name
    p.write_text(text)
    res = compile_file(p)
    assert res.ok, [(d.code, d.message) for d in res.diagnostics]
    return res.study
