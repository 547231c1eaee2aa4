"""Image preprocessing stages (radlang/ops/preprocess.py): N4, z-score, Nyúl, resampling and HU clipping against
references (SimpleITK, numpy, a Nyúl & Udupa implementation written here), the study-level behaviour (caching,
determinism, run = rendered script, landmarks learned on the training cohort only) and bad input."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from radlang.backends.executor import RunError, run_study
from radlang.compiler import compile_source
from radlang.ops.preprocess import hu_clip_image, n4_correct, nyul_apply, nyul_landmarks, nyul_standard, resample_case, zscore_image

sys.path.insert(0, str(Path(__file__).parent / "render"))
from render_helpers import run_script

N4 = {"within": "body", "shrink": 1, "iterations": [10, 10], "convergence": 0.001, "control_points": 4, "fwhm": 0.15, "bins": 200}


def phantom(seed=0, n=20, bias=True, offset=0.0):
    """A body (ellipsoid, ~100) with a lesion (~160) in a zero background, with noise, times a smooth bias field
    (1 + 0.4 x/n, a linear ramp along x, as a receive coil gives). Returns (image, lesion mask)."""
    rng = np.random.default_rng(seed)
    z, y, x = np.mgrid[:n, :n, :n].astype(float)
    c = (n - 1) / 2
    body = ((x - c) / (0.45 * n)) ** 2 + ((y - c) / (0.4 * n)) ** 2 + ((z - c) / (0.45 * n)) ** 2 <= 1
    lesion = (x - c - 2) ** 2 + (y - c) ** 2 + (z - c) ** 2 <= (n / 6) ** 2
    arr = np.where(body, 100.0 + rng.normal(0, 5, body.shape), 0.0)
    arr[lesion] = 160.0 + rng.normal(0, 5, int(lesion.sum()))
    if bias:
        arr *= 1.0 + 0.4 * x / n
    img = sitk.GetImageFromArray((arr + offset * body).astype(np.float32))
    img.SetSpacing((1.0, 1.0, 1.5))
    img.SetOrigin((-10.0, 4.0, 2.5))
    mask = sitk.GetImageFromArray(lesion.astype(np.uint8))
    mask.CopyInformation(img)
    return img, mask


# ---- the image functions against references -----------------------------------------------------

def test_n4_equals_simpleitk_reference():
    img, _ = phantom()
    out, _, problems = n4_correct(img, None, N4)
    assert problems == []
    # SimpleITK's own N4 recipe: the Otsu body (largest component, holes filled), the filter, then image / exp(log bias)
    f = sitk.Cast(img, sitk.sitkFloat32)
    otsu = sitk.OtsuThreshold(f, 0, 1, 128)
    cc = sitk.RelabelComponent(sitk.ConnectedComponent(otsu), sortByObjectSize=True) == 1
    body = sitk.BinaryFillhole(sitk.Cast(cc, sitk.sitkUInt8), fullyConnected=False, foregroundValue=1)
    n4 = sitk.N4BiasFieldCorrectionImageFilter()
    n4.SetMaximumNumberOfIterations([10, 10])
    n4.SetNumberOfThreads(1)
    n4.Execute(f, body)
    ref = sitk.GetArrayFromImage(f / sitk.Exp(n4.GetLogBiasFieldAsImage(f)))
    np.testing.assert_allclose(sitk.GetArrayFromImage(out), ref, rtol=1e-6, atol=1e-6)
    assert out.GetSpacing() == img.GetSpacing() and out.GetOrigin() == img.GetOrigin()
    # and it does correct: the body's left-right intensity ramp (0.4 across the field) shrinks
    a, b = sitk.GetArrayFromImage(img), sitk.GetArrayFromImage(out)
    _, mask = phantom()
    tissue = (a > 50) & (sitk.GetArrayFromImage(mask) == 0)
    ramp = lambda v: np.polyfit(np.nonzero(tissue)[2], v[tissue], 1)[0] / v[tissue].mean()
    assert abs(ramp(b)) < 0.5 * abs(ramp(a))


def test_n4_refuses_non_positive_intensities():
    img, _ = phantom(offset=-1100.0)             # a body in HU-like negative values
    out, _, problems = n4_correct(img, None, {**N4, "within": "image"})
    assert out is None and [c for c, _ in problems] == ["E655"]


@pytest.mark.parametrize("within", ["roi", "image", "body"])
def test_zscore_equals_numpy(within):
    img, mask = phantom(bias=False)
    out, _, problems = zscore_image(img, mask, {"within": within, "label": 1})
    assert problems == []
    a = sitk.GetArrayFromImage(img).astype("float64")
    if within == "roi":
        region = sitk.GetArrayFromImage(mask) == 1
    elif within == "image":
        region = np.ones(a.shape, bool)
    else:
        region = a > 50                          # the body: every voxel of the ellipsoid, lesion included
    ref = (a - a[region].mean()) / a[region].std()
    np.testing.assert_allclose(sitk.GetArrayFromImage(out), ref, rtol=1e-6, atol=1e-6)


def test_zscore_empty_roi_is_e605():
    img, mask = phantom(bias=False)
    empty = sitk.Image(mask.GetSize(), sitk.sitkUInt8)
    empty.CopyInformation(mask)
    out, _, problems = zscore_image(img, empty, {"within": "roi", "label": 1})
    assert out is None and [c for c, _ in problems] == ["E605"]


def nyul_reference_standard(train_arrays, pcs, scale):
    """Nyúl & Udupa (1999), Nyúl, Udupa & Zhang (2000), training, written out step by step: for each training image,
    the intensity percentiles mu = (p1, m_1..m_k, p2); map [p1, p2] linearly onto [s1, s2]; the standard landmarks
    are the means of the mapped m_j, between s1 and s2."""
    s1, s2 = scale
    mapped = []
    for arr in train_arrays:
        mu = [float(np.percentile(arr.astype("float64").ravel(), p)) for p in pcs]
        mapped.append([s1 + (m - mu[0]) / (mu[-1] - mu[0]) * (s2 - s1) for m in mu])
    return [s1] + [sum(m[j] for m in mapped) / len(mapped) for j in range(1, len(pcs) - 1)] + [s2]


def nyul_reference_apply(arr, std, pcs):
    """The transformation: the image's own mu mapped onto the standard landmarks one segment at a time, the first and
    last segments extended past p1 and p2."""
    mu = [float(np.percentile(arr.ravel(), p)) for p in pcs]
    out = np.empty(arr.shape)
    for idx, v in np.ndenumerate(arr):
        j = 0
        while j < len(mu) - 2 and v >= mu[j + 1]:
            j += 1
        out[idx] = std[j] + (v - mu[j]) * (std[j + 1] - std[j]) / (mu[j + 1] - mu[j])
    return out


def test_nyul_equals_reference():
    rng = np.random.default_rng(4)
    train = [rng.gamma(2.0 + i, 30.0 * (i + 1), size=(6, 7, 8)) for i in range(3)]
    test = rng.gamma(3.0, 55.0, size=(6, 7, 8))
    params = {"within": "image", "label": 1, "cutoff": [1.0, 99.0], "landmarks": [10.0, 25.0, 50.0, 75.0, 90.0], "scale": [1.0, 100.0]}
    pcs = [1.0, 10.0, 25.0, 50.0, 75.0, 90.0, 99.0]
    lms = []
    for a in train:
        lm, problems = nyul_landmarks(sitk.GetImageFromArray(a), None, params)
        assert problems == []
        lms.append(lm)
    standard = nyul_standard(lms, params)
    ref_std = nyul_reference_standard(train, pcs, (1.0, 100.0))
    ref_out = nyul_reference_apply(test, ref_std, pcs)
    np.testing.assert_allclose(standard, ref_std, rtol=1e-12)
    out, _, problems = nyul_apply(sitk.GetImageFromArray(test), None, {**params, "standard": standard})
    assert problems == []
    np.testing.assert_allclose(sitk.GetArrayFromImage(out), ref_out, rtol=1e-6, atol=1e-5)


def test_nyul_constant_image_is_e657():
    lm, problems = nyul_landmarks(sitk.GetImageFromArray(np.full((4, 4, 4), 7.0)), None,
                                  {"within": "image", "cutoff": [1, 99], "landmarks": [50], "label": 1})
    assert lm is None and [c for c, _ in problems] == ["E657"]


def test_resample_and_hu_clip():
    img, mask = phantom(bias=False)
    out, m, problems = resample_case(img, mask, {"spacing": [2.0, 2.0, 0.0], "interpolator": "sitkLinear", "fill": 0.0})
    assert problems == [] and out.GetSpacing() == (2.0, 2.0, 1.5) and out.GetSize() == (10, 10, 20)
    ref = sitk.Resample(img, out, sitk.Transform(), sitk.sitkLinear, 0.0, img.GetPixelID())
    np.testing.assert_array_equal(sitk.GetArrayFromImage(out), sitk.GetArrayFromImage(ref))
    assert m.GetSize() == out.GetSize() and set(np.unique(sitk.GetArrayFromImage(m))) == {0, 1}
    clipped, _, _ = hu_clip_image(img, None, {"lo": 20.0, "hi": 120.0})
    np.testing.assert_array_equal(sitk.GetArrayFromImage(clipped), np.clip(sitk.GetArrayFromImage(img), 20, 120))


# ---- studies -------------------------------------------------------------------------------------

def write_cohort(folder: Path, name: str, n: int, seed: int, offset=0.0) -> Path:
    """A manifest of n bias-field phantoms (NIfTI image + lesion mask), outcome alternating."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = [["case_id", "image", "mask", "y"]]
    for i in range(n):
        img, mask = phantom(seed=seed + i, n=16, offset=offset)
        arr = sitk.GetArrayFromImage(img)
        arr[sitk.GetArrayFromImage(mask) == 1] += 15.0 * (i % 2)     # a signal the model can find
        img2 = sitk.GetImageFromArray(arr)
        img2.CopyInformation(img)
        sitk.WriteImage(img2, str(folder / f"{name}{i}.nii.gz"))
        sitk.WriteImage(mask, str(folder / f"{name}{i}_mask.nii.gz"))
        rows.append([f"{name}{i}", f"{name}{i}.nii.gz", f"{name}{i}_mask.nii.gz", str(i % 2)])
    path = folder / f"{name}.csv"
    with open(path, "w", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)
    return path


