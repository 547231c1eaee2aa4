"""`patches` (image crops as a voxel table) and the backbones a network model can use: resampling to a stated spacing,
crops centred on the ROI, the mask as a channel, 2D slices, and the run-time problems (channels on other grids,
no mask to centre on)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from radlang.ops.image_patches import patch_case, patch_table
from radlang.ops.net_models import fusion_module

BASE = {"patch": [4, 4, 4], "dims": 3, "spacing": None, "crop": "roi", "mask_channel": False, "normalize": "none"}


def write(path, array, spacing=(1.0, 1.0, 1.0)):
    im = sitk.GetImageFromArray(array)
    im.SetSpacing(spacing)
    sitk.WriteImage(im, str(path))
    return str(path)


@pytest.fixture
def case(tmp_path):
    """A 12^3 image whose voxel value is its x index, with a 2^3 ROI at z, y, x = 6..7."""
    img = np.broadcast_to(np.arange(12, dtype=np.float32), (12, 12, 12)).copy()
    mask = np.zeros((12, 12, 12), np.uint8)
    mask[6:8, 6:8, 6:8] = 1
    return write(tmp_path / "img.nii.gz", img), write(tmp_path / "mask.nii.gz", mask), tmp_path


def test_crop_is_centred_on_the_roi(case):
    img, mask, _ = case
    crop, problems = patch_case([img], mask, BASE)
    assert problems == [] and crop.shape == (1, 4, 4, 4)
    # the ROI's bounding box 6..7 has centre 6 (integer): the crop spans x = 4..7
    assert crop[0, 0, 0].tolist() == [4.0, 5.0, 6.0, 7.0]


def test_resampling_to_a_stated_spacing(case):
    img, mask, _ = case
    crop, _ = patch_case([img], mask, {**BASE, "spacing": [2.0, 2.0, 2.0], "crop": "whole", "patch": [6, 6, 6]})
    # 12 voxels of 1 mm are 6 voxels of 2 mm: the whole resampled image, values from 0 to 11 along x
    assert crop.shape == (1, 6, 6, 6)
    row = crop[0, 3, 3]
    assert row[0] == 0.0 and row[-1] == 11.0 and np.all(np.diff(row) > 0)


def test_mask_channel_and_2d_slice(case):
    img, mask, _ = case
    crop, _ = patch_case([img], mask, {**BASE, "mask_channel": True})
    assert crop.shape == (1 + 1, 4, 4, 4) and crop[1].sum() == 8          # the whole 2^3 ROI inside the crop
    sl, _ = patch_case([img], mask, {**BASE, "dims": 2, "patch": [4, 4], "mask_channel": True})
    assert sl.shape == (2, 4, 4) and sl[1].sum() == 4                      # the axial slice through the ROI's centre


def test_channels_on_another_grid_and_a_missing_roi(case):
    img, mask, tmp = case
    other = write(tmp / "t2.nii.gz", np.zeros((12, 12, 12), np.float32), spacing=(1.0, 1.0, 2.0))
    crop, problems = patch_case([img, other], mask, BASE)
    assert crop is None and problems[0][0] == 1 and "geometry differs" in problems[0][1]
    empty = write(tmp / "empty.nii.gz", np.zeros((12, 12, 12), np.uint8))
    crop, problems = patch_case([img], empty, BASE)
    assert crop is None and problems == [("mask", "`crop: roi` needs a mask with a region of interest")]


def test_voxel_table_round_trip(case):
    img, mask, _ = case
    crop, _ = patch_case([img], mask, BASE)
    t = patch_table([crop, crop + 1], ["a", "b"])
    assert t.shape == (2, 64) and t.columns[5] == "voxel:0:0:1:1"
    assert np.array_equal(t.loc["b"].to_numpy().reshape(1, 4, 4, 4), crop + 1)


@pytest.mark.parametrize("spec,shape", [
    ({"arch": "densenet121", "params": {"dims": 2, "in_channels": 1, "out_channels": 2, "dropout": 0.0}}, [1, 32, 32]),
    ({"arch": "resnet", "params": {"dims": 2, "in_channels": 2, "out_channels": 2, "depth": 18, "widen_factor": 0.25}}, [2, 16, 16]),
    ({"arch": "unet", "params": {"dims": 3, "in_channels": 1, "out_channels": 2, "channels": [4, 8, 16], "strides": [2, 2],
                                 "kernel_size": 3, "up_kernel_size": 3, "num_res_units": 1, "norm": "instance", "act": "prelu",
                                 "dropout": 0.0}}, [1, 8, 8, 8]),
])
def test_every_backbone_gives_a_pooled_vector(spec, shape):
    """DenseNet121 (1024 channels after its dense blocks), ResNet (512 x widen_factor), UNet's contracting path (its
    last channels): pooled to one vector per case, then the head."""
    with torch.device("meta"):
        net = fusion_module(spec, shape, 3, 2, 8, 0.0)
        out = net(torch.empty([5] + shape), torch.empty((5, 3)))
    assert net.n_img == {"densenet121": 1024, "resnet": 128, "unet": 16}[spec["arch"]]
    assert list(out.shape) == [5, 2]
