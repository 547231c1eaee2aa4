"""Paired model comparison (ops/compare.py) on a shared split (ops/split.py): DeLong's test against the published
formula, the patient bootstrap, the Harrell C-index, fold assignments of a shared split, and the design errors (runs: test_compare_runs.py)."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from _validation_util import codes

from radlang.ops.clinical_metrics import patient_resamples
from radlang.ops.compare import compare_set, delong_covariance, delong_test, harrell_c
from radlang.ops.split import fold_assignment, shared_splits, splits_from_assignment


def delong_reference(y, scores):
    """DeLong, DeLong & Clarke-Pearson (Biometrics 1988), as published: psi(X, Y) = 1 if Y < X, 1/2 if Y = X, 0 if
    Y > X over every (positive X, negative Y) pair; AUC_r = mean psi; the structural components V10_r(X_i) = mean over
    j of psi(X_i, Y_j) and V01_r(Y_j) = mean over i of psi(X_i, Y_j); S = S10 / m + S01 / n with S10, S01 their
    sample covariance matrices (denominator m - 1, n - 1). Written with explicit loops, independently of the
    mid-rank algorithm under test."""
    y = np.asarray(y).astype(int)
    k = len(scores)
    pos = [[s[i] for i in range(len(y)) if y[i] == 1] for s in scores]
    neg = [[s[i] for i in range(len(y)) if y[i] == 0] for s in scores]
    m, n = len(pos[0]), len(neg[0])

    def psi(x, yy):
        return 1.0 if yy < x else (0.5 if yy == x else 0.0)

    v10 = np.array([[sum(psi(pos[r][i], neg[r][j]) for j in range(n)) / n for i in range(m)] for r in range(k)])
    v01 = np.array([[sum(psi(pos[r][i], neg[r][j]) for i in range(m)) / m for j in range(n)] for r in range(k)])
    aucs = v10.mean(axis=1)
    s10 = np.array([[sum((v10[a, i] - aucs[a]) * (v10[b, i] - aucs[b]) for i in range(m)) / (m - 1) for b in range(k)] for a in range(k)])
    s01 = np.array([[sum((v01[a, j] - aucs[a]) * (v01[b, j] - aucs[b]) for j in range(n)) / (n - 1) for b in range(k)] for a in range(k)])
    return aucs, s10 / m + s01 / n


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_delong_equals_the_published_formula(seed):
    rng = np.random.default_rng(seed)
    n = 60
    y = rng.integers(0, 2, n)
    a = y + rng.normal(0, 1.0, n)
    b = 0.5 * y + rng.normal(0, 1.0, n)
    c = np.round(a + rng.normal(0, 0.5, n), 1)            # rounded: ties within and across classes
    aucs, S = delong_covariance(y, np.vstack([a, b, c]))
    ref_aucs, ref_S = delong_reference(y, [a, b, c])
    np.testing.assert_allclose(aucs, ref_aucs, rtol=0, atol=1e-12)
    np.testing.assert_allclose(S, ref_S, rtol=0, atol=1e-8)
    # the test statistic from the reference covariance
    from scipy.stats import norm

    for i, j in itertools.combinations(range(3), 2):
        t = delong_test(y, [a, b, c][i], [a, b, c][j])
        z = (ref_aucs[i] - ref_aucs[j]) / np.sqrt(ref_S[i, i] + ref_S[j, j] - 2 * ref_S[i, j])
        assert t["z"] == pytest.approx(z, abs=1e-8)
        assert t["p"] == pytest.approx(2 * norm.sf(abs(z)), abs=1e-8)
    from sklearn.metrics import roc_auc_score

    assert aucs[2] == pytest.approx(roc_auc_score(y, c), abs=1e-12)


def test_delong_p_value_of_a_model_against_itself_is_one():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 50)
    p = y + rng.normal(0, 1, 50)
    assert delong_test(y, p, p)["p"] == 1.0
    assert delong_test(y, p, 1 / (1 + np.exp(-p)))["p"] == 1.0      # a monotone transform has the same ranks
    assert delong_test(y, p, -p)["p"] < 0.05


def test_harrell_c_equals_lifelines():
    from lifelines.utils import concordance_index

    rng = np.random.default_rng(4)
    n = 40
    t = rng.permutation(np.arange(1, n + 1)).astype(float)     # distinct times
    e = rng.integers(0, 2, n)
    risk = np.round(-t / 10 + rng.normal(0, 1, n), 1)           # ties in risk
    assert harrell_c(t, e, risk) == pytest.approx(concordance_index(t, -risk, e), abs=1e-12)


def test_harrell_c_equals_scikit_survival_with_tied_times():
    sksurv = pytest.importorskip("sksurv.metrics")
    rng = np.random.default_rng(6)
    t = rng.integers(1, 12, 60).astype(float)                   # many tied times, events and censorings among them
    e = rng.integers(0, 2, 60).astype(bool)
    risk = np.round(rng.normal(0, 1, 60), 1)
    assert harrell_c(t, e, risk) == pytest.approx(sksurv.concordance_index_censored(e, t, risk)[0], abs=1e-12)


def test_the_bootstrap_resamples_patients_not_cases():
    groups = np.repeat([f"p{i}" for i in range(10)], 3)          # three cases per patient
    for ix in patient_resamples(groups, 50, seed=0):
        counts = np.bincount(ix, minlength=30).reshape(10, 3)
        assert (counts == counts[:, :1]).all()                    # a patient's cases are drawn together, as often
        assert counts.sum() == 30                                 # as many patients as there are
    # compare_set's intervals are those resamples' quantiles
    rng = np.random.default_rng(5)
    y = np.repeat(rng.integers(0, 2, 10), 3)
    y[:3], y[3:6] = 0, 1
    table = pd.DataFrame({"patient_id": groups, "case_id": [f"c{i}" for i in range(30)], "fold": "0:0", "outcome": y,
                          "a": y + rng.normal(0, 1, 30), "b": rng.normal(0, 1, 30)})
    r = compare_set(table, ["a", "b"], "binary", 200, 0.9, 7, True)
    from radlang.ops.clinical_metrics import auc_rank

    diffs = [auc_rank(y[ix], table["a"].to_numpy()[ix]) - auc_rank(y[ix], table["b"].to_numpy()[ix])
             for ix in patient_resamples(groups, 200, 7) if 0 < y[ix].sum() < len(ix)]
    assert r["bootstrap"] == len(diffs)
    assert r["pairs"][0]["ci_low"] == pytest.approx(np.quantile(diffs, 0.05), abs=1e-12)
    assert r["pairs"][0]["ci_high"] == pytest.approx(np.quantile(diffs, 0.95), abs=1e-12)
    assert r["n_patients"] == 10 and r["n_cases"] == 30


def test_a_split_assignment_gives_back_its_folds():
    ids = np.array([f"c{i}" for i in range(6)])
    splits = [(0, 0, np.array([2, 3, 4, 5]), np.array([0, 1])), (0, 1, np.array([0, 1, 4, 5]), np.array([2, 3])),
              (0, 2, np.array([0, 1, 2, 3]), np.array([4, 5]))]
    table = fold_assignment(ids, ids, splits)
    back, missing = splits_from_assignment(table, ids[::-1])      # other rows, other order: the same cases held out
    assert missing == []
    assert [sorted(ids[::-1][te]) for _, _, _, te in back] == [["c0", "c1"], ["c2", "c3"], ["c4", "c5"]]
    assert [sorted(ids[::-1][tr]) for _, _, tr, _ in back] == [["c2", "c3", "c4", "c5"], ["c0", "c1", "c4", "c5"], ["c0", "c1", "c2", "c3"]]

    class Stage:
        name, span = "v", None

    from radlang.backends.executor import RunError

    with pytest.raises(RunError) as e:
        shared_splits(Stage, "cvs", table, list(ids) + ["c9"], "train")
    assert [d.code for d in e.value.diagnostics] == ["E693"] and "c9" in e.value.diagnostics[0].message


def errors(src):
    return [c for c in codes(src) if c.startswith("E")]


def test_comparison_design_errors():
    base = """
cohort a = dataset("breast_cancer") { stop: 200 }
cohort b = dataset("breast_cancer") { start: 200 }
features fa = tabular(a)
features fb = tabular(b)
model ma = logistic(fa, target: a.outcome)
model mb = logistic(fb, target: b.outcome)
split sa = folds(a)
split sb = folds(b)
"""
    assert errors(base + "validate va = evaluate(ma, split: sa)\nvalidate vb = evaluate(mb, split: sb)\nvalidate c = compare(va, vb)") \
        == ["E266", "E268"]
    assert errors(base + "validate va = evaluate(ma, split: sb)") == ["E242"]
    assert errors(base + "validate va = evaluate(ma, split: sa) { cv: kfold(3) }") == ["E319"]
    assert errors(base + "validate va = evaluate(ma, groups: a.id, split: sa)") == ["E319"]
    assert errors(base + "validate vx = evaluate(ma) { cv: kfold(3) }\nvalidate va = evaluate(ma, split: sa) like vx") == ["E319"]
    assert errors(base + "validate va = evaluate(ma, split: sa)\nvalidate c = compare(va, va)") == []
