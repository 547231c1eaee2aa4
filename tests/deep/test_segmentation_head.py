"""A segmentation (decoder) head of `multitask`: the backbone's own decoder path with its skip connections.

- the decoder's output has the patch's size, and the feature map it starts from is exactly the backbone's deepest
  map (`backbone_features`: the same shared vector the other heads read), for a UNet and a SegResNet;
- the head's loss is MONAI's DiceCELoss on the rows that have a mask (a missing mask masks that head only);
- the per-case Dice (MONAI DiceMetric) is 2|A∩B| / (|A| + |B|) computed by hand, and NaN for an empty true mask;
- with a decoder, a torchjd aggregator runs on the Jacobian over every parameter: with `mean` it is the gradient of
  the losses' mean;
- two fits are bit-identical; `evaluate` reports each fold's held-out Dice under the head, and `radlang run` equals
  the rendered script;
- the compile-time diagnostics: no decoder path (E353), no mask crop in the input (E354), a patch the decoder
  cannot give back (E355), a segmentation head on something other than the mask (E294).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from radlang.ops.multitask import (
    dice_per_case,
    head_losses,
    multitask_backward,
    multitask_estimator_class,
    multitask_module,
    pack_targets,
    segmentation_loss,
)
from radlang.ops.net_models import backbone_features, decoder_forward, mask_columns

UNET = {"arch": "unet", "params": {"dims": 3, "in_channels": 1, "out_channels": 2, "channels": [4, 8], "strides": [2],
                                   "kernel_size": 3, "up_kernel_size": 3, "dropout": 0.0, "num_res_units": 0, "norm": "instance",
                                   "act": "prelu"}}
SEGRESNET = {"arch": "segresnet", "params": {"dims": 3, "in_channels": 1, "out_channels": 2, "init_filters": 4,
                                             "blocks_down": [1, 1], "blocks_up": [1], "norm": "batch", "groups": 1,
                                             "upsample": "nontrainable", "dropout": 0.0}}
HEADS = [{"name": "malignancy", "kind": "binary", "weight": 1.0, "primary": True},
         {"name": "lesion", "kind": "segmentation", "weight": 1.0, "primary": False}]
PARAMS = {"epochs": 2, "batch": 4, "optimizer": "adam", "lr": 1e-2, "weight_decay": 0.0, "schedule": "constant",
          "hidden": 4, "dropout": 0.0, "validation": 0.25, "patience": 2, "combine": "fixed", "cagrad_c": 0.5, "task_norm": False, "heads": HEADS}


@pytest.mark.parametrize("net_spec", [UNET, SEGRESNET], ids=["unet", "segresnet"])
def test_decoder_gives_back_the_patch_from_the_shared_feature_map(net_spec):
    from radlang.ops.networks import build_network

    torch.manual_seed(0)
    net = build_network(net_spec).eval()
    x = torch.randn(2, 1, 8, 8, 8)
    with torch.no_grad():
        bottom, out = decoder_forward(net, net_spec["arch"], x)
        assert out.shape == (2, 2, 8, 8, 8)
        assert torch.equal(out, net(x))                                   # the network's own forward
        assert torch.equal(bottom, backbone_features(net, net_spec["arch"], x))


def test_no_decoder_path_is_refused():
    from radlang.ops.networks import build_network

    net = build_network({"arch": "resnet", "params": {"dims": 3, "in_channels": 1, "out_channels": 2, "depth": 10}})
    with pytest.raises(ValueError, match="no decoder path"):
        decoder_forward(net, "resnet", torch.zeros(1, 1, 16, 16, 16))


def _masks(n, seed):
    rng = np.random.default_rng(seed)
    m = np.zeros((n, 8, 8, 8))
    for i in range(n):
        c = rng.integers(2, 6, 3)
        m[i, c[0] - 2:c[0] + 2, c[1] - 2:c[1] + 2, c[2] - 1:c[2] + 2] = 1
    return m


def test_a_missing_mask_masks_the_segmentation_head_only():
    torch.manual_seed(1)
    logits = torch.randn(5, 2, 8, 8, 8)
    masks = _masks(5, 1)
    ids = [f"c{i}" for i in range(5)]
    values = {"lesion": {cid: m.reshape(-1) for cid, m in zip(ids, masks) if cid != "c2"}}
    target, heads = pack_targets([{"name": "lesion", "kind": "segmentation", "outputs": 2}], values, ids)
    assert heads[0]["voxels"] == 512 and np.isnan(target[2]).all()
    got = head_losses([logits], torch.from_numpy(target), heads)[0]
    keep = [0, 1, 3, 4]
    want = segmentation_loss(logits[keep], torch.from_numpy(masks[keep][:, None].astype(np.float32)))
    assert torch.equal(got, want)


def test_dice_per_case_is_the_overlap_ratio():
    pred, truth = _masks(4, 2) > 0, _masks(4, 3) > 0
    truth[3] = False                                                    # an empty true mask: no Dice
    got = dice_per_case(pred, truth)
    want = [2 * (p & t).sum() / (p.sum() + t.sum()) for p, t in zip(pred[:3], truth[:3])]
    assert np.allclose(got[:3], want, rtol=0, atol=1e-6) and np.isnan(got[3])
    assert dice_per_case(truth[:3], truth[:3]).tolist() == [1.0, 1.0, 1.0]


def test_torchjd_mean_with_a_decoder_is_the_gradient_of_the_mean_loss():
    from radlang.ops.netio import train_step

    heads = [{**HEADS[0], "col": 0, "outputs": 2, "classes": [0.0, 1.0]}, {**HEADS[1], "col": 1, "voxels": 512, "outputs": 2}]
    image = torch.randn(4, 1, 8, 8, 8, generator=torch.Generator().manual_seed(4))
    target = torch.from_numpy(np.concatenate([np.array([[0.0], [1.0], [1.0], [0.0]]), _masks(4, 4).reshape(4, -1)], 1).astype(np.float32))

    def grads(combine):
        torch.manual_seed(3)
        net = multitask_module(UNET, [1, 8, 8, 8], 0, heads, 4, 0.0, False, False)
        backward = multitask_backward(net, combine, [0.5, 0.5])
        opt = torch.optim.SGD(net.parameters(), lr=0.0)
        train_step(net, (image, None), target, lambda out, t: (head_losses(out[1], t, heads), out[0]), opt, backward)
        return {k: p.grad.clone() for k, p in net.named_parameters() if p.grad is not None}

    jd, fixed = grads("mean"), grads("fixed")     # fixed weights 0.5, 0.5: the mean of the two losses
    assert sorted(jd) == sorted(fixed)
    for k in fixed:
        torch.testing.assert_close(jd[k], fixed[k], rtol=1e-4, atol=1e-6)


def _table(n, seed):
    rng = np.random.default_rng(seed)
    masks = _masks(n, seed)
    images = (masks * 2 + rng.normal(size=masks.shape))[:, None]
    ids = [f"c{i:02d}" for i in range(n)]
    vox = ["voxel:" + ":".join(map(str, i)) for i in np.ndindex(1, 8, 8, 8)]
    msk = ["mask:" + ":".join(map(str, i)) for i in np.ndindex(8, 8, 8)]
    X = pd.DataFrame(np.concatenate([images.reshape(n, -1), masks.reshape(n, -1)], 1), columns=vox + msk, index=pd.Index(ids, name="case_id"))
    return X, rng.integers(0, 2, n)


def test_two_fits_are_bit_identical_and_held_out_dice_is_per_case():
    X, y = _table(12, 5)
    assert mask_columns(X.columns)[:2] == ["mask:0:0:0", "mask:0:0:1"]
    cls = multitask_estimator_class()
    a = cls(network=UNET, params=PARAMS, seed=2).fit(X, y)
    b = cls(network=UNET, params=PARAMS, seed=2).fit(X, y)
    for k in a.weights_:
        assert a.weights_[k].tobytes() == b.weights_[k].tobytes(), k
    pred = a.predict_heads(X)["lesion"]
    assert pred.shape == (12, 8, 8, 8) and set(np.unique(pred)) <= {0, 1}
    dice = a.held_out_heads(X)["outputs"]["lesion"]
    truth = X[mask_columns(X.columns)].to_numpy().reshape(12, 8, 8, 8) > 0
    assert np.array_equal(dice, dice_per_case(pred, truth))


SPEC = """
study "s" { seed: 1 }
cohort train = phantom(12) { size: [16, 16, 16] }
features img = patches(train) { patch: [PATCH]EXTRA }
network enc = NET
model mt = multitask(img, target: train.outcome, network: enc) { heads: [binary(m, target: train.outcome), HEAD] }
validate v = evaluate(mt) { cv: stratified_kfold(2) }
"""


def spec(patch, extra, net, head):
    return SPEC.replace("PATCH", patch).replace("EXTRA", extra).replace("NET", net).replace("HEAD", head)
UNET_TEXT = "unet(dims: 3, in_channels: 1, out_channels: 2) { channels: [4, 8, 16], strides: [2, 2], num_res_units: 0 }"


@pytest.mark.parametrize("patch, extra, net, head, code", [
    ("16, 16, 16", ", mask_target: true", "resnet(dims: 3, in_channels: 1, out_channels: 2) { depth: 10 }",
     "segmentation(lesion, target: train.mask)", "E353"),
    ("16, 16, 16", "", UNET_TEXT, "segmentation(lesion, target: train.mask)", "E354"),
    ("10, 10, 10", ", mask_target: true", UNET_TEXT, "segmentation(lesion, target: train.mask)", "E355"),
    ("16, 16, 16", ", mask_target: true", UNET_TEXT, "segmentation(lesion, target: train.outcome)", "E294"),
    ("16, 16, 16", ", mask_target: true", UNET_TEXT, "binary(lesion, target: train.mask)", "E294"),
    ("16, 16, 16", ", mask_target: true", UNET_TEXT, "segmentation(lesion)", "E291"),
])
def test_compile_time_diagnostics(patch, extra, net, head, code):
    from radlang.compiler import compile_source

    res = compile_source(spec(patch, extra, net, head).encode(), "s.rad")
    errors = [d for d in res.diagnostics if d.severity == "error"]
    assert [d.code for d in errors] == [code], [(d.code, d.message) for d in errors]
    assert errors[0].hint


def test_a_valid_segmentation_head_compiles():
    from radlang.compiler import compile_source

    res = compile_source(spec("16, 16, 16", ", mask_target: true", UNET_TEXT, "segmentation(lesion, target: train.mask, weight: 0.5)").encode(),
                         "s.rad")
    assert res.ok, [(d.code, d.message) for d in res.diagnostics]


RUN = """
study "seg" {{ seed: 5 }}
cohort train = manifest("{m}") {{ image: t1, mask: seg, outcome: label as binary }}
features img = patches(train) {{ patch: [8, 8, 8], mask_target: true }}
network enc = unet(dims: 3, in_channels: 1, out_channels: 2) {{ channels: [4, 8], strides: [2], num_res_units: 0 }}
model mt = multitask(img, target: train.outcome, network: enc) {{
  heads: [binary(malignancy, target: train.outcome), segmentation(lesion, target: train.mask)]
  combine: uncertainty
  epochs: 1
  batch: 3
  hidden: 4
}}
validate v = evaluate(mt) {{ cv: kfold(2), bootstrap: 0, metrics: [auc] }}
"""


def test_evaluate_reports_held_out_dice_and_render_matches(cohorts, tmp_path):
    from radlang.backends.executor import run_study
    from radlang.backends.render.script import render_to_dir
    from tests.deep.conftest import compile_spec
    from tests.render.render_helpers import run_script

    study = compile_spec(RUN.format(m=cohorts["train"]), tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ctx = run_study(study, out=tmp_path / "run", workers=1, quiet=True)
    lesion = ctx.results["v"]["metrics"]["heads"]["lesion"]
    assert lesion["kind"] == "segmentation" and lesion["n_cases"] == 6 and len(lesion["dice"]["per_fold"]) == 2
    assert all(0.0 <= d <= 1.0 for d in lesion["dice"]["per_fold"])
    script = render_to_dir(study, tmp_path / "review") / "study.py"
    proc = run_script(script, "--out", str(tmp_path / "script"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for rel in ("metrics/v.json", "predictions/v.csv", "models/v.skops"):
        assert (tmp_path / "run" / rel).read_bytes() == (tmp_path / "script" / rel).read_bytes(), rel
