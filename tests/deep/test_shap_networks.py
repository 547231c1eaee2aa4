"""SHAP of network models (radlang/ops/explain_shap.py, `shap(v)` on an `evaluate` stage of `cnn`, `dann`, `multitask`):
the invariants of the region game, on tiny CPU networks.

A network's features are its image regions (each channel cut into a grid of blocks) and its tabular columns; a
feature that is absent takes a background case's values, and the game averages over the background cases. So:

- efficiency: sum_i phi_i = f(x) - mean f(background), to 1e-6, for `exact`, `permutation` and `partition` (each
  keeps it exactly: Shapley values, antithetic permutations, Owen values), with base value = mean f(background);
- a linear network (float64) whose regions are single voxels: phi_i = beta_i (x_i - mean_background x_i), to 1e-10;
- the explained output is the estimator's own prediction (cnn with a tabular branch, dann, a multitask model's
  primary head, binary or survival), to 1e-6 (float32 networks, other batch sizes);
- a grouped value (by channel, by feature family) is the sum of its members;
- the Partition hierarchy is a valid linkage whose first merges are one block's channels;
- compile-time diagnostics: E282 (a setting for another kind of model), E283 (regions); a `train` stage's network is
  E281 (tests/validation/test_shap.py).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.cluster.hierarchy import is_valid_linkage

from radlang.ops.dann import dann_estimator_class
from radlang.ops.explain_shap import (
    feature_clustering,
    grouped_values,
    image_regions,
    network_groups,
    network_output,
    network_shap,
    region_hierarchy,
)
from radlang.ops.multitask import multitask_estimator_class
from radlang.ops.net_models import net_estimator_class
from tests.deep.test_net_models import SEGRESNET

pytest.importorskip("shap")

PARAMS = {"epochs": 2, "batch": 4, "optimizer": "adam", "lr": 1e-2, "weight_decay": 0.0, "schedule": "constant",
          "hidden": 4, "dropout": 0.0, "validation": 0.0, "patience": 2}


def _table(n=12, channels=1, tab=0, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.normal(size=(n, channels, 8, 8, 8))
    y = rng.integers(0, 2, n)
    y[:2] = [0, 1]
    images[y == 1, 0, 2:6, 2:6, 2:6] += 1.5
    names = ["voxel:" + ":".join(map(str, i)) for i in np.ndindex(*images.shape[1:])]
    X = pd.DataFrame(images.reshape(n, -1), columns=names, index=pd.Index([f"c{i:02d}" for i in range(n)], name="case_id"))
    for j in range(tab):
        X[f"rad.original_{'firstorder' if j % 2 else 'glcm'}_F{j}"] = rng.normal(size=n) * 10 + 3 * y
    return X, y


def _cnn(tab=2, channels=2):
    X, y = _table(channels=channels, tab=tab)
    net = {**SEGRESNET, "params": {**SEGRESNET["params"], "in_channels": channels}}
    return net_estimator_class()(network=net, params=PARAMS, seed=2).fit(X, y), X, y


@pytest.mark.parametrize("explainer", ["exact", "permutation", "partition"])
def test_efficiency_on_a_fusion_network(explainer):
    est, X, _ = _cnn(tab=2, channels=2)
    img, tab = est._arrays(X)
    labels, blocks = image_regions(est.image_shape_, [2, 1, 1])            # 2 channels x 2 blocks + 2 columns = 6 features
    assert len(blocks) == 4
    predict = network_output(est, "probability")
    bg = [1, 4, 7, 9]
    clustering = region_hierarchy([2, 1, 1], 2, feature_clustering(tab), 2)
    values, base, fx = network_shap(predict, img[:3], tab[:3], img[bg], tab[bg], labels, explainer, 64, 5, clustering)
    assert values.shape == (3, 6)
    np.testing.assert_allclose(base, predict(img[bg], tab[bg]).mean(), rtol=0, atol=1e-12)   # base value = E f(background)
    np.testing.assert_allclose(fx, est.predict_proba(X.iloc[:3])[:, 1], rtol=0, atol=1e-6)   # f is the model's probability
    np.testing.assert_allclose(values.sum(axis=1), fx - base, rtol=0, atol=1e-6)


@pytest.mark.parametrize("explainer", ["exact", "permutation", "partition"])
def test_linear_network_gives_beta_times_deviation_from_the_background_mean(explainer):
    torch.manual_seed(0)
    lin = torch.nn.Linear(8 + 2, 1).double()                              # a 1 x 2 x 2 x 2 patch and two columns

    def predict(image, tab):
        with torch.no_grad():
            z = torch.cat([torch.from_numpy(np.asarray(image, dtype=np.float64)).flatten(1), torch.from_numpy(np.asarray(tab, dtype=np.float64))], 1)
            return lin(z)[:, 0].numpy()

    rng = np.random.default_rng(3)
    images, tabs = rng.normal(size=(9, 1, 2, 2, 2)), rng.normal(size=(9, 2))
    labels, _ = image_regions([1, 2, 2, 2], [2, 2, 2])                    # every voxel its own region
    assert sorted(labels.ravel()) == list(range(8)) and labels.ravel().tolist() == list(range(8))
    clustering = region_hierarchy([2, 2, 2], 1, feature_clustering(tabs), 2)
    values, _, _ = network_shap(predict, images[:4], tabs[:4], images[4:], tabs[4:], labels, explainer, 1024, 1, clustering)
    beta = lin.weight.detach().numpy()[0]
    x = np.hstack([images[:4].reshape(4, -1), tabs[:4]])
    mean = np.hstack([images[4:].reshape(5, -1), tabs[4:]]).mean(axis=0)
    np.testing.assert_allclose(values, beta * (x - mean), rtol=0, atol=1e-10)


def test_regions_cover_the_patch_channel_major():
    labels, blocks = image_regions([2, 8, 6, 5], [2, 3, 1])               # x: 2 blocks, y: 3, z: 1
    assert labels.shape == (2, 8, 6, 5) and len(blocks) == 12
    assert np.array_equal(np.unique(labels), np.arange(12))
    assert blocks[0] == (0, ((0, 2), (0, 2), (0, 8))) and blocks[6][0] == 1    # (x, y, z) voxel ranges; channel 1 from 6 on
    for r, (c, box) in enumerate(blocks):
        (x0, x1), (y0, y1), (z0, z1) = box
        assert (labels[c, z0:z1, y0:y1, x0:x1] == r).all() and (labels == r).sum() == (x1 - x0) * (y1 - y0) * (z1 - z0)


def test_hierarchy_merges_a_blocks_channels_first():
    rng = np.random.default_rng(0)
    Z = region_hierarchy([2, 2, 1], 2, feature_clustering(rng.normal(size=(10, 3))), 3)      # 8 regions + 3 columns
    assert is_valid_linkage(Z) and len(Z) == 10 and Z[-1, 3] == 11
    firsts = [sorted(map(int, r[:2])) for r in Z if r[2] == 1 and max(r[:2]) < 8]
    assert sorted(firsts) == [[0, 4], [1, 5], [2, 6], [3, 7]]              # block k of channel 0 with block k of channel 1


def test_grouped_values_are_sums_of_members():
    regions = ["t1@x0-4_y0-8_z0-8", "t1@x4-8_y0-8_z0-8", "mask@x0-4_y0-8_z0-8", "mask@x4-8_y0-8_z0-8"]
    tab = ["rad.original_glcm_Contrast", "rad.original_firstorder_Mean", "clinical.age"]
    names = regions + tab
    values = np.random.default_rng(1).normal(size=(5, 7))
    for by in ("channel", "family"):
        groups = network_groups(regions, tab, by)
        assert sorted(m for ms in groups.values() for m in ms) == sorted(names)             # a partition of the features
        g = grouped_values(values, names, groups)
        for j, members in enumerate(groups.values()):
            np.testing.assert_array_equal(g[:, j], values[:, [names.index(m) for m in members]].sum(axis=1))
    assert list(network_groups(regions, tab, "channel")) == ["t1", "mask", "tabular"]
    assert network_groups(regions, tab, "family") == {"image": regions, "glcm": [tab[0]], "firstorder": [tab[1]], "other": [tab[2]]}


def test_dann_and_multitask_outputs_are_their_predictions():
    from sksurv.util import Surv

    X, y = _table(n=12, tab=1)
    info = {"sites": {cid: f"s{i % 2}" for i, cid in enumerate(X.index)}}
    dann = dann_estimator_class()(network=SEGRESNET, params={**PARAMS, "reversal": "ganin", "domain_hidden": 4, "target_unlabelled": False},
                                  seed=1, fold_inputs=info).fit(X, y)
    img, tab = dann._arrays(X)
    np.testing.assert_allclose(network_output(dann, "probability")(img, tab), dann.predict_proba(X)[:, 1], rtol=0, atol=1e-6)
    logits = np.log(dann.predict_proba(X))
    np.testing.assert_allclose(network_output(dann, "log_odds")(img, tab), logits[:, 1] - logits[:, 0], rtol=0, atol=1e-5)
    rng = np.random.default_rng(2)
    time, event = rng.exponential(10, len(X)) + 1, rng.uniform(size=len(X)) < 0.7
    heads = [{"name": "risk", "kind": "survival", "weight": 1.0, "primary": True},
             {"name": "malignancy", "kind": "binary", "weight": 1.0, "primary": False}]
    mt = multitask_estimator_class()(network=SEGRESNET, params={**PARAMS, "heads": heads, "combine": "fixed", "cagrad_c": 0.5, "task_norm": False}, seed=1,
                                     fold_inputs={"heads": {"malignancy": dict(zip(X.index, y.astype(float)))}}).fit(X, Surv.from_arrays(event, time))
    img, tab = mt._arrays(X)
    risk = network_output(mt, "probability")
    np.testing.assert_allclose(risk(img, tab), mt.predict(X), rtol=0, atol=1e-6)        # the primary head's log relative hazard
    labels, _ = image_regions(mt.image_shape_, [2, 2, 2])
    values, base, fx = network_shap(risk, img[:2], tab[:2], img[4:8], tab[4:8], labels, "partition", 60, 0,
                                    region_hierarchy([2, 2, 2], 1, np.zeros((0, 4)), 1))
    np.testing.assert_allclose(values.sum(axis=1), fx - base, rtol=0, atol=1e-6)


# ---------------------------------------------------------------------------------------------- through radlang

SPEC = """study "s" {{ seed: 3 }}
cohort dev = phantom(12) {{ size: [16, 16, 16], effect: 2.0 }}
network enc = resnet(dims: 3, in_channels: 1, out_channels: 2) {{ depth: 10, widen_factor: 0.125 }}
features img = patches(dev) {{ patch: [16, 16, 16] }}
features rad = pyradiomics(dev.image, dev.mask) {{ bin_width: 25, classes: [firstorder] }}
features both = join(img, rad)
model net = cnn(both, target: dev.outcome, network: enc) {{ epochs: 1, batch: 4, hidden: 4, validation: 0 }}
validate v = evaluate(net) {{ cv: stratified_kfold(2), bootstrap: 0, metrics: [auc] }}
explain why = shap(v) {{ {settings} }}
"""


def _codes(text):
    from radlang.compiler import compile_source

    return [d.code for d in compile_source(text.encode(), "s.rad").diagnostics if d.severity == "error"]


def test_fusion_run_writes_values_groups_and_panels(tmp_path):
    from radlang.compiler import compile_file
    from radlang.predict import load_card, load_model
    from tests.validation._validation_util import run_error_codes, run_spec

    settings = "explainer: partition, max_evals: 40, regions: [2, 2, 1], background: 4, cases: 3, group_by: [channel, family], per_fold: true"
    run_spec(SPEC.format(settings=settings), tmp_path / "s.rad", tmp_path / "out")
    folder = tmp_path / "out" / "explain" / "why"
    summary = json.loads((folder / "shap.json").read_text())
    vals = pd.read_csv(folder / "shap_values.csv", dtype={"case_id": str})
    feats = summary["features"]
    net = summary["network"]
    assert net["regions"] == [2, 2, 1] and net["channels"] == ["image"] and len(net["image_features"]) == 4
    assert net["tabular_features"] and all(f.startswith("original_firstorder_") for f in net["tabular_features"])
    assert feats == net["image_features"] + net["tabular_features"] and len(vals) == 3 and summary["background"] == 4
    np.testing.assert_allclose(vals[feats].sum(axis=1), vals["output"] - vals["base_value"], rtol=0, atol=1e-6)
    assert summary["efficiency_max_error"] < 1e-6
    assert summary["clustering"] == ("image regions: a block's channels, then halves of the patch along its longest axis; "
                                     "tabular branch: complete linkage on 1 - |Pearson r|, training cases")
    # the output explained is the final model's probability on those training cases
    study = compile_file(tmp_path / "s.rad").study
    _, data = load_card(tmp_path / "out", study.stage("v"))
    pipe = load_model(data, study.stage("v"))
    X = pd.read_csv(tmp_path / "out" / "tables" / "both.csv", dtype={"case_id": str}).set_index("case_id")
    est = pipe.steps[-1][1]
    np.testing.assert_allclose(vals["output"], pipe.predict_proba(X.loc[vals["case_id"], est.image_columns_ + est.tabular_columns_])[:, 1],
                               rtol=0, atol=1e-6)
    # per fold: each fold's network, refit as the validation fit it, explained on its held-out cases; its outputs are the
    # evaluation's out-of-fold probabilities (the refit is deterministic), and its values add up to them
    per = pd.read_csv(folder / "shap_folds.csv", dtype={"case_id": str})
    sums = per.groupby("case_id").agg(value=("value", "sum"), base=("base_value", "first"), out=("output", "first"))
    assert len(sums) == 12
    np.testing.assert_allclose(sums["value"], sums["out"] - sums["base"], rtol=0, atol=1e-6)
    preds = pd.read_csv(tmp_path / "out" / "predictions" / "v.csv", dtype={"case_id": str}).set_index("case_id")
    np.testing.assert_allclose(sums["out"], preds.loc[sums.index, "probability"], rtol=0, atol=1e-6)
    by_channel = pd.read_csv(folder / "shap_channel.csv", dtype={"case_id": str})
    np.testing.assert_allclose(by_channel["image"], vals[net["image_features"]].sum(axis=1), rtol=0, atol=1e-12)
    np.testing.assert_allclose(by_channel["tabular"], vals[net["tabular_features"]].sum(axis=1), rtol=0, atol=1e-12)
    by_family = pd.read_csv(folder / "shap_family.csv", dtype={"case_id": str})
    assert list(by_family.columns[3:]) == ["image", "firstorder"]
    for name in ("beeswarm.png", "bar.png", "regions.png", "bar_channel.png", "beeswarm_family.png"):
        assert (folder / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the HTML report shows the network's SHAP panel: its settings, regions, top features and the regions.png overlay
    from radlang.review.report import build_report

    html = build_report(tmp_path / "out")
    assert "<h3>explain/why/shap.json</h3>" in html and "partition explainer, 3 cases, background 4" in html
    assert f"a network over 4 image regions (2 x 2 x 1 blocks of each channel: image) and {len(net['tabular_features'])} tabular columns" in html
    assert "<th>by channel</th>" in html and '<img alt="explain/why/regions.png" src="data:image/png;base64,' in html
    # a background larger than the training data (12 cases), on the same run (the validation is cached)
    diags = run_error_codes(SPEC.format(settings="explainer: exact, background: 13, cases: 1, regions: [1, 1, 1]"),
                            tmp_path / "s.rad", tmp_path / "out")
    assert [d.code for d in diags] == ["E526"] and "13 cases" in diags[0].message and "12 cases" in diags[0].message


@pytest.mark.parametrize(("settings", "code"), [
    ("explainer: linear", "E282"),
    ("regions: [2, 2]", "E283"),
    ("regions: [2, 2, 17]", "E283"),
    ("regions: [0, 2, 2]", "E283"),
])
def test_network_settings_are_checked(settings, code):
    assert _codes(SPEC.format(settings=settings)) == [code]


def test_network_only_settings_on_a_scikit_learn_model():
    tab = SPEC.replace("model net = cnn(both, target: dev.outcome, network: enc) {{ epochs: 1, batch: 4, hidden: 4, validation: 0 }}",
                       "model net = logistic(rad, target: dev.outcome)")
    assert "logistic" in tab
    assert _codes(tab.format(settings="regions: [2, 2, 2]")) == ["E282"]
    assert _codes(tab.format(settings="group_by: [channel]")) == ["E282"]
    assert _codes(tab.format(settings="group_by: [family]")) == []
    assert _codes(SPEC.format(settings="regions: [4, 4, 2], group_by: [channel, filter]")) == []


def test_plan_states_the_regions_and_the_cost():
    from radlang.compiler import compile_source
    from radlang.ops.explain_shap import _shap_plan

    study = compile_source(SPEC.format(settings="max_evals: 50, regions: [4, 2, 1], cases: 5").encode(), "s.rad").study
    assert _shap_plan(study.stage("why"), None, study) == [("info", (
        "network SHAP: 4 x 2 x 1 regions of each channel of the 16x16x16 patch (plus the tabular columns, if any); "
        "at most 50 x 16 background forward passes per explained case, 5 training case(s)"))]
    tab = SPEC.replace("cnn(both, target: dev.outcome, network: enc) {{ epochs: 1, batch: 4, hidden: 4, validation: 0 }}",
                       "logistic(rad, target: dev.outcome)")
    study = compile_source(tab.format(settings="").encode(), "s.rad").study
    assert _shap_plan(study.stage("why"), None, study) == []


def test_a_stacked_model_with_a_network_branch_is_not_explained():
    """Late fusion over a network: SHAP would see every voxel column of the patch as a feature; E281 says to explain
    each branch's own evaluation instead. A stack of tabular models is explained as any scikit-learn model."""
    stacked = SPEC.replace("validate v = evaluate(net)", "model lr = logistic(rad, target: dev.outcome)\n"
                           "model late = stack(lr, net, target: dev.outcome) {{ meta: average }}\nvalidate v = evaluate(late)")
    assert _codes(stacked.format(settings="")) == ["E281"]
    tabular = stacked.replace("stack(lr, net,", "stack(lr, lr2,").replace("model late", "model lr2 = logistic(rad, target: dev.outcome) {{ C: 0.1 }}\nmodel late")
    assert _codes(tabular.format(settings="")) == []
