"""Network models (`cnn` on `patches`): invariants of the fusion network and its estimator, on tiny CPU data.

- adaptive average pooling to 1 is the spatial mean of the backbone's feature map;
- intermediate fusion with the image vector at zero is the tabular-only head (same tabular weights);
- two fits give bit-identical weights and predictions (deterministic on CPU);
- planted leakage: random labels with pure-noise images give a cross-validated AUC whose 95% CI holds 0.5;
- the compile-time diagnostics of network models and their image inputs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from radlang.ops.net_models import backbone_features, fusion_module, net_estimator_class, split_columns

SEGRESNET = {"arch": "segresnet", "params": {"dims": 3, "in_channels": 1, "out_channels": 2, "init_filters": 4,
                                             "blocks_down": [1, 1], "blocks_up": [1], "norm": "batch", "groups": 1,
                                             "upsample": "nontrainable", "dropout": 0.0}}
PARAMS = {"epochs": 3, "batch": 4, "optimizer": "adam", "lr": 1e-2, "weight_decay": 0.0, "schedule": "constant",
          "hidden": 8, "dropout": 0.0, "validation": 0.25, "patience": 2}


def voxel_table(images, tab=None, ids=None):
    """A `patches`-style table: one `voxel:c:z:y:x` column per voxel, plus tabular columns."""
    n = len(images)
    names = ["voxel:" + ":".join(map(str, i)) for i in np.ndindex(*images.shape[1:])]
    df = pd.DataFrame(images.reshape(n, -1).astype(np.float64), columns=names,
                      index=pd.Index(ids or [f"c{i:03d}" for i in range(n)], name="case_id"))
    if tab is not None:
        for j in range(tab.shape[1]):
            df[f"feat{j}"] = tab[:, j]
    return df


def test_adaptive_pooling_to_one_is_the_spatial_mean():
    torch.manual_seed(0)
    net = fusion_module(SEGRESNET, [1, 8, 8, 8], 0, 2, 0, 0.0).eval()
    x = torch.randn(3, 1, 8, 8, 8)
    with torch.no_grad():
        fmap = backbone_features(net.backbone, "segresnet", x)
        pooled = net.image_vector(x)
    assert pooled.shape == fmap.shape[:2]
    torch.testing.assert_close(pooled, fmap.mean(dim=(2, 3, 4)), rtol=0, atol=1e-6)


def test_image_branch_at_zero_is_the_tabular_only_head():
    torch.manual_seed(1)
    fused = fusion_module(SEGRESNET, [1, 8, 8, 8], 5, 2, 8, 0.0).eval()
    tab_only = fusion_module(SEGRESNET, None, 5, 2, 8, 0.0).eval()
    tab_only.tab_in.load_state_dict(fused.tab_in.state_dict())
    tab_only.rest.load_state_dict(fused.rest.state_dict())
    t = torch.randn(6, 5)
    with torch.no_grad():
        a = fused.head(torch.zeros(6, fused.n_img), t)
        b = tab_only.head(None, t)
    assert torch.equal(a, b)


def _noise(n, seed, shape=(1, 8, 8, 8)):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n,) + shape).astype(np.float32), rng.integers(0, 2, n)


def test_two_fits_are_bit_identical():
    images, y = _noise(16, 2)
    tab = np.random.default_rng(3).normal(size=(16, 3))
    X = voxel_table(images, tab)
    cls = net_estimator_class()
    a = cls(network=SEGRESNET, params=PARAMS, seed=5).fit(X, y)
    b = cls(network=SEGRESNET, params=PARAMS, seed=5).fit(X, y)
    assert sorted(a.weights_) == sorted(b.weights_)
    for k in a.weights_:
        assert a.weights_[k].tobytes() == b.weights_[k].tobytes(), k
    assert a.predict_proba(X).tobytes() == b.predict_proba(X).tobytes()
    assert a.n_validation_ == 4   # a quarter of the 16 patients held out for early stopping, inside this fit only


def test_planted_leakage_random_labels_give_chance_auc():
    """Random labels, pure-noise images: the cross-validated AUC's 95% bootstrap CI holds 0.5."""
    from sklearn.model_selection import StratifiedKFold

    from radlang.ops.clinical_metrics import binary_metrics

    images, y = _noise(40, 11)
    X = voxel_table(images)
    p = np.empty(len(y))
    cls = net_estimator_class()
    for tr, te in StratifiedKFold(4, shuffle=True, random_state=0).split(X, y):
        p[te] = cls(network=SEGRESNET, params={**PARAMS, "epochs": 2}, seed=0).fit(X.iloc[tr], y[tr]).predict_proba(X.iloc[te])[:, 1]
    m = binary_metrics(y, p, p >= 0.5, X.index.to_numpy(), {"metrics": ["auc"], "bootstrap": 500, "ci": 0.95}, 0)
    assert m["auc"]["ci_low"] < 0.5 < m["auc"]["ci_high"]


