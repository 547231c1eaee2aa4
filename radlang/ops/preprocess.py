"""Image preprocessing stages: each maps a cohort's images to new images, case by case, and yields a derived cohort
(the same cases, outcome, patients and columns, the image column pointing at the new files) that PyRadiomics,
a segmenter or a network reads like any cohort:

    preprocess flat = n4(train.image) { shrink: 2 }                     # N4 bias-field correction (SimpleITK)
    preprocess iso  = resample(flat.image) { spacing: [1mm, 1mm, 1mm] } # a stated spacing, interpolator; the mask follows
    preprocess std  = nyul(iso.image) { within: body }                  # Nyúl-Udupa histogram standardisation (fitted)
    preprocess z    = zscore(iso.image) { within: roi }                 # z-score within the ROI (or the body, the image)
    preprocess win  = hu_clip(ct.image, -1000HU, 400HU)                 # CT: clip to a HU window
    features rad = pyradiomics(std.image, std.mask) { bin_width: 5 }

Every stage runs per case (`preprocess_case`, mapped by radlang/backends/cases.py over the process pool) and writes
<out>/images/<stage>/<cohort>/<case>.nii.gz atomically (and <case>_mask.nii.gz when it resamples the mask); each case
is cached under its content (operator, settings, the input files' SHA-256, and for Nyúl the standard landmarks), and a
cached case whose file changed or vanished is computed again. The image functions (`n4_correct`, `zscore_image`,
`resample_case`, `hu_clip_image`, `nyul_landmarks`, `nyul_standard`, `nyul_apply`, `region_of`) are self-contained
(radlang/registry.py): SimpleITK images in; the steps return (image, mask or None, problems), `nyul_landmarks`
(landmarks, problems), each problem a (code, message) pair.

`nyul` is fitted on data statistics (fit: "data"): its standard landmarks are learned from every image of the cohort
it reads, then applied to that cohort and, through `on_cohort`, to another (an external cohort, new cases for
`radlang predict`) with the same landmarks. A cross-validation refits it inside every training fold: the
`fit_boundaries` pass lists it in the validation's `image_fits`, and evaluation hands `on_cohort` the cohort table
with the training fold's case ids (`attrs["radlang"]["fit_cases"]`): the landmarks are learned on those cases alone,
every case of the fold is standardised with them (<out>/images/<stage>/on-<hash>/, one folder per fold, with its
landmarks.json), and the features are extracted per fold. Used anywhere else than on the image chain of the features
a validation extracts (the image a segmenter reads, say), it is fit once, and a cross-validation of its cohort is E504.
"""

from __future__ import annotations

import itertools
from typing import Literal

from pydantic import Field, field_validator, model_validator

from radlang.ops.features import INTERPOLATORS
from radlang.ops.segment import check_mask, largest_component, segment_otsu
from radlang.registry import Operator, Port, register
from radlang.types import RType
from radlang.units import Intensity, Length
from radlang.values import Settings, contradiction, out_of_range

# ---- self-contained image functions --------------------------------------------------------------


def region_of(image, mask, params):
    """The voxels a statistic is taken over, as a boolean numpy array (z, y, x): `within` "image" (every voxel),
    "body" (Otsu foreground: largest component, holes filled; segment_otsu) or "roi" (the cohort's mask == `label`,
    checked against the image: check_mask). Returns (array or None, problems)."""
    import numpy as np
    import SimpleITK as sitk

    within = params["within"]
    if within == "image":
        return np.ones(sitk.GetArrayViewFromImage(image).shape, dtype=bool), []
    if within == "body":
        body, problems = segment_otsu(image, None, {"smooth": None, "largest": True, "fill_holes": True, "bins": 128})
        return (None, problems) if body is None else (sitk.GetArrayFromImage(body) > 0, [])
    if mask is None:
        return None, [("E603", "`within: roi` needs the cohort's mask, and the case has none")]
    mask, problems = check_mask(image, mask, int(params["label"]))
    if problems:
        return None, problems
    return sitk.GetArrayFromImage(mask) == int(params["label"]), []


