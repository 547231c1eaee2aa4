"""A segmenter declared the way a new one is added: one module, nothing else touched. It is not under
radlang/ops/ (so it never joins the real registry); tests/render/test_new_operator.py registers it for one
test and removes it afterwards.

`above_mean`: the voxels brighter than the image's mean plus `shift`."""

from __future__ import annotations

from pydantic import Field

from radlang.ops.segment import _image_type, run_segmenter
from radlang.registry import Operator, Port
from radlang.values import Settings


class AboveMeanSettings(Settings):
    shift: float = Field(0.0, description="intensity added to the image mean before thresholding")


def segment_above_mean(image, mask, params):
    """The ROI: voxels whose intensity exceeds the image mean plus `shift` (ROI = 1)."""
    import SimpleITK as sitk

    arr = sitk.GetArrayFromImage(image)
    roi = sitk.GetImageFromArray((arr > arr.mean() + float(params["shift"])).astype("uint8"))
    roi.CopyInformation(image)
    if not sitk.GetArrayViewFromImage(roi).any():
        return None, [("E605", "no voxel lies above the mean (empty mask)")]
    return roi, []


ABOVE_MEAN = Operator(
    name="above_mean", kind="segment", output="Mask", settings=AboveMeanSettings, behaviour="per_case", run=run_segmenter,
    case=segment_above_mean, inputs=(Port("image", ("Image",), doc="a cohort's image"),), positional=("image",),
    impl=segment_above_mean, infer=_image_type, version="1",
    doc="The voxels brighter than the image mean plus `shift`.",
    examples=("segment roi = above_mean(train.image) { shift: 10 }",),
)
