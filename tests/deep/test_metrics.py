"""Dice + HD95 equal MONAI's own metrics; the Dice loss gradient flows."""

import numpy as np
import pytest
import torch
from monai.metrics import compute_dice, compute_hausdorff_distance
from monai.networks.utils import one_hot

from radlang.ops.segmentation_metrics import seg_scores, summarize_scores
from radlang.ops.supervised import training_parts_from_source, training_parts_source

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")   # a MONAI deprecation notice inside its HD metric


def cube(shape, lo, hi, value=1):
    a = np.zeros(shape, dtype=np.int64)
    a[tuple(slice(l, h) for l, h in zip(lo, hi))] = value
    return a


def monai_ref(pred, truth, classes, spacing_zyx):
    p = one_hot(torch.as_tensor(pred)[None, None], classes)
    t = one_hot(torch.as_tensor(truth)[None, None], classes)
    d = compute_dice(p, t, include_background=False)[0].numpy()
    h = compute_hausdorff_distance(p, t, include_background=False, percentile=95, spacing=spacing_zyx)[0].numpy()
    return d, h


def test_hand_built_masks_equal_monai_and_hand_values():
    truth = cube((20, 20, 20), (5, 5, 5), (15, 15, 15))         # 10^3 = 1000 voxels
    pred = cube((20, 20, 20), (5, 5, 7), (15, 15, 17))          # shifted by 2 voxels along x
    rows = seg_scores(pred, truth, 2, spacing=[1.0, 1.0, 1.0])
    d, h = monai_ref(pred, truth, 2, [1.0, 1.0, 1.0])
    assert rows[0]["dice"] == pytest.approx(float(d[0]), abs=1e-7)
    assert rows[0]["hd95"] == pytest.approx(float(h[0]), abs=1e-6)
    # by hand: overlap 10*10*8 = 800, Dice = 2*800/2000 = 0.8; surfaces shifted by 2 voxels -> HD95 = 2
    assert rows[0]["dice"] == pytest.approx(0.8, abs=1e-6)
    assert rows[0]["hd95"] == pytest.approx(2.0, abs=1e-6)
    # anisotropic spacing (x, y, z) = (0.5, 0.5, 3): the x shift is now 1 mm
    rows = seg_scores(pred, truth, 2, spacing=[0.5, 0.5, 3.0])
    d, h = monai_ref(pred, truth, 2, [3.0, 0.5, 0.5])
    assert rows[0]["hd95"] == pytest.approx(float(h[0]), abs=1e-6) and rows[0]["hd95"] == pytest.approx(1.0, abs=1e-6)


def test_one_far_outlier_voxel_high_dice_large_hd95():
    # a small lesion (2x2x3 = 12 voxels) and a prediction with one stray voxel ~30 voxels away:
    # the stray voxel is 1 of 13 predicted surface points (> 5 %), so the 95th percentile reaches it
    truth = cube((40, 40, 40), (10, 10, 10), (12, 12, 13))
    pred = truth.copy()
    pred[35, 35, 35] = 1
    rows = seg_scores(pred, truth, 2, spacing=[1.0, 1.0, 1.0])
    d, h = monai_ref(pred, truth, 2, [1.0, 1.0, 1.0])
    assert rows[0]["dice"] == pytest.approx(float(d[0]), abs=1e-7)
    assert rows[0]["hd95"] == pytest.approx(float(h[0]), abs=1e-6)
    assert rows[0]["dice"] == pytest.approx(24 / 25, abs=1e-6)     # Dice barely notices
    assert rows[0]["hd95"] > 10.0                                  # HD95 flags the outlier (mm; the lesion is 3 mm)
    # on a large lesion one stray voxel is under 5 % of the surface: HD95 stays robust (0), max HD would not
    big = cube((40, 40, 40), (10, 10, 10), (20, 20, 20))
    bp = big.copy()
    bp[38, 38, 38] = 1
    assert seg_scores(bp, big, 2, spacing=[1.0, 1.0, 1.0])[0]["hd95"] == pytest.approx(0.0, abs=1e-6)
    # the opposite failure: eroded by one voxel, Dice drops to 0.68 while HD95 stays at the edge distance sqrt(2)
    small = cube((40, 40, 40), (11, 11, 11), (19, 19, 19))
    r2 = seg_scores(small, big, 2, spacing=[1.0, 1.0, 1.0])[0]
    assert r2["dice"] == pytest.approx(2 * 512 / 1512, abs=1e-6) and r2["hd95"] == pytest.approx(np.sqrt(2), abs=1e-6)


def test_multiclass_per_class_scores_and_summary():
    truth = cube((24, 24, 24), (4, 4, 4), (12, 12, 12), 1) + cube((24, 24, 24), (14, 14, 14), (20, 20, 20), 2)
    pred = cube((24, 24, 24), (4, 4, 5), (12, 12, 13), 1) + cube((24, 24, 24), (14, 14, 14), (20, 20, 20), 2)
    rows = seg_scores(pred, truth, 3, spacing=[1.0, 1.0, 1.0])
    d, h = monai_ref(pred, truth, 3, [1.0, 1.0, 1.0])
    assert [r["class"] for r in rows] == [1, 2]
    assert [r["dice"] for r in rows] == pytest.approx([float(v) for v in d], abs=1e-7)
    assert [r["hd95"] for r in rows] == pytest.approx([float(v) for v in h], abs=1e-6)
    assert rows[1]["dice"] == 1.0 and rows[1]["hd95"] == 0.0
    s = summarize_scores([{"case": "a", **r} for r in rows] + [{"case": "b", "class": 1, "dice": 0.0, "hd95": float("inf")}])
    assert s["1"]["cases"] == 2 and s["1"]["hd95_infinite"] == 1 and s["1"]["dice_mean"] == pytest.approx(rows[0]["dice"] / 2)


@pytest.mark.parametrize("loss", ["dice", "dice_ce", "focal", "cross_entropy"])
def test_dice_loss_gradient_flows_and_decreases(loss):
    torch.manual_seed(0)
    spec = {"arch": "unet", "params": {"dims": 2, "in_channels": 1, "out_channels": 2, "channels": [4, 8], "strides": [2],
                                       "kernel_size": 3, "up_kernel_size": 3, "num_res_units": 0, "norm": "batch",
                                       "act": "prelu", "dropout": 0.0}}
    settings = {"loss": loss, "optimizer": "adam", "lr": 1e-2, "weight_decay": 0.0, "schedule": "constant", "epochs": 15}
    parts = training_parts_from_source(training_parts_source("parts", spec, settings, "segmentation"), "parts")
    net = parts["network"]()
    y = torch.as_tensor(cube((16, 16), (4, 5), (11, 12)))[None, None]
    x = y.float() * 2.0 + 0.3 * torch.randn(1, 1, 16, 16)
    fn = parts["loss"]
    opt = parts["optimizer"](net.parameters())
    losses = []
    for _ in range(15):
        opt.zero_grad()
        out = fn(net(x), y)
        out.backward()
        if not losses:
            assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())
            assert sum(float(p.grad.abs().sum()) for p in net.parameters()) > 0
        opt.step()
        losses.append(float(out.detach()))
    assert losses[-1] < 0.8 * losses[0], losses