def n4_correct(image, mask, params):
    """N4 bias-field correction (Tustison et al. 2010) with SimpleITK's N4BiasFieldCorrectionImageFilter: the bias field
    is fit on the image shrunk by `shrink` (within the Otsu body foreground, or every voxel: `region_of`), then the full-resolution image
    is divided by exp(log bias field) (SimpleITK's documented recipe). Float32 out."""
    import numpy as np
    import SimpleITK as sitk

    img = sitk.Cast(image, sitk.sitkFloat32)
    region, problems = region_of(img, None, params)
    if problems:
        return None, None, problems
    fit_mask = sitk.GetImageFromArray(region.astype("uint8"))
    fit_mask.CopyInformation(img)
    inside = sitk.GetArrayViewFromImage(img)[region]
    if float(inside.min()) <= 0:
        return None, None, [("E655", (f"N4 needs positive intensities where it fits the bias field, but the lowest is {float(inside.min()):g} "
                                      "(a CT in HU, or a background of zeros with `within: image`)"))]
    shrink = int(params["shrink"])
    small = sitk.Shrink(img, [shrink] * img.GetDimension()) if shrink > 1 else img
    small_mask = sitk.Shrink(fit_mask, [shrink] * img.GetDimension()) if shrink > 1 else fit_mask
    f = sitk.N4BiasFieldCorrectionImageFilter()
    f.SetMaximumNumberOfIterations([int(n) for n in params["iterations"]])
    f.SetConvergenceThreshold(float(params["convergence"]))
    f.SetNumberOfControlPoints([int(params["control_points"])] * img.GetDimension())
    f.SetBiasFieldFullWidthAtHalfMaximum(float(params["fwhm"]))
    f.SetNumberOfHistogramBins(int(params["bins"]))
    f.SetNumberOfThreads(1)                      # the same bytes whatever the machine
    f.Execute(small, small_mask)
    log_bias = f.GetLogBiasFieldAsImage(img)
    out = img / sitk.Exp(log_bias)
    if not np.isfinite(sitk.GetArrayViewFromImage(out)).all():
        return None, None, [("E655", "N4 produced non-finite intensities")]
    return sitk.Cast(out, sitk.sitkFloat32), None, []


def zscore_image(image, mask, params):
    """(x - mean) / sd over the whole image, mean and sd (population, ddof 0) taken within the region (`region_of`).
    Float32 out."""
    import numpy as np
    import SimpleITK as sitk

    region, problems = region_of(image, mask, params)
    if problems:
        return None, None, problems
    arr = sitk.GetArrayFromImage(image).astype("float64")
    vals = arr[region]
    sd = float(vals.std())
    if not sd > 0:
        return None, None, [("E656", (f"the intensities within the {params['within']} region are constant ({float(vals.mean()):g}): "
                                      "a z-score divides by their standard deviation, 0"))]
    out = sitk.GetImageFromArray(((arr - vals.mean()) / sd).astype(np.float32))
    out.CopyInformation(image)
    return out, None, []


def resample_case(image, mask, params):
    """Resample the image to `spacing` (mm; 0 keeps an axis' spacing) with the stated interpolator, over the same
    physical extent (origin and direction kept; size = round(size * old / new spacing)), and the mask, if any, onto the
    new grid with nearest neighbour. The image keeps its pixel type."""
    import SimpleITK as sitk

    old = image.GetSpacing()
    new = [float(s) if float(s) > 0 else o for s, o in zip(params["spacing"], old)]
    size = [max(1, round(n * o / s)) for n, o, s in zip(image.GetSize(), old, new)]
    f = sitk.ResampleImageFilter()
    f.SetOutputSpacing(new)
    f.SetSize(size)
    f.SetOutputOrigin(image.GetOrigin())
    f.SetOutputDirection(image.GetDirection())
    f.SetTransform(sitk.Transform())
    f.SetDefaultPixelValue(float(params["fill"]))
    f.SetInterpolator(getattr(sitk, params["interpolator"]))
    f.SetOutputPixelType(image.GetPixelID())
    out = f.Execute(image)
    if mask is None:
        return out, None, []
    f.SetInterpolator(sitk.sitkNearestNeighbor)
    f.SetDefaultPixelValue(0)
    f.SetOutputPixelType(mask.GetPixelID())
    return out, f.Execute(mask), []


