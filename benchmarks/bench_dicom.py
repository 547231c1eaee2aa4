"""Benchmark: reading a 60-slice CT series with an RTSTRUCT mask, through radlang vs the libraries called directly.

    .venv/bin/python benchmarks/bench_dicom.py [--size 512] [--slices 60] [--repeats 5]

A synthetic CT series (int16, --size^2 pixels, --slices slices of 2 mm, written with pydicom) and an RTSTRUCT of one
smooth ellipsoid written by rt-utils. (The IBSI CT phantom's RTSTRUCT cannot be the input: rt-utils' reader needs a
ContourImageSequence in every contour, which that file, like many, leaves out.) Timed, alternating, --repeats times
each after a warm-up:

1. radlang: the manifest cohort reading the case (`load_manifest`: series checks, slice headers, the RTSTRUCT
   rasterised onto the series and written as NIfTI) and then the image and mask as a case job reads them (`load_image`);
2. direct: SimpleITK's `ImageSeriesReader` for the image plus rt-utils' `RTStructBuilder.create_from(...)
   .get_roi_mask_by_name(...)` for the mask.

Printed: medians [ranges] and the ratio radlang / direct (target <= 1.2), and that both masks agree.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "dicom"))


def make_case(folder: Path, size: int, slices: int) -> tuple[Path, Path]:
    import numpy as np
    from _series import phantom_volume, sphere, write_series
    from rt_utils import RTStructBuilder

    m = sphere(shape=(slices, size, size), radius=(slices * 0.35, size * 0.2, size * 0.25))
    write_series(folder / "ct", phantom_volume(m), spacing=(0.8, 0.8, 2.0), origin=(-200.0, -200.0, -60.0), seed="bench")
    rt = RTStructBuilder.create_new(dicom_series_path=str(folder / "ct"))
    rt.add_roi(mask=np.transpose(m, (1, 2, 0)), name="GTV")
    rt.save(str(folder / "rs.dcm"))
    return folder / "ct", folder / "rs.dcm"


def through_radlang(folder: Path, manifest: Path, run: int):
    import SimpleITK as sitk

    from radlang.ops.cohorts import load_manifest
    from radlang.ops.segment import load_image

    params = {"id": "case_id", "patient": None, "image": "image", "mask": "mask", "outcome": None, "site": None, "clinical": [],
              "dims": 3, "modality": None, "series_description": None, "roi": "GTV", "fraction": 0.5, "scanner": [],
              "thickness_tolerance": 0.5, "path": str(manifest)}
    df, problems = load_manifest(params, str(manifest), "bench", derived_dir=str(folder / f"derived{run}"))
    assert not problems, problems
    image, mask = load_image(df.loc[0, "image"]), load_image(df.loc[0, "mask"])
    return sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(mask)


def direct(series: Path, rs: Path):
    import SimpleITK as sitk
    from rt_utils import RTStructBuilder

    r = sitk.ImageSeriesReader()
    r.SetFileNames(r.GetGDCMSeriesFileNames(str(series)))
    image = r.Execute()
    mask = RTStructBuilder.create_from(dicom_series_path=str(series), rt_struct_path=str(rs)).get_roi_mask_by_name("GTV")
    return sitk.GetArrayFromImage(image), mask


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--slices", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    import numpy as np

    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        series, rs = make_case(folder, a.size, a.slices)
        manifest = folder / "m.csv"
        manifest.write_text(f"case_id,image,mask\nbench,{series},{rs}\n")
        img_r, mask_r = through_radlang(folder, manifest, 0)           # warm-up (imports, file cache)
        img_d, mask_d = direct(series, rs)
        assert np.array_equal(img_r, img_d)
        mask_d = np.transpose(mask_d, (2, 0, 1))
        diff = int((mask_r.astype(bool) != mask_d).sum())
        times = {"radlang": [], "direct": []}
        for i in range(a.repeats):
            t = time.perf_counter()
            through_radlang(folder, manifest, i + 1)
            times["radlang"].append(time.perf_counter() - t)
            t = time.perf_counter()
            direct(series, rs)
            times["direct"].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{a.slices} slices of {a.size}x{a.size}, RTSTRUCT of one ROI; {a.repeats} repeats")
    for k, v in times.items():
        print(f"  {k:8s} median {med[k]:.3f} s  [{min(v):.3f}, {max(v):.3f}]")
    print(f"  ratio radlang / direct: {med['radlang'] / med['direct']:.2f} (target <= 1.2)")
    print(f"  masks differ in {diff} of {mask_r.astype(bool).sum()} ROI voxels (rt-utils' fillPoly vs radlang's centre rule)")


if __name__ == "__main__":
    main()
