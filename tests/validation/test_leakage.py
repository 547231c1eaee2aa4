"""Planted leakage: pure noise (n=100, p=2000) with random labels. Selection inside radlang's folds gives an
AUC whose CI contains 0.5; the same selection done once on all cases before CV (by hand) gives AUC > 0.7."""

from __future__ import annotations

import numpy as np
from _validation_util import metrics, run_spec, write_table
from sklearn.feature_selection import SelectKBest, f_classif
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import RepeatedStratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

N, P, K = 100, 2000, 20


def noise(seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, P))
    y = rng.permutation(np.repeat([0, 1], N // 2))
    return X, y


SPEC = """
study "planted leakage" { seed: 3 }
cohort c = table("noise.csv") { id: case, outcome: y as binary }
features f = tabular(c)
select s = univariate(f, target: c.outcome) { test: t_test, fdr: 0.05, min_features: K }
model m = logistic(s, target: c.outcome) { C: 1.0 }
validate v = evaluate(m) { cv: stratified_kfold(5, repeats: 2), metrics: [auc, brier], bootstrap: 500 }
""".replace("K", str(K))


def test_planted_leakage(tmp_path):
    X, y = noise()
    write_table(tmp_path / "noise.csv", X, y)
    run_spec(SPEC, tmp_path / "leak.rad", tmp_path / "out")
    auc = metrics(tmp_path / "out")["cross_validation"]["auc"]
    print(f"radlang (selection inside folds): AUC {auc['estimate']:.3f} [{auc['ci_low']:.3f}, {auc['ci_high']:.3f}]")
    assert auc["ci_low"] <= 0.5 <= auc["ci_high"]

    # the classic error, by hand: the same 20 features chosen once on all 100 cases, then CV of the model only
    Xs = SelectKBest(f_classif, k=K).fit_transform(X, y)
    cv = RepeatedStratifiedKFold(n_splits=5, n_repeats=2, random_state=0)
    oof_aucs = []
    for r in range(2):
        p = np.zeros(N)
        for i, (tr, te) in enumerate(cv.split(Xs, y)):
            if i // 5 != r:
                continue
            m = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000)).fit(Xs[tr], y[tr])
            p[te] = m.predict_proba(Xs[te])[:, 1]
        oof_aucs.append(roc_auc_score(y, p))
    leaked = float(np.mean(oof_aucs))
    print(f"selection before CV (leaky, by hand): AUC {leaked:.3f}")
    assert leaked > 0.7
    assert auc["estimate"] < leaked - 0.15