def hu_clip_image(image, mask, params):
    """Clamp intensities to [lo, hi] (a HU window); the pixel type is kept."""
    import SimpleITK as sitk

    lo = -3.4e38 if params.get("lo") is None else float(params["lo"])
    hi = 3.4e38 if params.get("hi") is None else float(params["hi"])
    return sitk.Clamp(image, image.GetPixelID(), lo, hi), None, []


def nyul_landmarks(image, mask, params):
    """One image's landmarks (Nyúl & Udupa 1999; Nyúl, Udupa & Zhang 2000): the intensity percentiles
    [cutoff lo, landmarks..., cutoff hi] within the region. Returns (list of floats or None, problems)."""
    import numpy as np

    region, problems = region_of(image, mask, params)
    if problems:
        return None, problems
    import SimpleITK as sitk

    vals = sitk.GetArrayViewFromImage(image)[region].astype("float64")
    pcs = [float(params["cutoff"][0])] + [float(p) for p in params["landmarks"]] + [float(params["cutoff"][1])]
    lm = np.percentile(vals, pcs)
    if not np.all(np.diff(lm) > 0):
        return None, [("E657", (f"the image's histogram landmarks at percentiles {', '.join(f'{p:g}' for p in pcs)} are not strictly "
                                f"increasing ({', '.join(f'{v:g}' for v in lm)}): too few distinct intensities in the region to standardise"))]
    return [float(v) for v in lm], []


def nyul_standard(landmarks, params):
    """The standard scale learned from the training images' landmarks: each image's landmarks mapped linearly so that
    its cutoffs land on the scale's ends [s1, s2], then averaged; the ends are s1 and s2."""
    import numpy as np

    s1, s2 = (float(v) for v in params["scale"])
    lm = np.asarray(landmarks, dtype="float64")
    mapped = s1 + (lm - lm[:, :1]) / (lm[:, -1:] - lm[:, :1]) * (s2 - s1)
    std = mapped.mean(axis=0)
    std[0], std[-1] = s1, s2
    return [float(v) for v in std]


def nyul_apply(image, mask, params):
    """Map the image's own landmarks onto the standard ones (params["standard"]) piecewise linearly, every voxel;
    beyond the cutoffs, the first and last segments are extended. Float32 out."""
    import numpy as np
    import SimpleITK as sitk

    own, problems = nyul_landmarks(image, mask, params)
    if problems:
        return None, None, problems
    src, dst = np.asarray(own), np.asarray(params["standard"], dtype="float64")
    arr = sitk.GetArrayFromImage(image).astype("float64")
    seg = np.clip(np.searchsorted(src, arr, side="right") - 1, 0, len(src) - 2)
    slope = (dst[seg + 1] - dst[seg]) / (src[seg + 1] - src[seg])
    out = sitk.GetImageFromArray((dst[seg] + (arr - src[seg]) * slope).astype(np.float32))
    out.CopyInformation(image)
    return out, None, []


# ---- run time: one case job per case -------------------------------------------------------------


def image_modality(path):
    """The DICOM Modality (0008,0060) of a series' first file (a folder, or `folder#<SeriesInstanceUID>`), upper case;
    None for other formats."""
    import os

    import SimpleITK as sitk

    from radlang.ops.dicom import series_files, split_ref

    if not os.path.isdir(split_ref(path)[0]):
        return None
    files = series_files(path)
    if not files:
        return None
    r = sitk.ImageFileReader()
    r.SetFileName(files[0])
    r.ReadImageInformation()
    return r.GetMetaData("0008|0060").strip().upper() if r.HasMetaDataKey("0008|0060") else None


def write_image(image, path):
    """Write a SimpleITK image atomically (a uniquely named temporary file in the same folder, then os.replace).
    Returns the file's SHA-256."""
    import hashlib
    import os
    import uuid

    import SimpleITK as sitk

    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = os.path.join(os.path.dirname(path), f".{uuid.uuid4().hex}.tmp.nii.gz")
    try:
        sitk.WriteImage(image, tmp, True)
        with open(tmp, "rb") as fh:
            digest = hashlib.file_digest(fh, "sha256").hexdigest()
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return digest


