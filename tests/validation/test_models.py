"""Every model operator runs end to end inside the fitted pipeline; inner-CV search reports its choices;
multiclass outcomes get one-vs-rest AUC; selection frequencies are reported per fold."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _validation_util import metrics, predictions, run_spec, write_table
from sklearn.metrics import roc_auc_score

from radlang.ops.models import assemble_pipeline, split_params

SPEC = """
study "models" { seed: 2 }
cohort c = table("t.csv") { id: case, outcome: y as binary }
features f = tabular(c)
select keep = variance(f)
select red = correlation(keep) { max: 0.8 }
select uni = univariate(red, target: c.outcome) { fdr: 0.1 }
model lr = logistic(uni, target: c.outcome) { search: grid(C: [0.1, 1.0], cv: 3) }
model rf = random_forest(uni, target: c.outcome) { n_estimators: 30, max_depth: 3 }
model sv = svm(uni, target: c.outcome) { C: 1.0, kernel: linear }
model gb = gradient_boosting(uni, target: c.outcome) { n_estimators: 20 }
model kn = knn(uni, target: c.outcome) { k: 7 }
validate v_lr = evaluate(lr) { cv: stratified_kfold(3), bootstrap: 0 }
validate v_rf = evaluate(rf) { cv: stratified_kfold(3), bootstrap: 0 }
validate v_sv = evaluate(sv) { cv: stratified_kfold(3), bootstrap: 0 }
validate v_gb = evaluate(gb) { cv: stratified_kfold(3), bootstrap: 0 }
validate v_kn = evaluate(kn) { cv: stratified_kfold(3), bootstrap: 0 }
"""


def test_all_models_end_to_end(tmp_path):
    rng = np.random.default_rng(0)
    n = 90
    y = rng.permutation(np.repeat([0, 1], n // 2))
    X = rng.normal(size=(n, 12))
    X[:, :3] += 1.2 * y[:, None]                       # three informative features
    X[:, 3] = X[:, 0] + rng.normal(scale=0.05, size=n)  # a redundant copy of feature 0
    X[:, 11] = 1.0                                     # a constant
    X[rng.random((n, 12)) < 0.03] = np.nan             # missing values: imputed inside the folds
    write_table(tmp_path / "t.csv", X, y)
    run_spec(SPEC, tmp_path / "m.rad", tmp_path / "out")
    for name in ("lr", "rf", "sv", "gb", "kn"):
        m = metrics(tmp_path / "out", f"v_{name}")
        auc = m["cross_validation"]["auc"]["estimate"]
        assert auc > 0.75, (name, auc)
        pr = predictions(tmp_path / "out", f"v_{name}")
        assert auc == pytest.approx(roc_auc_score(pr["outcome"], pr["probability"]), rel=1e-9)
        sel = m["selection"]
        assert "f0011" not in sel["keep"]["frequency"]              # the constant never survives
        assert "f0003" not in sel["red"]["frequency"] or sel["red"]["frequency"]["f0003"] < 1
        assert sel["uni"]["frequency"].get("f0001") == 1.0
    lr = metrics(tmp_path / "out", "v_lr")
    assert lr["search"]["grid"] == {"C": [0.1, 1.0]}
    assert all(bp["C"] in (0.1, 1.0) for bp in lr["search"]["best_params"])


def test_multiclass_pipeline_auc_ovr():
    rng = np.random.default_rng(1)
    n = 150
    y = np.repeat([0, 1, 2], n // 3)
    X = pd.DataFrame(rng.normal(size=(n, 5)) + y[:, None] * 0.7, index=[f"c{i}" for i in range(n)],
                     columns=[f"f{j}" for j in range(5)])
    params = {**split_params({"impute": "median", "scale": "standard", "search": None, "C": 1.0, "penalty": "l2",
                              "max_iter": 1000, "class_weight": None}), "classes": 3}
    pipe = assemble_pipeline({"source": "f", "columns": list(X.columns)}, "logistic", params, 0).fit(X.iloc[::2], y[::2])
    P = pipe.predict_proba(X.iloc[1::2])
    assert P.shape == (75, 3)
    assert roc_auc_score(y[1::2], P, multi_class="ovr") > 0.7


def test_kbest_mutual_information_is_seeded_and_keeps_informative():
    from radlang.ops.select import make_kbest

    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 120)
    X = rng.normal(size=(120, 8))
    X[:, 2] += 2 * y
    X[:, 5] += 2 * y
    a = make_kbest({"k": 2}, 11, {"outcome": "binary"}).fit(X, y).get_support()
    b = make_kbest({"k": 2}, 11, {"outcome": "binary"}).fit(X, y).get_support()
    assert list(np.flatnonzero(a)) == [2, 5] and (a == b).all()


@pytest.mark.parametrize("seed", [0, 1])
def test_lasso_inner_cv_keeps_each_patient_in_one_inner_fold(seed):
    """Two near-identical cases per patient, pure-noise features: an inner CV that splits patients validates on
    copies of its training cases, picks a weak penalty and keeps many noise features; grouped by patient it keeps
    (almost) none."""
    from radlang.ops.select import select_support

    rng = np.random.default_rng(seed)
    n, p = 60, 40
    Xp, yp = rng.normal(size=(n, p)), rng.integers(0, 2, n)
    X = np.repeat(Xp, 2, axis=0) + rng.normal(scale=0.01, size=(2 * n, p))
    y, g = np.repeat(yp, 2), np.repeat(np.arange(n), 2).astype(str)
    params = {"cv": 5, "n_alphas": 10, "max_features": None, "min_features": 1, "scoring": "neg_log_loss"}
    leaky = int(select_support("lasso", params, 1, X, y).sum())
    grouped = int(select_support("lasso", params, 1, X, y, groups=g).sum())
    assert leaky > 10 and grouped <= 3, (leaky, grouped)