def test_image_columns_must_form_one_patch():
    assert split_columns(["voxel:0:0:0", "voxel:0:0:1", "age"]) == (["voxel:0:0:0", "voxel:0:0:1"], [1, 1, 2], ["age"])
    with pytest.raises(ValueError, match="one patch"):
        split_columns(["voxel:0:0:0", "voxel:0:0:2"])
    # the image branches of a join are stacked as channels, in the order they come
    assert split_columns(["b.voxel:0:0:1", "b.voxel:0:0:0", "age", "a.voxel:0:0:0", "a.voxel:0:0:1"]) == (
        ["b.voxel:0:0:0", "b.voxel:0:0:1", "a.voxel:0:0:0", "a.voxel:0:0:1"], [2, 1, 2], ["age"])
    with pytest.raises(ValueError, match="different patch shapes"):
        split_columns(["a.voxel:0:0:0", "b.voxel:0:0:0", "b.voxel:0:0:1"])


# ----------------------------------------------------------------------------------------------
# compile-time diagnostics

HEAD = 'study "s" { seed: 1 }\ncohort train = phantom(20) { size: [16, 16, 16] }\n'


def codes(text):
    from radlang.compiler import compile_source

    return sorted({d.code for d in compile_source(text, "t.rad").diagnostics if d.severity == "error"})


@pytest.mark.parametrize("body,code", [
    # a patch smaller than the backbone's total downsampling (ResNet: 16)
    (("network enc = resnet(dims: 3) { depth: 10 }\nfeatures img = patches(train) { patch: [8, 8, 8] }\n"
     "model m = cnn(img, target: train.outcome, network: enc)"), "E255"),
    # a network model without a fixed-size image input
    ("network enc = resnet(dims: 3) { depth: 10 }\nfeatures t = tabular(train)\nmodel m = cnn(t, target: train.outcome, network: enc)", "E256"),
    # a 2D network on 3D patches
    (("network enc = resnet(dims: 2) { depth: 10 }\nfeatures img = patches(train) { patch: [16, 16, 16] }\n"
     "model m = cnn(img, target: train.outcome, network: enc)"), "E254"),
    # two channels (image + mask) into a one-channel network
    (("network enc = resnet(dims: 3) { depth: 10 }\nfeatures img = patches(train) { patch: [16, 16, 16], mask_channel: true }\n"
     "model m = cnn(img, target: train.outcome, network: enc)"), "E254"),
    # a 2D image branch fused with a 3D one
    (("features a = patches(train) { patch: [16, 16, 16] }\nfeatures b = patches(train) { dims: 2, patch: [16, 16], slices: mip }\n"
     "features ab = join(a, b) { prefix: true }"), "E253"),
    # a 2D slice of a volume, reduced without a stated `slices`, fused with another image branch
    (("features a = patches(train) { dims: 2, patch: [16, 16], slices: max_area }\nfeatures b = patches(train) { dims: 2, patch: [16, 16] }\n"
     "features ab = join(a, b) { prefix: true }"), "E350"),
    # joined image branches of different patch sizes
    (("features a = patches(train) { dims: 2, patch: [16, 16], slices: max_area }\n"
      "features b = patches(train) { dims: 2, patch: [24, 24], slices: mip }\nfeatures ab = join(a, b) { prefix: true }"), "E351"),
    # `slices` keeps a volume (dims: 3)
    ("features a = patches(train) { patch: [16, 16, 16], slices: mip }", "E306"),
    # `patch` entries that do not match `dims`
    ("features a = patches(train) { dims: 2, patch: [16, 16, 16] }", "E306"),
])
def test_bad_input_is_a_compile_time_diagnostic(body, code):
    assert code in codes(HEAD + body + "\n")


def test_crop_around_a_mask_the_cohort_lacks():
    text = ('study "s" { seed: 1 }\ncohort bc = dataset("breast_cancer")\n'
            "features img = patches(bc) { patch: [16, 16, 16] }\n")
    assert "E252" in codes(text)


def test_a_good_network_model_compiles():
    assert codes(HEAD + "network enc = resnet(dims: 3) { depth: 10, widen_factor: 0.125 }\n"
                 "features img = patches(train) { patch: [16, 16, 16] }\nfeatures rad = tabular(train)\n"
                 "features both = join(img, rad)\nmodel m = cnn(both, target: train.outcome, network: enc)\n") == []


def test_2d_slices_train_and_predict():
    """2D slice mode: a 2D ResNet on [1, 16, 16] patches, three classes."""
    rng = np.random.default_rng(4)
    images = rng.normal(size=(18, 1, 16, 16)).astype(np.float32)
    y = np.repeat([0, 1, 2], 6)
    spec = {"arch": "resnet", "params": {"dims": 2, "in_channels": 1, "out_channels": 3, "depth": 10, "widen_factor": 0.125}}
    est = net_estimator_class()(network=spec, params={**PARAMS, "epochs": 1, "validation": 0.0}, seed=0).fit(voxel_table(images), y)
    P = est.predict_proba(voxel_table(images))
    assert est.image_shape_ == [1, 16, 16] and P.shape == (18, 3)
    np.testing.assert_allclose(P.sum(1), 1.0, rtol=0, atol=1e-6)
    assert set(est.predict(voxel_table(images))) <= {0, 1, 2}