STUDY = """study "mr" {{ seed: 2 }}
cohort train = manifest("data/train.csv") {{ image: image, mask: mask, outcome: y as binary }}
cohort test = manifest("data/test.csv") {{ image: image, mask: mask, outcome: y as binary }}
preprocess flat = n4(train.image) {{ iterations: [5, 5] }}
preprocess std = nyul(flat.image) {{ within: body, landmarks: [25, 50, 75] }}
features rad = pyradiomics(std.image, std.mask) {{ bin_width: 5, classes: [firstorder] }}
model clf = logistic(rad, target: train.outcome)
validate v = evaluate(clf) {{ {validation} }}
"""


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("mr")
    write_cohort(root / "data", "train", 8, 10)
    write_cohort(root / "data", "test", 6, 50)
    return root


def compile_study(root: Path, validation="cv: none, external: test, bootstrap: 50", name="s.rad"):
    spec = root / name
    spec.write_text(STUDY.format(validation=validation))
    res = compile_source(spec.read_text(), str(spec))
    return res


def images(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted((out / "images").rglob("*")) if p.is_file()}


def test_nyul_is_refit_in_folds_or_refused(study_dir):
    from radlang.backends.plan import plan_text

    # on the image chain of the features a cross-validation extracts: refit in each training fold (no E504)
    res = compile_study(study_dir, "cv: kfold(3)", "cv.rad")
    assert not [d for d in res.diagnostics if d.severity == "error"], [(d.code, d.message) for d in res.diagnostics]
    v = res.study.by_name()["v"]
    assert v.extra["image_fits"] == ["std"] and res.study.by_name()["std"].fit_within == ("v",)
    plan = plan_text(res.study)
    assert "fit on data statistics: inside the training folds of v" in plan
    assert "image stages refit in each training fold: std (nyul); rad extracted again per fold" in plan
    # with `cv: none` the landmarks are fit once, on every training case
    ok = compile_study(study_dir)
    assert not [d for d in ok.diagnostics if d.severity == "error"] and "image_fits" not in ok.study.by_name()["v"].extra
    # elsewhere than on the features' image chain (here: the image a segmenter reads) it is fit once, on every case: E504
    spec = study_dir / "seg.rad"
    spec.write_text(STUDY.format(validation="cv: kfold(3)").replace(
        "features rad = pyradiomics(std.image, std.mask)", "segment roi = otsu(std.image)\nfeatures rad = pyradiomics(train.image, roi)"))
    e504 = [d for d in compile_source(spec.read_text(), str(spec)).diagnostics if d.code == "E504"]
    assert len(e504) == 1 and "`std`" in e504[0].message and "`train`" in e504[0].message
    # a selector that re-extracts its input (icc's perturbations) through it: the re-extractions would not be per fold
    spec.write_text(STUDY.format(validation="cv: kfold(3)").replace(
        "model clf = logistic(rad,", "select rob = icc(rad) { perturb: [erode(1)] }\nmodel clf = logistic(rob,"))
    assert "E523" in [d.code for d in compile_source(spec.read_text(), str(spec)).diagnostics if d.severity == "error"]


