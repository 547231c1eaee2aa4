"""Joins of feature tables: matching by case or patient, the diagnostics for tables that do not fit together, and
leakage: a join inside the refit graph is refit in every training fold, so planted noise stays at AUC 0.5, while
the same selection done by hand before cross-validation looks excellent."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _validation_util import codes, metrics, predictions, run_error_codes, run_spec
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def _tables(tmp_path, n=100, p=2000, q=5, seed=0, cases_per_patient=1):
    """A radiomics-like table (one row per case, `p` noise features), a clinical attribute table (one row per
    patient, `q` noise columns, no outcome) and random labels."""
    rng = np.random.default_rng(seed)
    pats = [f"p{i:03d}" for i in range(n // cases_per_patient)]
    pid = np.repeat(pats, cases_per_patient)[:n]
    y = rng.permutation(np.repeat([0, 1], n // 2))
    rad = pd.DataFrame(rng.normal(size=(n, p)), columns=[f"r{j:04d}" for j in range(p)])
    rad.insert(0, "case", [f"c{i:03d}" for i in range(n)])
    rad.insert(1, "pid", pid)
    rad.insert(2, "y", y)
    rad.to_csv(tmp_path / "rad.csv", index=False, float_format="%.17g")
    clin = pd.DataFrame(rng.normal(size=(len(pats), q)), columns=[f"k{j}" for j in range(q)])
    clin.insert(0, "pid", pats)
    clin.to_csv(tmp_path / "clin.csv", index=False, float_format="%.17g")
    return rad, clin, y


HEAD = """
study "join" { seed: 3 }
cohort train = table("rad.csv") { id: case, patient: pid, outcome: y as binary }
cohort records = table("clin.csv") { id: pid }
features rad = tabular(train)
features clin = tabular(records)
"""


def test_planted_noise_through_a_join_stays_at_chance_but_selection_before_cv_does_not(tmp_path):
    rad, clin, y = _tables(tmp_path)
    spec = HEAD + """
select sig = univariate(rad, target: train.outcome) { fdr: 0.05, min_features: 10 }
features both = join(sig, clin) { by: patient }
model clf = logistic(both, target: train.outcome)
validate v = evaluate(clf) { cv: stratified_kfold(5), bootstrap: 500 }
"""
    run_spec(spec, tmp_path / "s.rad", tmp_path / "out")
    m = metrics(tmp_path / "out")
    auc = m["cross_validation"]["auc"]
    assert auc["ci_low"] < 0.5 < auc["ci_high"], auc
    assert m["pipeline"] == ["impute", "sig", "both", "scale", "clf"]
    # every fold kept 10 radiomics columns and all 5 clinical ones reached the model
    assert m["selection"]["sig"]["per_fold_count"] == [10] * 5
    # the same selection written by hand before the cross-validation (the classic leak)
    from scipy.stats import mannwhitneyu

    X = rad.filter(like="r").to_numpy()
    pv = mannwhitneyu(X[y == 0], X[y == 1], axis=0).pvalue
    top = np.argsort(pv, kind="stable")[:10]
    Xl = np.hstack([X[:, top], clin.set_index("pid").loc[rad["pid"]].to_numpy()])
    p = cross_val_predict(make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)), Xl, y,
                          cv=StratifiedKFold(5, shuffle=True, random_state=3), method="predict_proba")[:, 1]
    assert roc_auc_score(y, p) > 0.8


def test_a_join_by_patient_gives_each_case_its_patients_row(tmp_path):
    """Two cases per patient, one clinical row per patient: the fold input equals the hand-made join."""
    _tables(tmp_path, n=40, p=3, q=2, cases_per_patient=2)
    spec = HEAD + """
