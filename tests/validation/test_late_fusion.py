"""Late fusion (`stack`): the meta-model is trained on out-of-fold predictions only, and a stacker on in-fold
predictions cannot be written."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from radlang.ops.late_fusion import stacker_class


def _data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, 4)), columns=list("abcd"), index=pd.Index([f"c{i:02d}" for i in range(n)], name="case_id"))
    return X, rng.integers(0, 2, n)


def test_meta_model_sees_out_of_fold_predictions_only():
    """With a branch that memorises its training cases (1-nearest neighbour: in-fold predictions equal the labels),
    the meta-model's inputs are exactly the inner folds' held-out predictions."""
    from sklearn.model_selection import StratifiedGroupKFold
    from sklearn.neighbors import KNeighborsClassifier

    X, y = _data()
    st = stacker_class()(estimators=[("nn", KNeighborsClassifier(1))], meta="logistic", cv=4, seed=3).fit(X, y)
    expect = np.zeros(len(y))
    for a, b in StratifiedGroupKFold(4, shuffle=True, random_state=3).split(np.zeros(len(y)), y, X.index.to_numpy()):
        expect[b] = KNeighborsClassifier(1).fit(X.iloc[a], y[a]).predict_proba(X.iloc[b])[:, 1]
    assert np.array_equal(st.oof_[:, 0], expect)
    in_fold = KNeighborsClassifier(1).fit(X, y).predict_proba(X)[:, 1]
    assert np.array_equal(in_fold, y) and not np.array_equal(st.oof_[:, 0], in_fold)


def test_patients_stay_in_one_inner_fold():
    from sklearn.linear_model import LogisticRegression

    X, y = _data(24, 1)
    patients = {c: f"p{i // 2}" for i, c in enumerate(X.index)}          # two cases per patient
    y = np.repeat(y[:12], 2)
    st = stacker_class()(estimators=[("lr", LogisticRegression())], cv=3, seed=0, fold_inputs={"patients": patients}).fit(X, y)
    assert st.oof_.shape == (24, 1)
    # each patient's two cases were held out together: refit with the patients' folds gives the same predictions
    from sklearn.model_selection import StratifiedGroupKFold

    groups = np.asarray([patients[c] for c in X.index])
    expect = np.zeros(len(y))
    for a, b in StratifiedGroupKFold(3, shuffle=True, random_state=0).split(np.zeros(len(y)), y, groups):
        assert not set(groups[a]) & set(groups[b])
        expect[b] = LogisticRegression().fit(X.iloc[a], y[a]).predict_proba(X.iloc[b])[:, 1]
    assert np.array_equal(st.oof_[:, 0], expect)


def test_weighted_average_is_the_stated_average():
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import GaussianNB

    X, y = _data(30, 2)
    st = stacker_class()(estimators=[("lr", LogisticRegression()), ("nb", GaussianNB())], meta="average", weights=[1.0, 3.0]).fit(X, y)
    p = (1.0 * LogisticRegression().fit(X, y).predict_proba(X) + 3.0 * GaussianNB().fit(X, y).predict_proba(X)) / 4.0
    np.testing.assert_allclose(st.predict_proba(X), p, rtol=0, atol=1e-15)


HEAD = ('study "s" { seed: 1 }\ncohort bc = dataset("breast_cancer")\nfeatures f = tabular(bc)\n'
        "model a = logistic(f, target: bc.outcome)\nmodel b = knn(f, target: bc.outcome)\n")


def codes(text):
    from radlang.compiler import compile_source

    return sorted({d.code for d in compile_source(text, "t.rad").diagnostics if d.severity == "error"})


@pytest.mark.parametrize("stmt,code", [
    ("model s = stack(a, b, target: bc.outcome) { cv: 1 }", "E309"),        # a meta-model on in-fold predictions
    ("model s = stack(a, b, target: bc.outcome) { cv: 0 }", "E309"),
    ("model s = stack(a, b, target: bc.outcome) { meta: average, weights: [1] }", "E310"),
    ("model s = stack(a, b, target: bc.outcome) { weights: [1, 1] }", "E306"),
])
def test_bad_stack_is_a_compile_time_diagnostic(stmt, code):
    assert code in codes(HEAD + stmt + "\n")


def test_branch_on_another_cohort():
    text = HEAD + 'cohort other = dataset("breast_cancer") { start: 400 }\nfeatures g = tabular(other)\n' \
        "model c = logistic(g, target: other.outcome)\nmodel s = stack(a, c, target: bc.outcome)\n"
    assert "E311" in codes(text)


def test_good_stack_compiles_and_refits_its_branches():
    from radlang.compiler import compile_source

    r = compile_source(HEAD + "model s = stack(a, b, target: bc.outcome)\nvalidate v = evaluate(s) { cv: stratified_kfold(3) }\n", "t.rad")
    assert r.ok, [d.message for d in r.diagnostics]
    g = r.study.refit["v"]
    assert set(g.nodes) == {"s", "a", "b"} and g.sources == ("f",)
    assert set(r.study.refit) == {"v"}          # the stack validates nothing itself
