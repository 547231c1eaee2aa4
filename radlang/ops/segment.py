"""Segmentation operators: where the region of interest comes from.

    segment roi = mask(train.mask) { label: 1, on_mismatch: resample }   # the cohort's own mask
    segment roi = otsu(train.image) { smooth: 1mm, largest: true }      # SimpleITK Otsu threshold
    segment roi = threshold(train.image, lo: -100HU, hi: 300HU)         # a fixed intensity window

Segmentation runs per case, inside the same case job as feature extraction (`extract_case` in
radlang/ops/features.py), so images never travel between processes. A segmenter declares `behaviour="per_case"`
and its per-case function as `case`: `(image, mask, params) -> (roi, problems)`, where `mask` is the cohort's
mask when the segmenter reads one (its input port is a `.mask`) and None otherwise; the stage's own value is a
`LazyMask` (`run_segmenter`). Every segment operator yields a binary mask (ROI = 1) on the
image grid. Mask checks (empty mask, absent label, geometry that differs from the image) run before any
extraction, for every case at once.

The functions below are self-contained (see radlang/registry.py): SimpleITK images in, SimpleITK images out.
A segment function returns (ROI, problems), the ROI None when there are problems, each problem a
(diagnostic code, message) pair (the codes are listed in radlang/codes.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import Field, model_validator

from radlang.registry import Operator, Port, register
from radlang.types import RType
from radlang.units import Intensity, Length
from radlang.values import Settings, contradiction


def load_image(path):
    """Read an image with SimpleITK: a file (NIfTI, NRRD, MHA, ...), a folder holding a DICOM series, or
    `folder#<SeriesInstanceUID>`: one series of a folder that holds several (radlang/ops/dicom.py)."""
    import os

    import SimpleITK as sitk

    from radlang.ops.dicom import series_files, split_ref

    if os.path.isdir(split_ref(path)[0]):
        r = sitk.ImageSeriesReader()
        files = series_files(path)
        if not files:
            raise ValueError("the folder holds no DICOM series")
        r.SetFileNames(files)
        return r.Execute()
    return sitk.ReadImage(str(path))


def check_mask(image, mask, label, on_mismatch="error", tolerance=1e-3):
    """Check a mask against its image. Returns (mask, problems): `mask` is put on the image grid
    (nearest-neighbour) when the geometry differs and on_mismatch == "resample", and takes the image's
    geometry exactly when it agrees within `tolerance`; `problems` is a list of (code, message): geometry
    mismatch (E604), empty mask (E605), absent label (E606)."""
    import numpy as np
    import SimpleITK as sitk

    problems = []
    same = (image.GetSize() == mask.GetSize()
            and np.allclose(image.GetSpacing(), mask.GetSpacing(), rtol=tolerance, atol=tolerance)
            and np.allclose(image.GetOrigin(), mask.GetOrigin(), rtol=tolerance, atol=tolerance * max(1.0, max(image.GetSpacing())))
            and np.allclose(image.GetDirection(), mask.GetDirection(), atol=tolerance))
    if not same:
        if on_mismatch == "resample":
            mask = sitk.Resample(mask, image, sitk.Transform(), sitk.sitkNearestNeighbor, 0, mask.GetPixelID())
        else:
            def fmt(v):
                return "(" + ", ".join(f"{x:g}" for x in v) + ")"

            diffs = []
            for what, a, b in (("size", image.GetSize(), mask.GetSize()), ("spacing", image.GetSpacing(), mask.GetSpacing()),
                               ("origin", image.GetOrigin(), mask.GetOrigin()), ("direction", image.GetDirection(), mask.GetDirection())):
                if len(a) != len(b) or not np.allclose(a, b, rtol=tolerance, atol=tolerance):
                    diffs.append(f"{what} {fmt(a)} vs {fmt(b)}")
            problems.append(("E604", "mask geometry differs from the image: " + "; ".join(diffs or ["origin"]) +
                             " (set `on_mismatch: resample` on a `mask` segment stage to resample the mask)"))
            return mask, problems
    elif (image.GetSpacing(), image.GetOrigin(), image.GetDirection()) != (mask.GetSpacing(), mask.GetOrigin(), mask.GetDirection()):
        # the same grid up to rounding (e.g. a DICOM series and a NIfTI mask): take the image's geometry exactly
        mask = sitk.Image(mask)
        mask.CopyInformation(image)
    arr = sitk.GetArrayViewFromImage(mask)
    present = np.unique(arr)
    if not np.any(arr != 0):
        problems.append(("E605", "the mask is empty (no voxel is labelled)"))
    elif label not in present:
        labels = ", ".join(str(int(v)) for v in present if v != 0)
        problems.append(("E606", f"label {label} is absent from the mask (labels present: {labels})"))
    return mask, problems


def largest_component(mask):
    """Keep the largest connected component of a binary mask."""
    import SimpleITK as sitk

    cc = sitk.ConnectedComponent(mask)
    rel = sitk.RelabelComponent(cc, sortByObjectSize=True)
    return sitk.Cast(rel == 1, sitk.sitkUInt8)


def segment_mask(image, mask, params):
    """`mask`: the cohort's mask, checked, on the image grid, as a binary ROI (label -> 1)."""
    import SimpleITK as sitk

    mask, problems = check_mask(image, mask, int(params["label"]), params["on_mismatch"], float(params["tolerance"]))
    if problems:
        return None, problems
    roi = sitk.Cast(mask == int(params["label"]), sitk.sitkUInt8)
    return roi, []