def check_preprocess_case(job) -> list[dict]:
    """Cheap checks before the work: the image (and the mask, when the step reads it) exist and are readable, and the
    mask fits the image (features.check_case), and the image's modality, where its DICOM header states it, is one the
    step is meant for."""
    from radlang.ops.features import check_case

    problems = check_case(job)
    if problems:
        return problems
    col, path = job["images"][0]
    modality = image_modality(path)
    if job["modality"] and modality and modality not in job["modality"]:
        problems.append({"case": job["case"], "file": path, "column": col, "code": "E654",
                         "message": f"`{job['op']}` is meant for {' or '.join(job['modality'])} images, but the series' DICOM header "
                                    f"says Modality {modality}"})
    return problems


def apply_step(job):
    """Load the case's image (and the mask, when the step reads it) and apply job["fn"](image, mask, params), which
    returns (*results, problems). -> ({case, problems}, results or None): problems name the case, and the mask file
    when the statistics are taken within the ROI, the image file otherwise."""
    from radlang.ops.features import _case_problem, _short_error
    from radlang.ops.segment import load_image

    out = {"case": job["case"], "problems": []}
    col, path = job["images"][0]
    try:
        image = load_image(path)
        mask = load_image(job["mask"]) if job["seg"]["source"] == "mask" else None
    except Exception as e:  # noqa: BLE001 -- any reader failure is bad data, reported as a diagnostic
        out["problems"].append(_case_problem(job, f"unreadable or corrupt file ({_short_error(e)})", path, col, "E602"))
        return out, None
    *results, problems = job["fn"](image, mask, job["params"])
    if problems:
        f, c = (job["mask"], job["mask_column"]) if mask is not None and job["params"].get("within") == "roi" else (path, col)
        out["problems"] = [_case_problem(job, m, f, c, code) for code, m in problems]
        return out, None
    return out, results


def preprocess_case(job) -> dict:
    """One case: apply the step (apply_step), write the new image (and the resampled mask) atomically. Returns
    {case, problems, image, sha256[, mask, mask_sha256]}: paths relative to the run's out folder."""
    import os

    out, results = apply_step(job)
    if results is None:
        return out
    new, new_mask = results
    out["image"] = job["dest"]
    out["sha256"] = write_image(new, os.path.join(job["out"], job["dest"]))
    if new_mask is not None:
        out["mask"] = job["dest"].replace(".nii.gz", "_mask.nii.gz")
        out["mask_sha256"] = write_image(new_mask, os.path.join(job["out"], out["mask"]))
    return out


def landmarks_case(job) -> dict:
    """Nyúl's first pass on one case (job["fn"] is nyul_landmarks). Returns {case, problems, landmarks}."""
    out, results = apply_step(job)
    if results is not None:
        out["landmarks"] = results[0]
    return out


def _jobs(ctx, stage, cohort_df, params, fn, cohort=None):
    """One job per case of `cohort_df`, and its cache key (None when a file cannot be hashed: check_case names it).
    The images go to <out>/images/<stage>/<cohort>/: `cohort` is the stage's own cohort's name, or, for another cohort
    table (on_cohort), `on-` and a hash of its case ids, files' contents and the settings with the fitted state (a table's
    name need not be unique; Nyúl fit in each training fold writes each fold's images apart)."""
    from radlang import registry
    from radlang.backends.cache import key
    from radlang.ops.features import image_columns

    op = registry.get(stage.op)
    names = cohort_df.attrs.get("radlang", {}).get("columns", {})
    col = image_columns(cohort_df, stage.inputs["image"].attr or "image")[0]
    reads_mask = "mask" in cohort_df.columns and (params.get("within") == "roi" or stage.op == "resample")
    rows = cohort_df.to_dict("records")
    hashes = []
    for row in rows:
        try:
            hashes.append([ctx.hash_input(row[col])] + ([ctx.hash_input(row["mask"])] if reads_mask else []))
        except (OSError, TypeError):
            hashes.append(None)
    cohort = cohort or "on-" + key([(str(r["case_id"]), h) for r, h in zip(rows, hashes)], params)[:12]
    jobs, keys = [], []
    for row, h in zip(rows, hashes):
        case = str(row["case_id"])
        job = {"case": case, "images": [(names.get(col, col), row[col])], "mask": row.get("mask") if reads_mask else None,
               "mask_column": names.get("mask", "mask"), "seg": {"source": "mask" if reads_mask else "image", "op": None,
                                                                  "label": int(params.get("label") or 1)},
               "fn": fn, "params": params, "op": stage.op, "modality": MODALITIES.get(stage.op),
               "out": str(ctx.out), "dest": f"images/{stage.name}/{cohort}/{case}.nii.gz"}
        jobs.append(job)
        keys.append(key("preprocess", stage.op, op.version, params, h, job["dest"]) if h is not None else None)
    return jobs, keys, col, f"images/{stage.name}/{cohort}"