features both = join(rad, clin) { by: patient }
model clf = logistic(both, target: train.outcome)
validate v = evaluate(clf) { cv: stratified_kfold(4), bootstrap: 0 }
"""
    ctx = run_spec(spec, tmp_path / "s.rad", tmp_path / "out")
    joined = ctx.results["both"]
    rad, clin = pd.read_csv(tmp_path / "rad.csv"), pd.read_csv(tmp_path / "clin.csv")   # as the cohorts read them
    want = rad.set_index("case")[["r0000", "r0001", "r0002"]].join(rad.set_index("case")["pid"]).join(clin.set_index("pid"), on="pid")
    want = want.drop(columns="pid")
    np.testing.assert_array_equal(joined.to_numpy(), want.to_numpy())
    assert list(joined.columns) == ["r0000", "r0001", "r0002", "k0", "k1"] and list(joined.index) == list(rad["case"])
    pr = predictions(tmp_path / "out")
    assert set(pr["case_id"]) == set(rad["case"])


def test_join_problems_name_the_table_and_the_ids(tmp_path):
    _, clin, _ = _tables(tmp_path, n=20, p=3, q=2)
    clin.iloc[:3].to_csv(tmp_path / "few.csv", index=False)                 # patients missing
    dup = pd.concat([clin, clin.iloc[:2]])                                  # two rows for two patients
    dup.insert(0, "row", [f"x{i}" for i in range(len(dup))])
    dup.to_csv(tmp_path / "dup.csv", index=False)
    clin.rename(columns={"k0": "r0000"}).to_csv(tmp_path / "clash.csv", index=False)
    for file, code, needle in (("few.csv", "E660", "17 case(s) of `rad` have no row in `clin`"),
                               ("dup.csv", "E661", "duplicate patient ids in `clin`: `p000`, `p001`"),
                               ("clash.csv", "E662", "`r0000`")):
        head = HEAD.replace('table("clin.csv") { id: pid }', 'table("dup.csv") { id: row, patient: pid }') if file == "dup.csv" else HEAD
        spec = head.replace("clin.csv", file) + """
features both = join(rad, clin) { by: patient }
model clf = logistic(both, target: train.outcome)
validate v = evaluate(clf) { cv: stratified_kfold(2), bootstrap: 0 }
"""
        diags = run_error_codes(spec, tmp_path / "s.rad", tmp_path / f"out_{code}")
        assert [d.code for d in diags] == [code], [d.message for d in diags]
        assert needle in diags[0].message, diags[0].message
        assert not (tmp_path / f"out_{code}" / "metrics").exists()


def _errors(src):
    return [c for c in codes(src) if c.startswith("E")]


def test_join_design_errors_at_compile_time():
    base = """
study "j" { seed: 1 }
cohort dev = dataset("breast_cancer") { stop: 300 }
cohort other = dataset("breast_cancer") { start: 300 }
features a = tabular(dev) { columns: [mean_radius, mean_area] }
features b = tabular(other) { columns: [mean_texture] }
features c = tabular(dev) { columns: [mean_texture] }
"""
    assert _errors(base + "features ab = join(a, b)\nmodel m = logistic(ab, target: dev.outcome)\nvalidate v = evaluate(m)\n") == ["E250"]
    branches = base + """
select s1 = variance(a)
select s2 = lasso(a, target: dev.outcome)
features both = join(s1, s2)
model m = logistic(both, target: dev.outcome)
validate v = evaluate(m)
"""
    assert _errors(branches) == ["E505"]
    assert _errors(branches.replace("join(s1, s2)", "join(s1, s2) { prefix: true }")) == []
    mixed = base + """
select s1 = variance(a)
features one = join(s1, c)
features two = join(one, c) { by: patient, prefix: true }
model m = logistic(two, target: dev.outcome)
validate v = evaluate(m)
"""
    assert _errors(mixed) == ["E506"]


@pytest.mark.parametrize("prefix", [False, True])
def test_join_of_unfitted_tables_runs_before_the_folds_and_on_the_external_cohort(tmp_path, prefix):
    spec = f"""
study "j" {{ seed: 1 }}
cohort dev = dataset("breast_cancer") {{ stop: 400 }}
cohort ext = dataset("breast_cancer") {{ start: 400 }}
features shape = tabular(dev) {{ columns: [mean_radius, mean_area] }}
features texture = tabular(dev) {{ columns: [mean_texture] }}
features both = join(shape, texture) {{ prefix: {str(prefix).lower()} }}
model m = logistic(both, target: dev.outcome)
validate v = evaluate(m) {{ cv: stratified_kfold(3), external: ext, bootstrap: 0 }}
"""
    ctx = run_spec(spec, tmp_path / "s.rad", tmp_path / "out")
    cols = ["shape.mean_radius", "shape.mean_area", "texture.mean_texture"] if prefix else ["mean_radius", "mean_area", "mean_texture"]
    assert list(ctx.results["both"].columns) == cols
    m = metrics(tmp_path / "out")
    pr = predictions(tmp_path / "out")
    assert (pr["set"] == "external").sum() == 169
    assert m["external"]["auc"]["estimate"] > 0.9
