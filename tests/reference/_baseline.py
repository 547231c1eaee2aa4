"""PyRadiomics' published baseline (../shared/data/pyradiomics/baseline) as radlang specs.

Each baseline column carries its own PyRadiomics settings; `rad_settings` writes them as radlang settings,
so the comparison runs the whole radlang path (spec -> compiler -> case mode -> PyRadiomics)."""

from __future__ import annotations

import ast
from pathlib import Path

import pandas as pd

CASES = ("brain1", "brain2", "breast1", "prostate_phantom_subvolume")
CLASSES = ("firstorder", "glcm", "gldm", "glrlm", "glszm", "ngtdm", "shape")


def rad_settings(s: dict) -> list[str]:
    """PyRadiomics settings dict -> radlang setting lines (only what changes values)."""
    out = []
    interp = {"sitkBSpline": "bspline", "sitkLinear": "linear", "sitkNearestNeighbor": "nearest"}
    if s.get("binCount") is not None:
        out.append(f"bin_count: {s['binCount']}")
    elif s.get("binWidth") is not None:
        out.append(f"bin_width: {s['binWidth']}")
    if s.get("resampledPixelSpacing") is not None and s.get("interpolator") is not None:
        out.append("resample: [" + ", ".join(f"{v}mm" for v in s["resampledPixelSpacing"]) + "]")
        out.append(f"interpolator: {interp[s['interpolator']]}")
    if s.get("padDistance") is not None:
        out.append(f"pad_distance: {s['padDistance']}")
    if s.get("normalize"):
        out.append("normalize: true")
        out.append(f"normalize_scale: {s.get('normalizeScale', 1)}")
    if s.get("removeOutliers") is not None:
        out.append(f"remove_outliers: {s['removeOutliers']}")
    if s.get("resegmentRange") is not None:
        out.append("resegment: [" + ", ".join(str(v) for v in s["resegmentRange"]) + "]")
        if s.get("resegmentMode"):
            out.append(f"resegment_mode: {s['resegmentMode']}")
    out.append(f"force2d: {'true' if s.get('force2D') else 'false'}")
    out.append(f"force2d_dimension: {s.get('force2Ddimension', 0)}")
    out.append(f"label: {s.get('label', 1)}")
    out.append("distances: [" + ", ".join(str(d) for d in s.get("distances", [1])) + "]")
    if s.get("voxelArrayShift") is not None:
        out.append(f"voxel_array_shift: {s['voxelArrayShift']}")
    if s.get("weightingNorm") is not None:
        out.append(f"weighting_norm: {s['weightingNorm']}")
    if s.get("gldm_a") is not None:
        out.append(f"gldm_a: {s['gldm_a']}")
    if s.get("minimumROIDimensions") is not None:
        out.append(f"min_roi_dimensions: {s['minimumROIDimensions']}")
    if s.get("preCrop") is not None:
        out.append(f"pre_crop: {'true' if s['preCrop'] else 'false'}")
    if s.get("correctMask") is not None:
        out.append(f"correct_mask: {'true' if s['correctMask'] else 'false'}")
    return out


def load_baseline(data: Path) -> dict[str, pd.DataFrame]:
    return {c: pd.read_csv(data / "pyradiomics" / "baseline" / f"baseline_{c}.csv", index_col=0) for c in CLASSES}


def configurations(data: Path):
    """{(case, config suffix): {"settings": dict, "classes": [class, ...]}} for every column whose images exist
    (skips lung1/lung2 and the *_2d columns, which need a 2D label that is not shipped)."""
    base = load_baseline(data)
    cases_dir = data / "pyradiomics" / "cases"
    out = {}
    for cls, df in base.items():
        for col in df.columns:
            case = df.loc["diagnostics_Configuration_TestCase", col]
            if col.endswith("_2d") or not (cases_dir / f"{case}_image.nrrd").exists() and not (cases_dir / f"{case}.nrrd").exists():
                continue
            types = ast.literal_eval(df.loc["diagnostics_Configuration_EnabledImageTypes", col])
            assert types == {"Original": {}}, types
            settings = ast.literal_eval(df.loc["diagnostics_Configuration_Settings", col])
            entry = out.setdefault(col, {"case": case, "by_class": {}})
            entry["by_class"][cls] = settings
    return out, base


def build_spec(data: Path, folder: Path, cases=CASES[:3]) -> tuple[Path, dict]:
    """Write a manifest of the cases and a spec with one feature stage per distinct settings.
    Returns (spec path, {stage: [(column, class), ...]})."""
    confs, _ = configurations(data)
    cases_dir = data / "pyradiomics" / "cases"
    rows = []
    for c in cases:
        img = cases_dir / f"{c}_image.nrrd"
        msk = cases_dir / f"{c}_label.nrrd"
        if img.exists() and msk.exists():
            rows.append({"case_id": c, "image": str(img), "mask": str(msk)})
    pd.DataFrame(rows).to_csv(folder / "cases.csv", index=False)
    stages: dict[str, dict] = {}
    members: dict[str, list] = {}
    for col, entry in sorted(confs.items()):
        if entry["case"] not in {r["case_id"] for r in rows}:
            continue
        for cls, s in sorted(entry["by_class"].items()):
            body = tuple(rad_settings(s))
            name = next((n for n, b in stages.items() if b["body"] == body), None)
            if name is None:
                name = f"cfg{len(stages)}"
                stages[name] = {"body": body, "classes": set()}
            stages[name]["classes"].add(cls)
            members.setdefault(name, []).append((col, cls))
    lines = ['study "pyradiomics baseline" { seed: 1 }', 'cohort c = manifest("cases.csv") { mask: mask }']
    for name, st in stages.items():
        lines.append(f"features {name} = pyradiomics(c.image, c.mask) {{")
        lines += [f"  {x}" for x in st["body"]]
        lines.append(f"  classes: [{', '.join(sorted(st['classes']))}]")
        lines.append("}")
    spec = folder / "baseline.rad"
    spec.write_text("\n".join(lines) + "\n")
    return spec, members