def apply_stage(ctx, stage, cohort_df, params, fn, label, cohort=None):
    """Run `fn` on every case of `cohort_df` through the per-case map, reusing cached cases whose files are intact.
    -> the derived cohort table (image, and resampled mask, columns replaced by the new files), its content key, and
    the folder of its images under the out folder."""
    from radlang.backends.cache import key, output_sha256
    from radlang.backends.cases import excluded_cases, map_cases
    from radlang.ops.features import _case_weight

    jobs, keys, col, folder = _jobs(ctx, stage, cohort_df, params, fn, cohort)
    done, todo, todo_keys, stale = {}, [], [], []
    for j, k in zip(jobs, keys):
        hit = ctx.cache.get(k) if k else None
        if hit is not None and all(output_sha256(ctx.out / hit[f]) == hit[f"{p}sha256"]
                                   for f, p in (("image", ""), ("mask", "mask_")) if f in hit):
            done[j["case"]] = hit
            continue
        if hit is not None:
            ctx.warn("W672", f"`{stage.name}`: {hit['image']} changed since radlang wrote it, or is missing; computed again")
            stale.append((j["case"], k))
        # a case with a stale entry is mapped without its key (map_cases would return the entry) and cached below
        todo.append(j)
        todo_keys.append(None if hit is not None else k)
    results, problems = map_cases(ctx, stage, todo, todo_keys, check_preprocess_case, preprocess_case, _case_weight, label)
    for case, k in stale:
        if case in results:
            ctx.cache.put(k, results[case])
    done.update(results)
    for e in excluded_cases(problems):
        ctx.excluded.append({"stage": stage.name, **e})
    df = cohort_df[cohort_df["case_id"].astype(str).isin(done)].copy()
    df[col] = [str(ctx.out / done[str(c)]["image"]) for c in df["case_id"]]
    if any("mask" in done[str(c)] for c in df["case_id"]):
        df["mask"] = [str(ctx.out / done[str(c)]["mask"]) for c in df["case_id"]]
    df.attrs = {**cohort_df.attrs, "radlang": {**cohort_df.attrs.get("radlang", {}),
                                                "steps": [*cohort_df.attrs.get("radlang", {}).get("steps", []), stage.name]}}
    return df.reset_index(drop=True), key("preprocessed", [k for j, k in zip(jobs, keys) if j["case"] in done]), folder


def _params(stage):
    """The settings the image function reads (interpolator: SimpleITK's name)."""
    p = dict(stage.params)
    if "interpolator" in p:
        p["interpolator"] = INTERPOLATORS[p["interpolator"]]
    return p


def _nyul_fit(ctx, stage, cohort_df, params):
    """Nyúl's fit: every case's landmarks (cached per case), then the standard scale from all of them."""
    from radlang.backends.cache import key
    from radlang.backends.cases import map_cases
    from radlang.ops.features import _case_weight

    jobs, keys, _, _ = _jobs(ctx, stage, cohort_df, params, nyul_landmarks, stage.type.cohort)
    lkeys = [key("nyul-landmarks", k) if k else None for k in keys]
    results, _ = map_cases(ctx, stage, jobs, lkeys, check_preprocess_case, landmarks_case, _case_weight,
                           f"{stage.name}: learning landmarks")
    return nyul_standard([results[j["case"]]["landmarks"] for j in jobs if j["case"] in results], params)