def segment_otsu(image, mask, params):
    """`otsu`: SimpleITK's Otsu threshold (voxels above it are the ROI), after optional Gaussian
    smoothing (sigma in mm), optionally keeping only the largest connected component."""
    import SimpleITK as sitk

    img = sitk.Cast(image, sitk.sitkFloat32)
    if params.get("smooth"):
        img = sitk.SmoothingRecursiveGaussian(img, float(params["smooth"]))
    f = sitk.OtsuThresholdImageFilter()
    f.SetInsideValue(0)
    f.SetOutsideValue(1)
    f.SetNumberOfHistogramBins(int(params["bins"]))
    roi = sitk.Cast(f.Execute(img), sitk.sitkUInt8)
    if params.get("largest"):
        roi = largest_component(roi)
    if params.get("fill_holes"):
        roi = sitk.BinaryFillhole(roi, fullyConnected=False, foregroundValue=1)
    if not sitk.GetArrayViewFromImage(roi).any():
        return None, [("E605", "Otsu segmentation found no voxel above the threshold (empty mask)")]
    return roi, []


def segment_threshold(image, mask, params):
    """`threshold`: voxels with lo <= intensity <= hi (after optional smoothing) are the ROI."""
    import SimpleITK as sitk

    img = sitk.Cast(image, sitk.sitkFloat32)
    if params.get("smooth"):
        img = sitk.SmoothingRecursiveGaussian(img, float(params["smooth"]))
    lo = -3.4e38 if params.get("lo") is None else float(params["lo"])
    hi = 3.4e38 if params.get("hi") is None else float(params["hi"])
    roi = sitk.BinaryThreshold(img, lo, hi, 1, 0)
    if params.get("largest"):
        roi = largest_component(roi)
    if params.get("fill_holes"):
        roi = sitk.BinaryFillhole(roi, fullyConnected=False, foregroundValue=1)
    if not sitk.GetArrayViewFromImage(roi).any():
        return None, [("E605", f"no voxel lies between {lo:g} and {hi:g} (empty mask)")]
    return roi, []


@dataclass(frozen=True)
class LazyMask:
    """The run-time value of a segment stage: segmentation happens per case, inside the feature stage's case job."""

    stage: str
    op: str


def run_segmenter(stage, ctx):
    """A segment stage computes nothing on its own: the feature stage that reads it runs its `case` function per case."""
    ctx.keys[stage.name] = ctx.stage_key(stage)
    return LazyMask(stage.name, stage.op)