def body_values(path: Path) -> np.ndarray:
    """The image's intensities within its Otsu body: what Nyúl's landmarks are taken over."""
    from radlang.ops.preprocess import region_of

    im = sitk.ReadImage(str(path))
    region, _ = region_of(im, None, {"within": "body"})
    return sitk.GetArrayFromImage(im)[region]


def test_nyul_landmarks_in_each_fold_come_from_its_training_cases_only(study_dir, tmp_path):
    spec = study_dir / "cv2.rad"        # without N4 (the other tests cover it): the landmarks of the images as read
    spec.write_text(STUDY.format(validation="cv: stratified_kfold(2), bootstrap: 20").replace(
        "preprocess flat = n4(train.image) { iterations: [5, 5] }\n", "").replace("nyul(flat.image)", "nyul(train.image)"))
    res = compile_source(spec.read_text(), str(spec))
    out = tmp_path / "run"
    run_study(res.study, out=out, workers=1, quiet=True)
    with open(out / "predictions/v.csv") as fh:
        held = {}
        for r in csv.DictReader(fh):
            held.setdefault(r["fold"], set()).add(r["case_id"])
    everyone = {f"train{i}" for i in range(8)}
    pcs = [1, 25, 50, 75, 99]
    folds = [json.loads(p.read_text()) for p in sorted((out / "images/std").glob("on-*/landmarks.json"))]
    assert len(folds) == 2
    all_cases = nyul_reference_standard([body_values(study_dir / "data" / f"{c}.nii.gz") for c in sorted(everyone)], pcs, (1.0, 100.0))
    for lm in folds:
        train = set(lm["fit_cases"])
        assert any(train == everyone - test for test in held.values()), (train, held)
        # the reference from the training fold's images alone; with the held-out cases among them it would differ
        ref = nyul_reference_standard([body_values(study_dir / "data" / f"{c}.nii.gz") for c in sorted(train)], pcs, (1.0, 100.0))
        np.testing.assert_allclose(lm["standard"], ref, rtol=1e-9)
        assert not np.allclose(lm["standard"], all_cases, rtol=1e-6)
    metrics = json.loads((out / "metrics/v.json").read_text())
    assert metrics["image_fits"] == ["std"]

    # the rendered script refits them the same way: the same fold images, features and metrics
    from radlang.backends.render.script import render_to_file

    proc = run_script(render_to_file(res.study, tmp_path / "study.py"), "--out", str(tmp_path / "script"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert images(tmp_path / "script") == images(out)
    for f in ("metrics/v.json", "predictions/v.csv"):
        assert (tmp_path / "script" / f).read_bytes() == (out / f).read_bytes(), f


def test_study_caches_renders_and_learns_landmarks_on_training_images_only(study_dir, tmp_path):
    res = compile_study(study_dir)
    out = tmp_path / "run"
    run_study(res.study, out=out, workers=1, quiet=True)
    first = images(out)
    # the external cohort's images: standardised with the training landmarks, in a folder named by its content
    [ext] = [p.name for p in (out / "images/std").iterdir() if p.name.startswith("on-")]
    assert sorted(k for k in first if k.startswith(f"images/std/{ext}/")) == [f"images/std/{ext}/test{i}.nii.gz" for i in range(6)]
    assert sorted(k for k in first if k.startswith("images/std/train/")) == [f"images/std/train/train{i}.nii.gz" for i in range(8)]

    # leakage: the landmarks are the reference's from the N4-corrected *training* images alone; with the external
    # cohort's images among them they would differ
    params = {"within": "body", "label": 1, "cutoff": [1.0, 99.0], "landmarks": [25.0, 50.0, 75.0], "scale": [1.0, 100.0]}
    from radlang.ops.preprocess import region_of

    def lms(split, n):
        got = []
        for i in range(n):
            [im] = [sitk.ReadImage(str(p)) for p in (out / "images/flat").glob(f"*/{split}{i}.nii.gz")]
            region, _ = region_of(im, None, params)
            got.append(sitk.GetArrayFromImage(im)[region])
        return got

    train_only = nyul_reference_standard(lms("train", 8), [1, 25, 50, 75, 99], (1.0, 100.0))
    with_test = nyul_reference_standard(lms("train", 8) + lms("test", 6), [1, 25, 50, 75, 99], (1.0, 100.0))
    learned = json.loads((out / "images/std/landmarks.json").read_text())["standard"]
    np.testing.assert_allclose(learned, train_only, rtol=1e-9)
    assert not np.allclose(learned, with_test, rtol=1e-6)

    # `radlang predict` puts new cases through the same stages, with the same landmarks: the external cohort's
    # predictions again
    from radlang.predict import predict

    predict(res.study, "v", study_dir / "data" / "test.csv", tmp_path / "new.csv", out=out)
    with open(tmp_path / "new.csv") as fh, open(out / "predictions/v.csv") as gh:
        assert {r["case_id"]: r["probability"] for r in csv.DictReader(fh)} == {
            r["case_id"]: r["probability"] for r in csv.DictReader(gh) if r["set"] == "external"}

    # a second run computes nothing again
    ctx = run_study(res.study, out=out, workers=1, quiet=True)
    assert ctx.cache.misses == 0
    assert images(out) == first
    # a tampered output image (W672) and a damaged cache entry (W670) are computed again, to the same bytes
    victim = out / "images/std/train/train3.nii.gz"
    victim.write_bytes(b"not an image")
    entry = next(p for p in sorted((out / ".cache").glob("??/*.json")) if b"images/flat/train/train1.nii.gz" in p.read_bytes())
    entry.write_bytes(entry.read_bytes().replace(b"images/flat/train/train1.nii.gz", b"images/flat/train/train2.nii.gz"))
    ctx = run_study(res.study, out=out, workers=1, quiet=True)
    said = "\n".join(ctx.warnings)
    assert "W670" in said and "W672" in said and "images/std/train/train3.nii.gz" in said, said
    assert images(out) == first

    # determinism and run = rendered script: the same image bytes, features and metrics in another folder
    from radlang.backends.render.script import render_to_file

    script = render_to_file(res.study, tmp_path / "study.py")
    proc = run_script(script, "--out", str(tmp_path / "script"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert images(tmp_path / "script") == first
    for f in ("features/rad.csv", "metrics/v.json", "predictions/v.csv"):
        assert (tmp_path / "script" / f).read_bytes() == (out / f).read_bytes(), f


def test_zscore_within_empty_roi_names_case_and_file(tmp_path):
    data = tmp_path / "data"
    write_cohort(data, "train", 4, 1)
    empty = sitk.Image([16, 16, 16], sitk.sitkUInt8)
    empty.CopyInformation(sitk.ReadImage(str(data / "train2_mask.nii.gz")))
    sitk.WriteImage(empty, str(data / "train2_mask.nii.gz"))
    spec = tmp_path / "z.rad"
    spec.write_text('study "z" { seed: 1 }\n'
                    'cohort train = manifest("data/train.csv") { image: image, mask: mask, outcome: y as binary }\n'
                    'preprocess z = zscore(train.image) { within: roi }\n')
    res = compile_source(spec.read_text(), str(spec))
    with pytest.raises(RunError) as e:
        run_study(res.study, out=tmp_path / "out", workers=1, quiet=True)
    [d] = e.value.diagnostics
    assert d.code == "E605" and "case `train2`" in d.message and "train2_mask.nii.gz" in d.message


def test_hu_clip_on_an_mr_dicom_series_is_e654(tmp_path):
    series = tmp_path / "data" / "mr0"
    series.mkdir(parents=True)
    vol = sitk.GetImageFromArray(np.arange(4 * 8 * 8, dtype=np.int16).reshape(4, 8, 8))
    for k in range(4):
        sl = vol[:, :, k]
        w = sitk.ImageFileWriter()
        w.KeepOriginalImageUIDOn()
        for tag, v in (("0008|0060", "MR"), ("0020|0032", f"0\\0\\{k}"), ("0020|0013", str(k + 1)),
                       ("0020|000e", "1.2.826.0.1.3680043.2.1125.1.1"), ("0020|000d", "1.2.826.0.1.3680043.2.1125.1.2"),
                       ("0008|0018", f"1.2.826.0.1.3680043.2.1125.1.3.{k}")):
            sl.SetMetaData(tag, v)
        w.SetFileName(str(series / f"{k}.dcm"))
        w.Execute(sl)
    (tmp_path / "data" / "m.csv").write_text("case_id,image,y\nmr0,mr0,1\n")
    spec = tmp_path / "h.rad"
    spec.write_text('study "h" { seed: 1 }\n'
                    'cohort train = manifest("data/m.csv") { image: image, outcome: y as binary }\n'
                    'preprocess win = hu_clip(train.image, -1000HU, 400HU)\n')
    res = compile_source(spec.read_text(), str(spec))
    with pytest.raises(RunError) as e:
        run_study(res.study, out=tmp_path / "out", workers=1, quiet=True)
    [d] = e.value.diagnostics
    assert d.code == "E654" and "case `mr0`" in d.message and "Modality MR" in d.message and str(series) in d.message


@pytest.mark.parametrize(("text", "code"), [
    (('preprocess iso = resample(train.image, [2mm, 2mm, 2mm])\n'
      'features rad = pyradiomics(iso.image, iso.mask) { resample: [1mm, 1mm, 1mm] }\n'), "E327"),
    ('cohort two = manifest("m.csv") { image: [a, b], outcome: y as binary }\npreprocess n = n4(two.image)\n', "E278"),
    ('cohort nomask = manifest("m.csv") { image: a, outcome: y as binary }\npreprocess z = zscore(nomask.image) { within: roi }\n', "E279"),
])
def test_compile_time_diagnostics(text, code):
    src = 'study "c" { seed: 1 }\ncohort train = phantom(8)\n' + text
    res = compile_source(src, "<c>")
    assert code in [d.code for d in res.diagnostics if d.severity == "error"], [(d.code, d.message) for d in res.diagnostics]
