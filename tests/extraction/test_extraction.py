"""The `pyradiomics` operator and the case mode: faithful settings, from_params, cache, resume, perturbation,
merging, mask checks and bad data."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from _extraction_util import run_spec, write_spec

from radlang.backends.executor import RunError


def _direct(image_path, mask_path, config):
    """PyRadiomics itself, called the documented way, for comparison."""
    import radiomics
    from radiomics import featureextractor

    radiomics.setVerbosity(logging.ERROR)
    ext = featureextractor.RadiomicsFeatureExtractor(config)
    res = ext.execute(str(image_path), str(mask_path), label=config["setting"].get("label", 1))
    return {k: float(v) for k, v in res.items() if not k.startswith("diagnostics_")}


def test_settings_map_one_to_one():
    from radlang.ops.features import PyradiomicsSettings, pyradiomics_config
    from radlang.units import Quantity
    from radlang.values import CallValue, Sym, to_plain

    s = PyradiomicsSettings.model_validate({
        "bin_count": 32, "resample": [Quantity(2, "mm"), Quantity(0.2, "cm"), 3], "interpolator": Sym("linear"),
        "normalize": True, "normalize_scale": 100, "remove_outliers": 3, "resegment": [Quantity(-500, "HU"), Quantity(400, "HU")],
        "resegment_mode": Sym("absolute"), "force2d": True, "force2d_dimension": 0, "label": 2, "distances": [1, 2],
        "voxel_array_shift": 1000, "weighting_norm": Sym("euclidean"), "gldm_a": 1, "pad_distance": 3, "pre_crop": True,
        "filters": [Sym("original"), CallValue("log", (), {"sigma": [Quantity(1, "mm"), Quantity(3, "mm")]}),
                    CallValue("wavelet", ("haar",), {"level": 2}), Sym("square"), Sym("square_root"), Sym("logarithm"),
                    Sym("exponential"), CallValue("gradient", (), {"use_spacing": False}), CallValue("lbp3d", (), {"levels": 3})],
        "classes": [Sym("firstorder"), CallValue("glcm", (Sym("Contrast"), Sym("Idm")), {})],
    })
    cfg = pyradiomics_config(to_plain(s))
    assert cfg["setting"] == {
        "binCount": 32, "resampledPixelSpacing": [2.0, 2.0, 3], "interpolator": "sitkLinear", "normalize": True,
        "normalizeScale": 100.0, "removeOutliers": 3.0, "resegmentRange": [-500.0, 400.0], "resegmentMode": "absolute",
        "force2D": True, "force2Ddimension": 0, "label": 2, "distances": [1, 2], "voxelArrayShift": 1000,
        "weightingNorm": "euclidean", "gldm_a": 1, "padDistance": 3, "preCrop": True, "additionalInfo": True}
    assert cfg["imageType"] == {
        "Original": {}, "LoG": {"sigma": [1.0, 3.0]}, "Wavelet": {"wavelet": "haar", "level": 2, "start_level": 0},
        "Square": {}, "SquareRoot": {}, "Logarithm": {}, "Exponential": {}, "Gradient": {"gradientUseSpacing": False},
        "LBP3D": {"lbp3DLevels": 3, "lbp3DIcosphereRadius": 1.0, "lbp3DIcosphereSubdivision": 1}}
    assert cfg["featureClass"] == {"firstorder": [], "glcm": ["Contrast", "Idm"]}
    # nothing set: PyRadiomics' own defaults
    assert pyradiomics_config({}) == {"setting": {"additionalInfo": True}, "imageType": {"Original": {}},
                                      "featureClass": {c: [] for c in ("firstorder", "shape", "glcm", "glrlm", "glszm", "gldm", "ngtdm")}}


def test_bad_settings_are_diagnostics(tmp_path):
    from radlang.compiler import compile_file

    spec = write_spec(tmp_path, """
        cohort c = phantom(8)
        features f = pyradiomics(c.image, c.mask) {
          bin_width: 25
          bin_count: 16
          resample: [1cm, 2HU, 1mm]
          classes: [glcm(Contrastt), shap]
          filters: [original, laplacian]
          voxel_array_shift: 0.5
        }
    """)
    res = compile_file(spec)
    msgs = {d.code: d.message for d in res.diagnostics}
    text = " | ".join(d.message + " " + (d.hint or "") for d in res.diagnostics)
    assert not res.ok
    assert "E303" in msgs                                       # 2HU is not a length
    assert "did you mean `Contrast`?" in text and "did you mean `shape`?" in text
    assert "laplacian" in text
    assert "whole number" in text


def test_extraction_equals_pyradiomics_itself(tmp_path, tiny_cohort):
    """Every setting that changes values reaches PyRadiomics unchanged: same numbers as calling it directly."""
    spec = write_spec(tmp_path, f"""
        cohort c = manifest("{tiny_cohort}") {{ mask: mask, outcome: malignant as binary }}
        features f = pyradiomics(c.image, c.mask) {{
          bin_count: 16
          resample: [1.5mm, 1.5mm, 1.5mm]
          interpolator: linear
          resegment: [0HU, 200HU]
          voxel_array_shift: 1000
          distances: [1, 2]
          filters: [original, log(sigma: [1mm]), wavelet(level: 1)]
          classes: [firstorder, shape, glcm, glszm]
        }}
    """)
    ctx = run_spec(spec)
    f = ctx.results["f"]
    m = pd.read_csv(tiny_cohort)
    config = {"setting": {"binCount": 16, "resampledPixelSpacing": [1.5, 1.5, 1.5], "interpolator": "sitkLinear",
                          "resegmentRange": [0.0, 200.0], "voxelArrayShift": 1000, "distances": [1, 2]},
              "imageType": {"Original": {}, "LoG": {"sigma": [1.0]}, "Wavelet": {"level": 1}},
              "featureClass": {"firstorder": [], "shape": [], "glcm": [], "glszm": []}}
    for i in (0, 5):
        ref = _direct(tiny_cohort.parent / m["image"][i], tiny_cohort.parent / m["mask"][i], config)
        row = f.loc[m["case_id"][i]]
        assert list(row.index) == list(ref)                     # PyRadiomics' own names, in its order
        assert np.array_equal(row.to_numpy(), np.array(list(ref.values())))
    assert f.shape == (8, len(ref)) and f.index.name == "case_id"
    # the CSV: case_id first, then the PyRadiomics names, exact round trip
    csv = pd.read_csv(tmp_path / "out" / "features" / "f.csv", float_precision="round_trip")
    assert list(csv.columns) == ["case_id"] + list(ref)
    assert np.array_equal(csv.drop(columns="case_id").to_numpy(), f.to_numpy())
    diag = pd.read_csv(tmp_path / "out" / "features" / "f.diagnostics.csv")
    assert "diagnostics_Configuration_Settings" in diag.columns and len(diag) == 8


def test_from_params_imports_a_pyradiomics_file(tmp_path, tiny_cohort):
    (tmp_path / "params.yaml").write_text(
        "setting:\n  binWidth: 10\n  voxelArrayShift: 500\nimageType:\n  Original: {}\n  LoG:\n    sigma: [1.0]\n"
        "featureClass:\n  firstorder: [Mean, Energy]\n  glcm: [Contrast]\n")
    spec = write_spec(tmp_path, f"""
        cohort c = manifest("{tiny_cohort}") {{ mask: mask }}
        features a = pyradiomics(c.image, c.mask) {{ params: from_params("params.yaml") }}
        features b = pyradiomics(c.image, c.mask) {{ params: "params.yaml", bin_width: 20 }}
    """)
    ctx = run_spec(spec)
    m = pd.read_csv(tiny_cohort)
    img, msk = tiny_cohort.parent / m["image"][2], tiny_cohort.parent / m["mask"][2]
    ref = _direct(img, msk, {"setting": {"binWidth": 10, "voxelArrayShift": 500}, "imageType": {"Original": {}, "LoG": {"sigma": [1.0]}},
                             "featureClass": {"firstorder": ["Mean", "Energy"], "glcm": ["Contrast"]}})
    assert ctx.results["a"].loc[m["case_id"][2]].to_dict() == ref
    ref_b = _direct(img, msk, {"setting": {"binWidth": 20, "voxelArrayShift": 500}, "imageType": {"Original": {}, "LoG": {"sigma": [1.0]}},
                               "featureClass": {"firstorder": ["Mean", "Energy"], "glcm": ["Contrast"]}})
    assert ctx.results["b"].loc[m["case_id"][2]].to_dict() == ref_b     # the spec's setting overrides the file
    assert ref_b["original_glcm_Contrast"] != ref["original_glcm_Contrast"]
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert "<spec>/params.yaml" in run["inputs"]                   # the file's hash is a recorded input, relative to the spec


def test_cache_recomputes_only_what_changed(tmp_path, tiny_cohort):
    import shutil

    src = tmp_path / "data"
    shutil.copytree(tiny_cohort.parent, src)
    spec = write_spec(tmp_path, """
        cohort c = manifest("data/manifest.csv") { mask: mask }
        features f = pyradiomics(c.image, c.mask) { classes: [firstorder] }
    """)
    first = run_spec(spec)
    assert (first.cache.hits, first.cache.misses) == (0, 8)
    again = run_spec(spec)
    assert (again.cache.hits, again.cache.misses) == (8, 0)
    assert again.results["f"].equals(first.results["f"])
    # change the content of one image: only that case is recomputed
    m = pd.read_csv(src / "manifest.csv")
    p = src / m["image"][3]
    img = sitk.ReadImage(str(p))
    sitk.WriteImage(img + 5, str(p), True)
    third = run_spec(spec)
    assert (third.cache.hits, third.cache.misses) == (7, 1)
    assert (third.results["f"].drop(index=m["case_id"][3]).equals(first.results["f"].drop(index=m["case_id"][3])))
    assert third.results["f"].loc[m["case_id"][3], "original_firstorder_Mean"] == pytest.approx(
        first.results["f"].loc[m["case_id"][3], "original_firstorder_Mean"] + 5)
    # a setting change misses every case
    spec.write_text(spec.read_text().replace("classes: [firstorder]", "classes: [firstorder], bin_width: 5"))
    fourth = run_spec(spec)
    assert fourth.cache.misses == 8


def test_interrupted_run_resumes(tmp_path, tiny_cohort, monkeypatch):
    """Cases finished before an interruption are cached (atomically); the re-run computes only the rest."""
    import radlang.ops.features as case_mode

    spec = write_spec(tmp_path, f"""
        cohort c = manifest("{tiny_cohort}") {{ mask: mask }}
        features f = pyradiomics(c.image, c.mask) {{ classes: [shape(VoxelVolume)] }}
    """)
    real = case_mode.extract_case
    calls = {"n": 0}

    def flaky(task):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(task)

    monkeypatch.setattr(case_mode, "extract_case", flaky)
    with pytest.raises(KeyboardInterrupt):
        run_spec(spec)
    monkeypatch.setattr(case_mode, "extract_case", real)
    leftovers = [p for p in (tmp_path / "out" / ".cache").rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []
    ctx = run_spec(spec)
    assert (ctx.cache.hits, ctx.cache.misses) == (3, 5)
    assert len(ctx.results["f"]) == 8


def test_extract_for_cohort_and_perturbations(tmp_path, tiny_cohort):
    from radlang.ops.features import pyradiomics_on_cohort as extract_for_cohort

    spec = write_spec(tmp_path, f"""
        cohort c = manifest("{tiny_cohort}") {{ mask: mask }}
        segment roi = mask(c.mask)
        features f = pyradiomics(c.image, roi) {{ classes: [firstorder(Mean), shape(VoxelVolume)] }}
    """)
    ctx = run_spec(spec)
    stage = ctx.study.stage("f")
    cohort = ctx.results["c"]
    same = extract_for_cohort(ctx, stage, cohort)
    assert same.equals(ctx.results["f"])                               # the normal run is exactly this call
    ext = cohort.iloc[[1, 4]].reset_index(drop=True)
    ext.attrs = cohort.attrs
    assert extract_for_cohort(ctx, stage, ext).equals(ctx.results["f"].iloc[[1, 4]])
    eroded = extract_for_cohort(ctx, stage, cohort, {"kind": "erode", "radius": 1})
    dilated = extract_for_cohort(ctx, stage, cohort, {"kind": "dilate", "radius": 1})
    vol = ctx.results["f"]["original_shape_VoxelVolume"]
    assert (eroded["original_shape_VoxelVolume"] < vol).all() and (dilated["original_shape_VoxelVolume"] > vol).all()
    n1 = extract_for_cohort(ctx, stage, cohort, {"kind": "noise", "sigma": 20.0, "seed": 1})
    n1b = extract_for_cohort(ctx, stage, cohort, {"kind": "noise", "sigma": 20.0, "seed": 1})
    n2 = extract_for_cohort(ctx, stage, cohort, {"kind": "noise", "sigma": 20.0, "seed": 2})
    assert n1.equals(n1b) and not n1.equals(n2)
    assert (n1["original_shape_VoxelVolume"] == vol).all()               # noise touches the image, not the mask
    assert not np.allclose(n1["original_firstorder_Mean"], ctx.results["f"]["original_firstorder_Mean"], rtol=0, atol=1e-9)


@pytest.mark.parametrize("workers", [1, 2])   # 2: the stages run concurrently, and b still waits for a's pass
def test_merged_stages_equal_separate_runs(tmp_path, tiny_cohort, workers):
    body = f"""
        cohort c = manifest("{tiny_cohort}") {{ mask: mask }}
        features a = pyradiomics(c.image, c.mask) {{ bin_width: 10, filters: [original, log(sigma: [1mm])], classes: [firstorder] }}
        features b = pyradiomics(c.image, c.mask) {{ bin_width: 10, filters: [log(sigma: [2mm])], classes: [glcm(Contrast), glszm] }}
    """
    merged = run_spec(write_spec(tmp_path, body), tmp_path / "m", workers=workers)
    plan = merged.study.stage("a").extra["plan_notes"][0]
    assert "merged with `b` into one PyRadiomics pass" in plan
    assert (merged.cache.hits, merged.cache.misses) == (8, 8)             # b reads what a computed
    a_alone = run_spec(write_spec(tmp_path, body.split("features b")[0], "a.rad"), tmp_path / "sa")
    b_alone = run_spec(write_spec(tmp_path, body.split("features a")[0] + "features b" + body.split("features b")[1], "b.rad"),
                       tmp_path / "sb")
    assert merged.results["a"].equals(a_alone.results["a"])
    assert merged.results["b"].equals(b_alone.results["b"])
    assert next(iter(merged.results["b"].columns)) == "log-sigma-2-0-mm-3D_glcm_Contrast"


def _mask_variants(tmp_path, tiny_cohort):
    m = pd.read_csv(tiny_cohort)
    m["image"] = [str(tiny_cohort.parent / p) for p in m["image"]]
    m["mask"] = [str(tiny_cohort.parent / p) for p in m["mask"]]
    msk = sitk.ReadImage(m["mask"][0])
    shifted = sitk.Image(msk)
    shifted.SetOrigin((3.0, 0.0, 0.0))                                    # geometry mismatch
    sitk.WriteImage(shifted, str(tmp_path / "shifted.nii.gz"))
    empty = sitk.Image(msk) * 0                                           # empty mask
    sitk.WriteImage(empty, str(tmp_path / "empty.nii.gz"))
    two = sitk.Image(msk) * 2                                             # label 1 absent
    sitk.WriteImage(two, str(tmp_path / "two.nii.gz"))
    m.loc[0, "mask"] = str(tmp_path / "shifted.nii.gz")
    m.loc[1, "mask"] = str(tmp_path / "empty.nii.gz")
    m.loc[2, "mask"] = str(tmp_path / "two.nii.gz")
    m.to_csv(tmp_path / "m.csv", index=False)
    return m


def test_mask_checks_report_every_case_before_extraction(tmp_path, tiny_cohort, monkeypatch):
    import radlang.ops.features as case_mode

    m = _mask_variants(tmp_path, tiny_cohort)
    monkeypatch.setattr(case_mode, "extract_case", lambda task: pytest.fail("extraction ran before the checks failed"))
    spec = write_spec(tmp_path, """
        cohort c = manifest("m.csv") { mask: mask }
        features f = pyradiomics(c.image, c.mask) { classes: [firstorder(Mean)] }
    """)
    with pytest.raises(RunError) as ei:
        run_spec(spec)
    d = sorted(ei.value.diagnostics, key=lambda d: d.message)
    assert [x.code for x in d] == ["E604", "E605", "E606"]
    assert f"case `{m['case_id'][0]}`, column `mask`, file `{tmp_path / 'shifted.nii.gz'}`: mask geometry differs" in d[0].message
    assert "origin (0, 0, 0) vs (3, 0, 0)" in d[0].message
    assert f"case `{m['case_id'][1]}`" in d[1].message and "the mask is empty" in d[1].message
    assert f"case `{m['case_id'][2]}`" in d[2].message and "label 1 is absent from the mask (labels present: 2)" in d[2].message


def test_mask_segment_resamples_or_errors(tmp_path, tiny_cohort):
    m = _mask_variants(tmp_path, tiny_cohort)
    spec = write_spec(tmp_path, """
        study "s" { on_error: "skip" }
        cohort c = manifest("m.csv") { mask: mask }
        segment roi = mask(c.mask) { on_mismatch: resample, label: 1 }
        features f = pyradiomics(c.image, roi) { classes: [shape(VoxelVolume)] }
    """)
    ctx = run_spec(spec)
    f = ctx.results["f"]
    assert m["case_id"][0] in f.index                                     # resampled onto the image grid
    assert {e["case"] for e in ctx.excluded} == {m["case_id"][1], m["case_id"][2]}
    excluded = pd.read_csv(tmp_path / "out" / "features" / "f.excluded.csv")
    assert set(excluded["case"]) == {m["case_id"][1], m["case_id"][2]}
    assert "empty" in " ".join(excluded["reason"])
    # the lesion, 3 mm off in the mask's own frame, is resampled whole onto the image grid (voxels of 1 x 1 x 1.5 mm)
    orig = sitk.GetArrayFromImage(sitk.ReadImage(str(tiny_cohort.parent / pd.read_csv(tiny_cohort)["mask"][0]))).sum()
    assert f.loc[m["case_id"][0], "original_shape_VoxelVolume"] == orig * 1.5


def test_nan_features_are_reported(tmp_path, tiny_cohort, monkeypatch):
    from radlang.ops import features

    real = features.extract_features

    def with_nan(image, mask, config):
        f, d = real(image, mask, config)
        return {k: (float("nan") if k.endswith("Skewness") else v) for k, v in f.items()}, d

    monkeypatch.setattr(features, "extract_features", with_nan)
    spec = write_spec(tmp_path, f"""
        cohort c = manifest("{tiny_cohort}") {{ mask: mask }}
        features f = pyradiomics(c.image, c.mask) {{ classes: [firstorder(Mean, Skewness)] }}
    """)
    with pytest.raises(RunError) as ei:
        run_spec(spec)
    assert len(ei.value.diagnostics) == 8
    d = ei.value.diagnostics[0]
    assert d.code == "E608" and "NaN/inf for original_firstorder_Skewness" in d.message and "column `image`" in d.message
    assert not (tmp_path / "out" / "features" / "f.csv").exists()
    # nothing NaN was cached: a clean re-run computes every case
    monkeypatch.setattr(features, "extract_features", real)
    assert run_spec(spec).cache.misses == 8


def test_otsu_and_threshold_segment_a_bright_cube(tmp_path):
    arr = np.full((20, 24, 24), 10.0, dtype=np.float32)
    arr[6:14, 8:16, 8:16] = 200.0
    arr[1:3, 1:3, 1:3] = 200.0                                  # a small bright speck: not the largest component
    img = sitk.GetImageFromArray(arr)
    sitk.WriteImage(sitk.Cast(img, sitk.sitkInt16), str(tmp_path / "img.nii.gz"))
    pd.DataFrame({"case_id": ["a"], "image": ["img.nii.gz"]}).to_csv(tmp_path / "m.csv", index=False)
    spec = write_spec(tmp_path, """
        cohort c = manifest("m.csv")
        segment o = otsu(c.image) { largest: true }
        segment t = threshold(c.image, 100, 300)
        features fo = pyradiomics(c.image, o) { classes: [shape(VoxelVolume), firstorder(Mean)] }
        features ft = pyradiomics(c.image, t) { classes: [shape(VoxelVolume), firstorder(Mean)] }
    """)
    ctx = run_spec(spec)
    assert ctx.results["fo"].loc["a", "original_shape_VoxelVolume"] == 8 * 8 * 8
    assert ctx.results["ft"].loc["a", "original_shape_VoxelVolume"] == 8 * 8 * 8 + 8      # no largest-component step
    assert ctx.results["fo"].loc["a", "original_firstorder_Mean"] == 200.0


def test_process_pool_gives_the_same_numbers(tmp_path, tiny_cohort):
    spec = write_spec(tmp_path, f"""
        cohort c = manifest("{tiny_cohort}") {{ mask: mask }}
        features f = pyradiomics(c.image, c.mask) {{ classes: [firstorder, glcm] }}
    """)
    serial = run_spec(spec, tmp_path / "s", workers=1)
    pooled = run_spec(spec, tmp_path / "p", workers=2)
    assert pooled.results["f"].equals(serial.results["f"])
    a = (tmp_path / "s" / "features" / "f.csv").read_bytes()
    assert a == (tmp_path / "p" / "features" / "f.csv").read_bytes()


def test_cli_run_out_and_exit_codes(tmp_path, tiny_cohort):
    import subprocess
    import sys

    spec = write_spec(tmp_path, f"""
        study "cli" {{ out: "elsewhere" }}
        cohort c = manifest("{tiny_cohort}") {{ mask: mask }}
        features f = pyradiomics(c.image, c.mask) {{ classes: [firstorder(Mean)] }}
    """)
    out = tmp_path / "chosen"
    r = subprocess.run([sys.executable, "-m", "radlang", "run", str(spec), "--out", str(out), "--workers", "1", "--quiet"],
                       capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0, r.stderr
    assert (out / "features" / "f.csv").exists() and not (tmp_path / "elsewhere").exists()
    run = json.loads((out / "run.json").read_text())
    assert run["spec"]["sha256"] and "pyradiomics" in run["versions"] and run["stages"][-1]["seconds"] is not None
    assert any(k.endswith("_image.nii.gz") for k in run["inputs"])
    bad = write_spec(tmp_path, """
        cohort c = manifest("missing.csv") { mask: mask }
        features f = pyradiomics(c.image, c.mask)
    """, "bad.rad")
    r = subprocess.run([sys.executable, "-m", "radlang", "run", str(bad), "--out", str(out)], capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "manifest not found" in r.stderr and "error[E601]" in r.stderr


@pytest.mark.slow
def test_kill_9_resumes(tmp_path, tiny_cohort):
    """`kill -9` in the middle of extraction: every cache entry on disk is whole, and the re-run computes only the rest."""
    import os
    import signal
    import subprocess
    import sys
    import time

    spec = write_spec(tmp_path, f"""
        cohort c = manifest("{tiny_cohort}") {{ mask: mask }}
        features f = pyradiomics(c.image, c.mask) {{ filters: [original, wavelet] }}
    """)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "radlang", "run", str(spec), "--out", str(out), "--workers", "1", "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    from radlang.backends.cache import HASH_INDEX, Cache

    def entries_on_disk():
        return [e for e in (out / ".cache").glob("??/*.json") if e.name != HASH_INDEX]

    while time.time() < deadline and len(entries_on_disk()) < 3 and proc.poll() is None:   # the table + 2 cases
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    entries = []
    cache = Cache(out / ".cache")
    for e in entries_on_disk():
        value = cache.get(e.stem)              # every entry on disk is whole: it verifies (no W670)
        assert value is not None and not cache.warnings, cache.warnings
        if "features" in value:
            entries.append(e)
    assert 2 <= len(entries) < 8
    ctx = run_spec(spec, out)
    assert any(w.startswith("W673") and f"pid {proc.pid} " in w for w in ctx.warnings), ctx.warnings    # the dead run's lock
    assert ctx.cache.hits == len(entries) and ctx.cache.misses == 8 - len(entries)
    clean = run_spec(spec, tmp_path / "clean")
    assert ctx.results["f"].equals(clean.results["f"])
