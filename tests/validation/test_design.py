"""Group-aware splits, determinism (two runs, reordered statements, serial vs parallel folds), static type
checks of evaluate / select / model, and the run-time study-design checks."""

from __future__ import annotations

import numpy as np
import pytest
from _validation_util import codes, metrics, predictions, run_error_codes, run_spec, write_table

import radlang.ops.evaluation_run as evaluate_mode
from radlang.ops.validate import make_splits


def test_make_splits_never_split_a_patient():
    rng = np.random.default_rng(0)
    groups = np.repeat([f"p{i}" for i in range(40)], 2)
    y = rng.integers(0, 2, 80)
    splits = make_splits({"kind": "stratified_kfold", "k": 5, "repeats": 3}, y, groups, None, 7)
    assert len(splits) == 15
    for r in range(3):
        tests = np.concatenate([te for rr, _, _, te in splits if rr == r])
        assert sorted(tests) == list(range(80))       # each case held out exactly once per repeat
    for _, _, tr, te in splits:
        assert not set(groups[tr]) & set(groups[te])


GROUPED = """
study "two cases per patient" { seed: 5 }
cohort c = table("paired.csv") { id: case, patient: pid, outcome: y as binary }
features f = tabular(c)
model m = logistic(f, target: c.outcome)
validate v = evaluate(m) { cv: stratified_kfold(4, repeats: 2), metrics: [auc], bootstrap: 100 }
"""


def test_group_aware_cv_through_radlang(tmp_path):
    rng = np.random.default_rng(1)
    n_pat = 30
    pid = np.repeat([f"p{i:02d}" for i in range(n_pat)], 2)
    y = np.repeat(rng.integers(0, 2, n_pat), 2)
    X = rng.normal(size=(2 * n_pat, 4)) + y[:, None] * 0.8
    write_table(tmp_path / "paired.csv", X, y, patients=pid)
    run_spec(GROUPED, tmp_path / "g.rad", tmp_path / "out")
    pred = predictions(tmp_path / "out")
    for _, rep in pred.groupby("repeat"):
        folds_per_patient = rep.groupby("patient_id")["fold"].nunique()
        assert (folds_per_patient == 1).all(), "a patient's cases straddle a split"
        assert len(rep) == 2 * n_pat
    m = metrics(tmp_path / "out")
    assert m["cv"]["grouped"] is True and m["n_patients"] == n_pat


DET = """
study "determinism" { seed: 9 }
cohort dev = dataset("breast_cancer") { stop: 300 }
cohort ext = dataset("breast_cancer") { start: 300 }
features f = tabular(dev)
select nored = correlation(f) { max: 0.9 }
select k = univariate(nored, target: dev.outcome) { fdr: 0.01 }
model m = random_forest(k, target: dev.outcome) { n_estimators: 40 }
validate v = evaluate(m) {
  cv: stratified_kfold(3, repeats: 2)
  external: ext
  threshold: specificity >= 0.95
  bootstrap: 200
}
"""


def _reordered(src: str) -> str:
    lines = [ln for ln in src.strip().splitlines()]
    head, body = lines[:1], lines[1:]
    # statements in another order: validate block first, then the rest reversed
    vstart = next(i for i, ln in enumerate(body) if ln.startswith("validate"))
    stmts = body[:vstart][::-1]
    return "\n".join(head + body[vstart:] + stmts) + "\n"


def test_determinism_two_runs_reordering_and_parallel_folds(tmp_path, monkeypatch):
    run_spec(DET, tmp_path / "a.rad", tmp_path / "a")
    a = (tmp_path / "a" / "metrics" / "v.json").read_bytes()
    src2 = _reordered(DET)
    assert src2.splitlines()[1].startswith("validate")
    run_spec(src2, tmp_path / "c.rad", tmp_path / "c")
    assert a == (tmp_path / "c" / "metrics" / "v.json").read_bytes()
    monkeypatch.setattr(evaluate_mode, "POOL_START_S", -1.0)         # these folds are quick: make the pool worth it
    monkeypatch.setattr(evaluate_mode, "POOL_STARTED_S", -1.0)
    run_spec(DET, tmp_path / "d.rad", tmp_path / "d", workers=2)     # a second run, folds in parallel processes
    assert a == (tmp_path / "d" / "metrics" / "v.json").read_bytes()
    assert (tmp_path / "a" / "predictions" / "v.csv").read_bytes() == (tmp_path / "d" / "predictions" / "v.csv").read_bytes()
    m = metrics(tmp_path / "a")
    assert m["external"]["n_predictions"] == 269 and m["cross_validation"]["n_predictions"] == 600
    assert all(f["train_specificity"] >= 0.95 for f in m["threshold"]["folds"])
    assert len(m["selection"]["k"]["per_fold_count"]) == 6 and min(m["selection"]["k"]["per_fold_count"]) >= 1