def write_landmarks(ctx, folder, params, fit_cases):
    """<out>/<folder>/landmarks.json: the percentiles, the standard landmarks learned from them, and the cases they
    were learned on."""
    import json

    from radlang.backends.cache import atomic_write_text

    pcs = [params["cutoff"][0], *params["landmarks"], params["cutoff"][1]]
    atomic_write_text(ctx.out / folder / "landmarks.json",
                      json.dumps({"percentiles": pcs, "standard": params["standard"], "fit_cases": fit_cases}, indent=2) + "\n")


def run_preprocess(stage, ctx):
    """The stage on its own cohort: the derived cohort table (and, for Nyúl, the standard landmarks learned on every
    case of it, written to <out>/images/<stage>/landmarks.json)."""
    from radlang import registry

    src = ctx.results[stage.inputs["image"].stage]
    params = _params(stage)
    if stage.op == "nyul":
        params["standard"] = _nyul_fit(ctx, stage, src, params)
        write_landmarks(ctx, f"images/{stage.name}", params, sorted(src["case_id"].astype(str)))
    df, content, _ = apply_stage(ctx, stage, src, params, registry.get(stage.op).impl, f"{stage.name}: {stage.op}",
                                 stage.type.cohort)
    df.attrs["radlang"]["standard"] = params.get("standard")
    ctx.keys[stage.name] = content
    return df


def preprocess_on_cohort(ctx, stage, cohort_df, perturb=None):
    """The stage applied to another cohort table: its upstream preprocessing first, then this step. Nyúl uses the
    landmarks learned on the stage's own cohort (an external cohort, new cases for `radlang predict`), unless the
    table names the cases to fit on (`attrs["radlang"]["fit_cases"]`: a validation's training fold, see
    radlang/passes/fit_boundaries.py): then it learns the landmarks on those cases alone and standardises every case
    of the table with them, the landmarks written beside the fold's images."""
    from radlang import registry
    from radlang.backends.glue import upstream_on_cohort

    cohort_df = upstream_on_cohort(ctx, stage.inputs["image"].stage, cohort_df)
    params = _params(stage)
    fit_cases = cohort_df.attrs.get("radlang", {}).get("fit_cases")
    if stage.op == "nyul" and fit_cases is None:
        params["standard"] = ctx.results[stage.name].attrs["radlang"]["standard"]
    elif stage.op == "nyul":
        train = cohort_df[cohort_df["case_id"].astype(str).isin({str(c) for c in fit_cases})]
        params["standard"] = _nyul_fit(ctx, stage, train, params)
    name = cohort_df.attrs.get("radlang", {}).get("name") or "cohort"
    df, _, folder = apply_stage(ctx, stage, cohort_df, params, registry.get(stage.op).impl, f"{stage.name} ({name}): {stage.op}")
    if stage.op == "nyul" and fit_cases is not None:
        write_landmarks(ctx, folder, params, sorted(str(c) for c in fit_cases))
    return df


MODALITIES = {"n4": ("MR",), "nyul": ("MR",), "hu_clip": ("CT",)}   # where a DICOM header states another, E654


# ---- compile time --------------------------------------------------------------------------------


def _preprocess_type(ctx) -> RType | None:
    """A derived cohort: the input cohort's type (outcome, mask, site), so `<stage>.image`, `.mask` and `.outcome`
    resolve like the cohort's."""
    img = ctx.inputs.get("image")
    src = ctx.types.get(img.detail.split(".")[0]) if img is not None else None
    if img is None or src is None:
        return None
    if img.channels and img.channels > 1:
        ctx.error("E278", f"`{ctx.stmt.op.name}` preprocesses one image per case, but `{img.detail}` has {img.channels} channels",
                  port="image", hint="declare one cohort per sequence (a manifest whose `image` names one column), each preprocessed on its own")
        return None
    s = ctx.settings
    if getattr(s, "within", None) == "roi" and not src.has_mask:
        ctx.error("E279", f"`within: roi` takes the z-score/landmarks within the cohort's mask, but `{img.detail.split('.')[0]}` has none",
                  setting="within", hint="use `within: body` (Otsu foreground) or `within: image`, or give the cohort a `mask:` column")
    return src.with_(detail=f"{ctx.stmt.op.name} of {img.detail}")


