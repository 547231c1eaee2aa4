"""SHAP explanations (radlang/ops/explain_shap.py): the invariants every explainer must keep, the grouping, and the
diagnostics of an explanation radlang cannot compute.

- efficiency: sum_i phi_i = f(x) - E f(background), to 1e-6, for every explainer;
- a linear model with an independent masker: phi_i = beta_i (x_i - mean_background x_i), exactly;
- a grouped value is the sum of its members' values;
- the Partition explainer's hierarchy comes from the training cases, not the background.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from _validation_util import codes, compile_ok, run_error_codes, run_spec, write_table

from radlang.ops.explain_shap import feature_clustering, feature_groups, grouped_values, linear_coefficients, shap_explain

shap = pytest.importorskip("shap")

NAMES = ["original_firstorder_Mean", "original_glcm_Contrast", "wavelet-LLH_glcm_Contrast", "wavelet-HHH_firstorder_Mean",
         "log-sigma-2-0-mm-3D_glszm_ZoneEntropy", "clinical.age"]


def _data(n=30, k=6, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, 1))
    X = np.hstack([base + 0.3 * rng.normal(size=(n, 3)), rng.normal(size=(n, k - 3))])   # three correlated features
    y = (X[:, 0] + X[:, 3] + 0.5 * rng.normal(size=n) > 0).astype(int)
    return X, y


def _pipeline(X, y):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=1.0)).fit(X, y)


@pytest.mark.parametrize("explainer", ["partition", "permutation", "exact", "linear"])
def test_efficiency(explainer):
    X, y = _data()
    pipe = _pipeline(X, y)
    f = (lambda Z: pipe.decision_function(Z)) if explainer == "linear" else (lambda Z: pipe.predict_proba(Z)[:, 1])
    bg = X[:12]
    values, base, fx = shap_explain(f, X[:8], bg, X, explainer, 200, seed=3)
    assert values.shape == (8, X.shape[1])
    np.testing.assert_allclose(base, np.mean(f(bg)), rtol=0, atol=1e-9)          # base value = E f(background)
    np.testing.assert_allclose(values.sum(axis=1), fx - base, rtol=0, atol=1e-6)


@pytest.mark.parametrize("explainer", ["exact", "linear", "permutation"])
def test_linear_model_with_independent_masker(explainer):
    X, y = _data(seed=1)
    pipe = _pipeline(X, y)
    f = lambda Z: pipe.decision_function(Z)
    beta = pipe[-1].coef_[0] / pipe[0].scale_
    bg = X[5:25]
    values, _, _ = shap_explain(f, X[:6], bg, X, explainer, 200, seed=3)
    np.testing.assert_allclose(values, beta * (X[:6] - bg.mean(axis=0)), rtol=0, atol=1e-8)


def test_linear_coefficients_recover_an_affine_function():
    coef, b = linear_coefficients(lambda Z: Z @ np.array([2.0, -1.0, 0.5]) + 4.0, np.array([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(coef, [2.0, -1.0, 0.5], atol=1e-12)
    assert b == pytest.approx(4.0, abs=1e-12)


def test_groups_by_family_filter_and_image_type():
    assert feature_groups(NAMES, "family") == {
        "firstorder": ["original_firstorder_Mean", "wavelet-HHH_firstorder_Mean"],
        "glcm": ["original_glcm_Contrast", "wavelet-LLH_glcm_Contrast"], "glszm": ["log-sigma-2-0-mm-3D_glszm_ZoneEntropy"],
        "other": ["clinical.age"]}
    assert feature_groups(NAMES, "filter") == {
        "log": ["log-sigma-2-0-mm-3D_glszm_ZoneEntropy"], "original": ["original_firstorder_Mean", "original_glcm_Contrast"],
        "other": ["clinical.age"], "wavelet": ["wavelet-LLH_glcm_Contrast", "wavelet-HHH_firstorder_Mean"]}
    assert list(feature_groups(NAMES, "image_type")) == ["log-sigma-2-0-mm-3D", "original", "other", "wavelet-HHH", "wavelet-LLH"]


def test_grouped_value_is_the_sum_of_its_members():
    values = np.arange(24, dtype=float).reshape(4, 6) - 7.5
    groups = feature_groups(NAMES, "filter")
    g = grouped_values(values, NAMES, groups)
    col = {n: i for i, n in enumerate(NAMES)}
    for j, members in enumerate(groups.values()):
        np.testing.assert_array_equal(g[:, j], sum(values[:, col[m]] for m in members))
    np.testing.assert_array_equal(g.sum(axis=1), values.sum(axis=1))   # groups partition the features


def test_clustering_is_computed_on_the_training_cases():
    X, _ = _data(n=40)
    Z = feature_clustering(X)
    # the three correlated features merge before any of them joins an independent one
    first_two = {int(Z[0, 0]), int(Z[0, 1])}
    assert first_two <= {0, 1, 2}
    assert not np.array_equal(Z, feature_clustering(X[:5]))


# ---------------------------------------------------------------------------------------------- through radlang

SPEC = """study "shap" {{ seed: 5 }}
cohort dev = table("dev.csv") {{ id: case, outcome: y as binary }}
features f = tabular(dev)
model clf = logistic(f, target: dev.outcome)
validate v = evaluate(clf) {{ cv: stratified_kfold(3), bootstrap: 0, metrics: [auc] }}
explain why = shap(v) {{ {settings} }}
"""


def _spec(tmp_path, settings, n=40, k=4):
    X, y = _data(n=n, k=k, seed=2)
    write_table(tmp_path / "dev.csv", X, y)
    return SPEC.format(settings=settings)


def test_run_writes_values_groups_and_plots(tmp_path):
    src = _spec(tmp_path, "explainer: linear, output: log_odds, background: 20, group_by: [family]")
    run_spec(src, tmp_path / "s.rad", tmp_path / "out")
    folder = tmp_path / "out" / "explain" / "why"
    summary = json.loads((folder / "shap.json").read_text())
    vals = pd.read_csv(folder / "shap_values.csv", dtype={"case_id": str})
    feats = summary["features"]
    assert feats == ["f0000", "f0001", "f0002", "f0003"] and len(vals) == 40 and summary["background"] == 20
    np.testing.assert_allclose(vals[feats].sum(axis=1), vals["output"] - vals["base_value"], atol=1e-6)
    grouped = pd.read_csv(folder / "shap_family.csv", dtype={"case_id": str})
    np.testing.assert_allclose(grouped["other"], vals[feats].sum(axis=1), atol=1e-9)    # tabular columns: one group
    for name in ("beeswarm.png", "bar.png", "beeswarm_family.png", "bar_family.png"):
        assert (folder / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_background_larger_than_the_training_data(tmp_path):
    src = _spec(tmp_path, "background: 41", n=40)
    diags = run_error_codes(src, tmp_path / "s.rad", tmp_path / "out")
    assert [d.code for d in diags] == ["E526"]
    assert "41 cases" in diags[0].message and "40 cases" in diags[0].message and "at most 40" in diags[0].hint


def test_budget_too_small_for_the_permutation_explainer(tmp_path):
    src = _spec(tmp_path, "explainer: permutation, max_evals: 8", k=4)
    assert [d.code for d in run_error_codes(src, tmp_path / "s.rad", tmp_path / "out")] == ["E527"]


def test_linear_explainer_on_a_probability(tmp_path):
    src = _spec(tmp_path, "explainer: linear")          # the probability of a logistic model is not linear
    assert [d.code for d in run_error_codes(src, tmp_path / "s.rad", tmp_path / "out")] == ["E528"]


def test_a_train_stage_network_is_not_explained():
    """SHAP explains an `evaluate` stage's final model; a `train` stage's network is Grad-CAM's (E281, the hint says so)."""
    src = """study "s" { seed: 1 }
cohort dev = phantom(8) { size: [16, 16, 16] }
network net = resnet(dims: 3, in_channels: 1, out_channels: 2) { depth: 10 }
train fit = supervised(net, dev) { epochs: 1, loss: cross_entropy, patch: [32, 32, 32] }
explain why = shap(fit)
"""
    assert codes(src) == ["E281"]