def _cohorts(extra=""):
    return f"""
cohort tr = dataset("breast_cancer") {{ stop: 300 }}
cohort ext = dataset("breast_cancer") {{ start: 300 }}
cohort surv = dataset("gbsg2")
features f = tabular(tr)
features fs = tabular(surv)
{extra}
"""


@pytest.mark.parametrize("extra, code", [
    ("model m = logistic(f, target: tr.outcome)\nvalidate v = evaluate(m) { metrics: [auc, c_index] }", "E245"),
    ("model m = cox(fs, target: surv.outcome)\nvalidate v = evaluate(m) { metrics: [auc] }", "E245"),
    ("model m = cox(fs, target: surv.outcome)\nvalidate v = evaluate(m) { threshold: sensitivity >= 0.9 }", "E246"),
    ("model m = logistic(f, target: tr.outcome)\nvalidate v = evaluate(m) { cv: leave_one_site_out }", "E247"),
    ("model m = logistic(f, target: tr.outcome)\nvalidate v = evaluate(m) { external: surv }", "E248"),
    ("model m = logistic(fs, target: surv.outcome)\nvalidate v = evaluate(m)", "E244"),
    ("select s = lasso(fs, target: surv.outcome)\nmodel m = cox(s, target: surv.outcome)\nvalidate v = evaluate(m)", "E241"),
    ("model m = logistic(f, target: ext.outcome)\nvalidate v = evaluate(m)", "E242"),
    ("model m = logistic(f, target: tr.outcome)\nvalidate v = evaluate(m) { threshold: accuracy >= 0.9 }", "E304"),
    ("model m = logistic(f, target: tr.outcome) { search: grid(gamma: [1, 2]) }\nvalidate v = evaluate(m)", "E301"),
    ("select r = icc(f) { perturb: [erode(1)] }\nmodel m = logistic(r, target: tr.outcome)\nvalidate v = evaluate(m)", "E243"),
    ("model m = logistic(f, target: tr.outcome)\nvalidate v = evaluate(m) { external: tr }", "E502"),
])
def test_static_checks(extra, code):
    got = codes(_cohorts(extra))
    assert code in got, got


def test_valid_specs_compile_clean():
    ok = _cohorts("model m = cox(fs, target: surv.outcome)\nvalidate v = evaluate(m) { metrics: [c_index] }")
    assert [c for c in codes(ok) if c.startswith("E")] == []
    ok = _cohorts("select s = univariate(f, target: tr.outcome)\nmodel m = svm(s, target: tr.outcome) { search: grid(C: [0.1, 1]) }\n"
                  "validate v = evaluate(m) { external: ext, threshold: youden }")
    assert [c for c in codes(ok) if c.startswith("E")] == []


def test_external_overlap_names_both_cohorts_and_cases(tmp_path):
    src = """
cohort tr = dataset("breast_cancer") { stop: 300 }
cohort ext = dataset("breast_cancer") { start: 290, stop: 400 }
features f = tabular(tr)
model m = logistic(f, target: tr.outcome)
validate v = evaluate(m) { external: ext, bootstrap: 0 }
"""
    diags = run_error_codes(src, tmp_path / "x.rad", tmp_path / "out")
    by = {d.code: d.message for d in diags}
    assert "E644" in by and "E645" in by
    for c in ("E644", "E645"):
        assert "`tr`" in by[c] and "`ext`" in by[c] and "bc291" in by[c]
    assert "10 case(s)" in by["E645"]
    assert not (tmp_path / "out" / "metrics" / "v.json").exists()


def test_single_class_and_too_few_cases(tmp_path):
    rng = np.random.default_rng(0)
    write_table(tmp_path / "one.csv", rng.normal(size=(12, 3)), np.zeros(12))
    src = """
cohort c = table("one.csv") { id: case, outcome: y as binary }
features f = tabular(c)
model m = logistic(f, target: c.outcome)
validate v = evaluate(m) { cv: stratified_kfold(5) }
"""
    diags = run_error_codes(src, tmp_path / "one.rad", tmp_path / "o1")
    assert [d.code for d in diags] == ["E642"] and "`c`" in diags[0].message and "c000" in diags[0].message
    y = np.array([0] * 9 + [1] * 3)
    write_table(tmp_path / "few.csv", rng.normal(size=(12, 3)), y)
    diags = run_error_codes(src.replace("one.csv", "few.csv"), tmp_path / "few.rad", tmp_path / "o2")
    assert [d.code for d in diags] == ["E643"] and "3 case(s)" in diags[0].message and "c011" in diags[0].message