class RegionSettings(Settings):
    within: Literal["roi", "body", "image"] = Field(
        "body", description="the voxels the statistics are taken over: the cohort's mask (`roi`), the Otsu body foreground (`body`), or every voxel (`image`)")
    label: int = Field(1, ge=1, description="the mask value that marks the ROI (with `within: roi`)")


class N4Settings(Settings):
    within: Literal["body", "image"] = Field("body", description="where the bias field is fit: the Otsu body foreground (`body`) or every voxel (`image`)")
    shrink: int = Field(1, ge=1, le=8, description="fit on the image shrunk by this factor per axis (faster); the field is applied at full resolution")
    iterations: list[int] = Field(default_factory=lambda: [50, 50, 50, 50], min_length=1, max_length=8,
                                  description="maximum iterations per fitting level (the number of levels is the list's length)")
    convergence: float = Field(0.001, gt=0, le=1, description="ConvergenceThreshold")
    control_points: int = Field(4, ge=4, le=64, description="B-spline control points per axis (≥ spline order + 1 = 4)")
    fwhm: float = Field(0.15, gt=0, le=1, description="BiasFieldFullWidthAtHalfMaximum")
    bins: int = Field(200, ge=2, le=4096, description="NumberOfHistogramBins")

    @field_validator("iterations")
    @classmethod
    def _pos(cls, v):
        if any(n < 1 for n in v):
            raise out_of_range("iterations must be ≥ 1")
        return v


class ResampleSettings(Settings):
    spacing: list[Length] = Field(min_length=2, max_length=3, description="the new voxel spacing (mm); 0 keeps an axis' spacing")
    interpolator: Literal[tuple(INTERPOLATORS)] = Field("bspline", description="the image's interpolator (the mask: nearest neighbour)")
    fill: Intensity = Field(0.0, description="the value of voxels outside the original image")

    @field_validator("spacing")
    @classmethod
    def _nonneg(cls, v):
        if any(s < 0 for s in v) or not any(s > 0 for s in v):
            raise out_of_range("spacing values are ≥ 0 mm (0 keeps an axis), at least one > 0")
        return v


class HUClipSettings(Settings):
    lo: Intensity | None = Field(None, description="the lowest intensity kept (e.g. -1000HU); none = no lower bound")
    hi: Intensity | None = Field(None, description="the highest intensity kept (e.g. 400HU); none = no upper bound")

    @model_validator(mode="after")
    def _range(self):
        if self.lo is None and self.hi is None:
            raise ValueError("give `lo`, `hi`, or both")
        if self.lo is not None and self.hi is not None and self.lo >= self.hi:
            raise contradiction(f"`lo` ({self.lo:g}) is not below `hi` ({self.hi:g})")
        return self


class NyulSettings(RegionSettings):
    landmarks: list[float] = Field(default_factory=lambda: [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0], min_length=1,
                                   description="the percentiles of the landmarks between the cutoffs (Nyúl 2000: deciles)")
    cutoff: list[float] = Field(default_factory=lambda: [1.0, 99.0], min_length=2, max_length=2,
                                description="the percentiles mapped to the scale's ends (pc1, pc2)")
    scale: list[float] = Field(default_factory=lambda: [1.0, 100.0], min_length=2, max_length=2,
                               description="the standard scale's ends (s1, s2)")

    @model_validator(mode="after")
    def _order(self):
        pcs = [self.cutoff[0], *self.landmarks, self.cutoff[1]]
        if not (0 <= pcs[0] and pcs[-1] <= 100 and all(a < b for a, b in itertools.pairwise(pcs))):
            raise contradiction("the percentiles must increase strictly within 0..100: cutoff[0] < landmarks... < cutoff[1]")
        if not self.scale[0] < self.scale[1]:
            raise contradiction(f"the scale's ends must increase ({self.scale[0]:g} ≥ {self.scale[1]:g})")
        return self