def test_segmentation_scores_cannot_be_explained():
    src = """study "s" { seed: 1 }
cohort dev = phantom(8) { size: [16, 16, 16] }
cohort test = phantom(4, seed: 9) { size: [16, 16, 16] }
network net = unet(dims: 3, in_channels: 1, out_channels: 2) { channels: [4, 8], strides: [2] }
train fit = supervised(net, dev) { epochs: 1 }
validate seg = segmentation_metrics(fit, test)
explain why = shap(seg)
"""
    assert "E281" in codes(src)


def test_log_odds_needs_a_binary_outcome():
    src = """study "s" { seed: 1 }
cohort dev = dataset("gbsg2") { stop: 80 }
features f = tabular(dev)
model m = cox(f, target: dev.outcome)
validate v = evaluate(m) { cv: kfold(2), bootstrap: 0 }
explain why = shap(v) { output: log_odds }
"""
    assert codes(src) == ["E331"]
    compile_ok(src.replace("{ output: log_odds }", "{ explainer: linear }"), "<test>")


def test_per_fold_explains_each_fold_model_on_its_held_out_cases(tmp_path):
    src = _spec(tmp_path, "explainer: linear, output: log_odds, per_fold: true, group_by: []", n=30)
    run_spec(src, tmp_path / "s.rad", tmp_path / "out")
    folder = tmp_path / "out" / "explain" / "why"
    per = pd.read_csv(folder / "shap_folds.csv", dtype={"case_id": str})
    assert sorted(set(zip(per["repeat"], per["fold"]))) == [(0, 0), (0, 1), (0, 2)]
    cases = per.drop_duplicates(["repeat", "fold", "case_id"])
    assert len(cases) == 30 and cases["case_id"].is_unique                  # every case explained once, by the fold that held it out
    sums = per.groupby(["repeat", "fold", "case_id"]).agg(value=("value", "sum"), base=("base_value", "first"), out=("output", "first"))
    np.testing.assert_allclose(sums["value"], sums["out"] - sums["base"], atol=1e-6)
    summary = json.loads((folder / "shap.json").read_text())["folds"]
    assert summary["folds"] == 3 and summary["kept_in"] == {f"f{j:04d}": 3 for j in range(4)}
    # held-out predictions: the fold models' outputs are the evaluation's out-of-fold log-odds
    preds = pd.read_csv(tmp_path / "out" / "predictions" / "v.csv", dtype={"case_id": str}).set_index("case_id")
    logit = np.log(preds["probability"] / (1 - preds["probability"]))
    np.testing.assert_allclose(sums.reset_index().set_index("case_id")["out"].sort_index(), logit.sort_index(), atol=1e-8)


def test_explains_the_columns_the_final_selection_kept(tmp_path):
    """After a LASSO selection the final model depends only on the kept columns: those are the features explained
    (checked by the operator on the training cases), and their values still add up to the model's output."""
    X, y = _data(n=40, k=6, seed=4)
    write_table(tmp_path / "dev.csv", X, y)
    src = SPEC.format(settings="explainer: exact, max_evals: 64").replace(
        "model clf = logistic(f,", "select sig = lasso(f, target: dev.outcome) { cv: 3, max_features: 2 }\nmodel clf = logistic(sig,")
    run_spec(src, tmp_path / "s.rad", tmp_path / "out")
    summary = json.loads((tmp_path / "out" / "explain" / "why" / "shap.json").read_text())
    final = json.loads((tmp_path / "out" / "metrics" / "v.json").read_text())["selection"]["sig"]["final"]
    assert 1 <= len(final) <= 2 and summary["features"] == final
    assert summary["efficiency_max_error"] < 1e-6