def _mask_type(ctx) -> RType:
    src = next(iter(ctx.inputs.values()))
    return RType("Mask", cohort=src.cohort, dims=src.dims, channels=1, classes=2, detail=ctx.stmt.op.name)


def _image_type(ctx) -> RType:
    src = ctx.inputs["image"]
    if src.channels and src.channels > 1:
        ctx.error("E207", f"`{ctx.stmt.op.name}` segments one image, but `{src.detail}` has {src.channels} channels", port="image",
                  hint="segment one channel: list it first in the cohort's `image`, or use the cohort's mask")
    return _mask_type(ctx)


class MaskSettings(Settings):
    label: int = Field(1, ge=1, description="the mask value that marks the region of interest")
    on_mismatch: Literal["error", "resample"] = Field(
        "error", description="mask geometry (size, spacing, origin, direction) differs from the image: stop with an error, or resample the mask (nearest neighbour)")
    tolerance: float = Field(1e-3, gt=0, le=1, description="relative tolerance when comparing spacing, origin and direction")


register(Operator(
    name="mask", kind="segment", output="Mask", behaviour="per_case", run=run_segmenter, case=segment_mask, settings=MaskSettings,
    inputs=(Port("mask", ("Mask",), doc="a cohort's mask, e.g. `train.mask`"),), positional=("mask",),
    impl=segment_mask, helpers=(check_mask,), infer=_mask_type, version="1",
    doc="Use the cohort's own mask: checked (empty, absent label, geometry) before extraction, then binarised (label -> 1).",
    examples=("segment roi = mask(train.mask) { label: 2, on_mismatch: resample }",),
))


class OtsuSettings(Settings):
    smooth: Length | None = Field(None, ge=0, description="Gaussian smoothing sigma before thresholding (mm); none = no smoothing")
    largest: bool = Field(True, description="keep only the largest connected component")
    fill_holes: bool = Field(False, description="fill holes inside the mask")
    bins: int = Field(128, ge=2, le=4096, description="histogram bins for Otsu's method")


register(Operator(
    name="otsu", kind="segment", output="Mask", behaviour="per_case", run=run_segmenter, case=segment_otsu, settings=OtsuSettings,
    inputs=(Port("image", ("Image",), doc="a cohort's image, e.g. `train.image`"),), positional=("image",),
    impl=segment_otsu, helpers=(largest_component,), infer=_image_type, version="1",
    doc="Segment the bright region with SimpleITK's Otsu threshold, optionally smoothed, keeping the largest connected component.",
    examples=("segment roi = otsu(train.image) { smooth: 1mm }",),
))


class ThresholdSettings(Settings):
    lo: Intensity | None = Field(None, description="lowest intensity inside the ROI (e.g. -100HU); none = no lower bound")
    hi: Intensity | None = Field(None, description="highest intensity inside the ROI; none = no upper bound")
    smooth: Length | None = Field(None, ge=0, description="Gaussian smoothing sigma before thresholding (mm)")
    largest: bool = Field(False, description="keep only the largest connected component")
    fill_holes: bool = Field(False, description="fill holes inside the mask")

    @model_validator(mode="after")
    def _range(self):
        if self.lo is None and self.hi is None:
            raise ValueError("give `lo`, `hi`, or both")
        if self.lo is not None and self.hi is not None and self.lo > self.hi:
            raise contradiction(f"`lo` ({self.lo:g}) is above `hi` ({self.hi:g})")
        return self


register(Operator(
    name="threshold", kind="segment", output="Mask", behaviour="per_case", run=run_segmenter, case=segment_threshold, settings=ThresholdSettings,
    inputs=(Port("image", ("Image",), doc="a cohort's image, e.g. `train.image`"),), positional=("image", "lo", "hi"),
    impl=segment_threshold, helpers=(largest_component,), infer=_image_type, version="1",
    doc="Segment the voxels whose intensity lies in [lo, hi] (e.g. a HU window), optionally the largest connected component.",
    examples=("segment roi = threshold(train.image, -100HU, 300HU) { largest: true }",),
))