def test_low_events_per_variable_is_a_warning(tmp_path):
    rng = np.random.default_rng(3)
    y = np.array([0] * 30 + [1] * 10)
    write_table(tmp_path / "epv.csv", rng.normal(size=(40, 5)) + y[:, None], y)
    src = """
cohort c = table("epv.csv") { id: case, outcome: y as binary }
features f = tabular(c)
model m = logistic(f, target: c.outcome)
validate v = evaluate(m) { cv: stratified_kfold(5), bootstrap: 50 }
"""
    ctx = run_spec(src, tmp_path / "epv.rad", tmp_path / "out")
    m = metrics(tmp_path / "out")
    assert any("events per variable" in w and "2.00" in w for w in m["warnings"])
    assert any("events per variable" in w for w in ctx.warnings)


def test_survival_c_index_gbsg2(tmp_path):
    src = """
study "gbsg2" { seed: 1 }
cohort g = dataset("gbsg2")
features f = tabular(g)
model m = cox(f, target: g.outcome) { alpha: 0.1 }
validate v = evaluate(m) { cv: stratified_kfold(3), metrics: [c_index] }
"""
    run_spec(src, tmp_path / "g.rad", tmp_path / "out")
    c = metrics(tmp_path / "out")["cross_validation"]["c_index"]
    print("GBSG2 Cox C-index per fold:", c["per_fold"])
    # GBSG2 with all covariates: published Harrell's C for a Cox model is about 0.68 (lifelines/sksurv examples)
    assert 0.62 < c["estimate"] < 0.74 and len(c["per_fold"]) == 3