def _image_port():
    return (Port("image", ("Image",), doc="a cohort's image, e.g. `train.image` (or a preprocessing stage's, `flat.image`)"),)


_HOW = ("Writes <out>/images/<stage>/<cohort>/<case>.nii.gz per case (cached per case, written atomically); "
        "the stage is a cohort whose `.image` (and `.mask`, `.outcome`) the next stages read.")

register(Operator(
    name="n4", kind="preprocess", output="Cohort", settings=N4Settings, behaviour="per_case", run=run_preprocess, case=preprocess_case,
    on_cohort=preprocess_on_cohort, inputs=_image_port(), positional=("image",), infer=_preprocess_type, sink=True,
    impl=n4_correct, helpers=(region_of, check_mask, segment_otsu, largest_component), version="1",
    doc="MR: N4 bias-field correction (SimpleITK's N4BiasFieldCorrectionImageFilter), fit within the Otsu foreground. " + _HOW,
    examples=("preprocess flat = n4(train.image) { shrink: 2, iterations: [20, 20] }",),
))

register(Operator(
    name="zscore", kind="preprocess", output="Cohort", settings=RegionSettings, behaviour="per_case", run=run_preprocess,
    case=preprocess_case, on_cohort=preprocess_on_cohort, inputs=_image_port(), positional=("image",), infer=_preprocess_type,
    sink=True, impl=zscore_image, helpers=(region_of, check_mask, segment_otsu, largest_component), version="1",
    doc="Intensity normalisation per case: (x − mean) / sd, mean and sd within the ROI, the body (Otsu foreground) or the image. " + _HOW,
    examples=("preprocess z = zscore(train.image) { within: roi }",),
))

register(Operator(
    name="resample", kind="preprocess", output="Cohort", settings=ResampleSettings, behaviour="per_case", run=run_preprocess,
    case=preprocess_case, on_cohort=preprocess_on_cohort, inputs=_image_port(), positional=("image", "spacing"),
    infer=_preprocess_type, sink=True, impl=resample_case, version="1",
    doc=("Resample each image to a stated spacing and interpolator, and its mask (nearest neighbour) onto the new grid. "
         "For PyRadiomics features alone, pyradiomics' own `resample` setting does this inside extraction; resampling in both is E327. " + _HOW),
    examples=("preprocess iso = resample(train.image, [2mm, 2mm, 2mm]) { interpolator: linear }",),
))

register(Operator(
    name="hu_clip", kind="preprocess", output="Cohort", settings=HUClipSettings, behaviour="per_case", run=run_preprocess,
    case=preprocess_case, on_cohort=preprocess_on_cohort, inputs=_image_port(), positional=("image", "lo", "hi"),
    infer=_preprocess_type, sink=True, impl=hu_clip_image, version="1",
    doc="CT: clip intensities to a HU window [lo, hi] (a DICOM series whose header says another modality is E654). " + _HOW,
    examples=("preprocess win = hu_clip(train.image, -1000HU, 400HU)",),
))

register(Operator(
    name="nyul", kind="preprocess", output="Cohort", settings=NyulSettings, behaviour="per_case", run=run_preprocess,
    case=preprocess_case, on_cohort=preprocess_on_cohort, inputs=_image_port(), positional=("image",), infer=_preprocess_type,
    sink=True, fit="data", impl=nyul_apply, helpers=(nyul_landmarks, nyul_standard, region_of, check_mask, segment_otsu, largest_component), version="1",
    doc=("MR: Nyúl-Udupa histogram standardisation. Learns standard landmarks (percentiles within the body, ROI or image, "
         "mapped to [s1, s2] and averaged) from every image of its cohort, then maps each image's landmarks onto them piecewise "
         "linearly; another cohort (external, `radlang predict`) gets the same landmarks. Fitted on data: a cross-validation refits "
         "it inside every training fold (landmarks from the training cases alone, features extracted per fold). "
         "Writes <out>/images/<stage>/landmarks.json. " + _HOW),
    examples=("preprocess std = nyul(train.image) { within: body, landmarks: [25, 50, 75] }",),
))