def test_leave_one_site_out(tmp_path):
    rng = np.random.default_rng(4)
    n = 60
    y = rng.permutation(np.repeat([0, 1], n // 2))
    sites = np.array(["A", "B", "C"])[np.arange(n) % 3]
    X = rng.normal(size=(n, 3)) + y[:, None]
    write_table(tmp_path / "s.csv", X, y, sites=sites)
    src = """
cohort c = table("s.csv") { id: case, outcome: y as binary, site: hospital }
features f = tabular(c)
model m = logistic(f, target: c.outcome)
validate v = evaluate(m) { cv: leave_one_site_out, bootstrap: 0 }
"""
    run_spec(src, tmp_path / "s.rad", tmp_path / "out")
    pred = predictions(tmp_path / "out")
    assert metrics(tmp_path / "out")["cv"]["splits"] == 3
    site_of = dict(zip([f"c{i:03d}" for i in range(n)], sites))
    # each held-out fold is exactly one site
    assert all(len({site_of[c] for c in g["case_id"]}) == 1 for _, g in pred.groupby("fold"))
    assert len(pred) == n


def test_cv_groups_setting_and_bad_table_values(tmp_path):
    rng = np.random.default_rng(6)
    pid = np.repeat([f"p{i:02d}" for i in range(20)], 2)
    y = np.repeat(rng.integers(0, 2, 20), 2)
    write_table(tmp_path / "g.csv", rng.normal(size=(40, 3)) + y[:, None], y, patients=pid)
    src = """
cohort c = table("g.csv") { id: case, patient: pid, outcome: y as binary }
features f = tabular(c)
model m = logistic(f, target: c.outcome)
validate v = evaluate(m) { cv: stratified_kfold(4, groups: c.id), bootstrap: 0 }
"""
    # grouping by case id would put the two cases of each patient on both sides of a split: refused, naming patients
    diags = run_error_codes(src, tmp_path / "g0.rad", tmp_path / "out0")
    assert [d.code for d in diags] == ["E649"] and "p00" in diags[0].message
    src = src.replace("groups: c.id", "groups: c.patient")
    run_spec(src, tmp_path / "g.rad", tmp_path / "out")
    m = metrics(tmp_path / "out")
    assert m["cv"]["groups"] == "c.patient" and m["cv"]["grouped"] is True
    pred = predictions(tmp_path / "out")
    patient_of = dict(zip([f"c{i:03d}" for i in range(40)], pid))
    for _, g in pred.groupby(["repeat", "fold"]):
        assert len(g) == 2 * len({patient_of[c] for c in g["case_id"]})   # both cases of every held-out patient
    # a non-numeric feature value: an error naming the case, the column and the file
    text = (tmp_path / "g.csv").read_text().splitlines()
    cells = text[3].split(",")
    cells[-1] = "n/a?"
    text[3] = ",".join(cells)
    (tmp_path / "g.csv").write_text("\n".join(text) + "\n")
    diags = run_error_codes(src, tmp_path / "g2.rad", tmp_path / "out2")
    assert [d.code for d in diags] == ["E640"]
    assert "c002" in diags[0].message and "f0002" in diags[0].message and "g.csv" in diags[0].message


def test_icc_with_a_retest_cohort_end_to_end(tmp_path):
    rng = np.random.default_rng(9)
    n = 60
    y = rng.permutation(np.repeat([0, 1], n // 2))
    X = rng.normal(size=(n, 8))
    X[:, :2] += y[:, None]
    retest = X.copy()
    retest[:, :4] += rng.normal(scale=0.1, size=(n, 4))   # f0000..f0003 reproducible
    retest[:, 4:] = rng.normal(size=(n, 4))               # f0004..f0007 not
    write_table(tmp_path / "t.csv", X, y)
    write_table(tmp_path / "rt.csv", retest, y)
    src = """
cohort c = table("t.csv") { id: case, outcome: y as binary }
cohort rt = table("rt.csv") { id: case, outcome: y as binary }
features f = tabular(c)
select r = icc(f, retest: rt) { min: 0.8, form: "ICC(A,1)" }
model m = logistic(r, target: c.outcome)
validate v = evaluate(m) { cv: stratified_kfold(3), bootstrap: 0 }
"""
    run_spec(src, tmp_path / "i.rad", tmp_path / "out")
    freq = metrics(tmp_path / "out")["selection"]["r"]["frequency"]
    assert freq == {"f0000": 1.0, "f0001": 1.0, "f0002": 1.0, "f0003": 1.0}


class _Pool:
    """A stand-in for the worker pool that records what it was given."""

    def __init__(self, started=False):
        self.items, self.started = None, started

    def map(self, fn, items, weights=None):
        self.items = list(items)
        for i, item in enumerate(self.items):
            yield i, fn(item)


class _Ctx:
    def __init__(self, workers, started=False):
        self.workers, self.executor = workers, _Pool(started)


@pytest.mark.parametrize("workers, started, start, pooled", [(2, False, 2.0, False), (2, False, -1.0, True), (1, False, -1.0, False),
                                                             (2, True, 2.0, True), (2, True, -1.0, True)])
def test_folds_go_to_the_pool_only_when_it_saves_time(monkeypatch, workers, started, start, pooled):
    """The first fold runs in this process; the rest go to the pool when, at that pace, parallel work saves more
    than starting workers costs (quick folds never start a pool), or than the round trips cost when the run started
    the workers ahead. Every result lands in its own slot."""
    monkeypatch.setattr(evaluate_mode, "POOL_START_S", start)
    monkeypatch.setattr(evaluate_mode, "POOL_STARTED_S", start - 2.0)
    ctx = _Ctx(workers, started)
    tasks = [{"k": k, "train": list(range(k))} for k in range(5)]
    results = [None] * len(tasks)
    evaluate_mode._run_folds(ctx, lambda t: t["k"] * 10, tasks, results)
    assert results == [0, 10, 20, 30, 40]
    assert ctx.executor.items == (tasks[1:] if pooled else None)


def test_a_failing_fold_leaves_the_later_slots_empty():
    """run_evaluate names the first fold without a result when fitting fails."""
    def fit(t):
        if t == 2:
            raise ValueError("cannot fit")
        return t

    results = [None] * 4
    with pytest.raises(ValueError):
        evaluate_mode._run_folds(_Ctx(2), fit, list(range(4)), results)
    assert results == [0, 1, None, None]


def _diags(src):
    from radlang.compiler import compile_source

    return [d for d in compile_source(src, "s.rad").diagnostics if d.is_error]


def test_a_selector_fit_on_the_external_cohort_gets_an_honest_hint():
    """The hint of a cohort mismatch next to an external cohort leads to fitting on the training cohort, never
    to taking the external cohort's outcome (issue 15.8)."""
    ds = _diags(_cohorts("features fe = tabular(ext)\nselect s = lasso(fe, target: ext.outcome)\n"
                         "model m = logistic(s, target: tr.outcome)\nvalidate v = evaluate(m) { external: ext }"))
    assert [d.code for d in ds] == ["E242"]
    assert "fit on the training cohort `tr`" in ds[0].hint and "ext.outcome" not in ds[0].hint
    ds = _diags(_cohorts("model m = logistic(f, target: ext.outcome)\nvalidate v = evaluate(m) { external: ext }"))
    assert [d.code for d in ds] == ["E242"] and ds[0].hint.startswith("use `tr.outcome`")


def test_training_on_the_external_cohort_is_one_diagnostic():
    """Following the old hint (`ext.outcome` everywhere) gave two E501 and an E502 for one mistake: now one E502
    that lists the stages fit on the external cohort and names the training cohort."""
    ds = _diags("""
cohort tr = dataset("breast_cancer") { stop: 300 }
cohort ext = dataset("breast_cancer") { start: 300 }
features fe = tabular(ext)
select s = lasso(fe, target: ext.outcome)
model m = logistic(s, target: ext.outcome)
validate v = evaluate(m) { external: ext }
""")
    assert [d.code for d in ds] == ["E502"]
    assert "(`m`, `s`)" in ds[0].hint and "training cohort (`tr`)" in ds[0].hint
    assert sorted(r.message.split("`")[1] for r in ds[0].related) == ["m", "s"]
