"""Paired model comparison run end to end: models on a shared split hold out the same cases, are compared on the
cross-validation and on a shared external cohort, binary (AUC, DeLong) and survival (C-index); the design errors of
a split that cannot be drawn."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from _validation_util import codes, predictions, run_error_codes, run_spec, write_table

from radlang.ops.compare import delong_test


def test_survival_models_compare_by_the_c_index_on_shared_folds(tmp_path):
    pytest.importorskip("sksurv")
    src = """
study "surv" { seed: 1 }
cohort g = dataset("gbsg2") { stop: 90 }
features all = tabular(g)
features two = tabular(g) { columns: [age, tsize] }
model m1 = cox(all, target: g.outcome)
model m2 = cox(two, target: g.outcome)
split cvs = folds(g) { cv: kfold(3) }
validate v1 = evaluate(m1, split: cvs) { bootstrap: 0 }
validate v2 = evaluate(m2, split: cvs) { bootstrap: 0 }
validate cmp = compare(v1, v2) { bootstrap: 50 }
"""
    out = tmp_path / "out"
    run_spec(src, tmp_path / "s.rad", out)
    from sksurv.metrics import concordance_index_censored

    m = json.loads((out / "metrics" / "cmp.json").read_text())["cross_validation"]
    assert m["metric"] == "c_index" and "delong" not in m["pairs"][0]
    est = {}
    for v in ("v1", "v2"):
        p = predictions(out, v)
        per = [concordance_index_censored(f["event"].astype(bool), f["time"], f["risk"])[0] for _, f in p.groupby("fold")]
        est[v] = float(np.mean(per))
        assert m["models"][v]["estimate"] == pytest.approx(est[v], abs=1e-12)
    pair = m["pairs"][0]
    assert pair["difference"] == pytest.approx(est["v1"] - est["v2"], abs=1e-12)
    assert pair["ci_low"] <= pair["difference"] <= pair["ci_high"]


SPEC = """
study "cmp" {{ seed: 3 }}
cohort c = table("t.csv") {{ id: case, patient: pid, outcome: y as binary }}
features all = tabular(c)
features few = tabular(c) {{ columns: [f0000, f0001] }}
select sig = lasso(all, target: c.outcome) {{ cv: 3, max_features: 4 }}
model m1 = logistic(few, target: c.outcome)
model m2 = logistic(sig, target: c.outcome)
{split}
validate v1 = evaluate(m1{arg}) {{ metrics: [auc], bootstrap: 0 }}
validate v2 = evaluate(m2{arg}) {{ metrics: [auc], bootstrap: 0 }}
{compare}
"""


def _cohort(tmp_path, n=48, per_patient=2):
    rng = np.random.default_rng(0)
    pid = np.repeat([f"p{i:02d}" for i in range(n // per_patient)], per_patient)
    yp = rng.integers(0, 2, n // per_patient)
    yp[:2] = [0, 1]
    y = np.repeat(yp, per_patient)
    X = rng.normal(0, 1, (n, 12)) + 0.8 * y[:, None] * (np.arange(12) < 3)
    write_table(tmp_path / "t.csv", X, y, patients=pid)


def test_models_on_a_shared_split_hold_out_the_same_cases_and_compare(tmp_path):
    _cohort(tmp_path)
    src = SPEC.format(split="split cvs = folds(c) { cv: stratified_kfold(4, repeats: 2) }", arg=", split: cvs",
                      compare="validate cmp = compare(v1, v2) { bootstrap: 200 }")
    out = tmp_path / "out"
    run_spec(src, tmp_path / "s.rad", out)
    p1, p2 = predictions(out, "v1"), predictions(out, "v2")
    k1 = p1.set_index(["repeat", "case_id"])["fold"].sort_index()
    k2 = p2.set_index(["repeat", "case_id"])["fold"].sort_index()
    assert len(k1) == 96 and k1.equals(k2)
    split = pd.read_csv(out / "splits" / "cvs.csv", dtype={"case_id": str, "patient_id": str})
    assert split.set_index(["repeat", "case_id"])["fold"].sort_index().equals(k1)
    assert (split.groupby(["repeat", "patient_id"])["fold"].nunique() == 1).all()     # a patient's cases held out together
    m = json.loads((out / "metrics" / "cmp.json").read_text())
    cv = m["cross_validation"]
    for v in ("v1", "v2"):      # each model's AUC is its evaluation's
        assert cv["models"][v]["estimate"] == pytest.approx(json.loads((out / "metrics" / f"{v}.json").read_text())
                                                             ["cross_validation"]["auc"]["estimate"], abs=1e-12)
    pair = cv["pairs"][0]
    assert (pair["a"], pair["b"]) == ("v1", "v2") and cv["n_patients"] == 24
    mean = pd.merge(p1, p2, on=["repeat", "case_id"]).groupby("case_id")[["outcome_x", "probability_x", "probability_y"]].mean()
    ref = delong_test(mean["outcome_x"].astype(int), mean["probability_x"], mean["probability_y"])
    assert pair["delong"]["p"] == pytest.approx(ref["p"], rel=1e-9)
    rows = (out / "metrics" / "cmp.csv").read_text().splitlines()
    assert rows[0].startswith("set,metric,row,model_a,model_b,estimate") and len(rows) == 4
    assert (out / "plots" / "cmp" / "comparison.png").read_bytes()[:4] == b"\x89PNG"


def test_without_the_shared_split_the_folds_differ_and_compare_refuses(tmp_path):
    """What the shared split prevents: two evaluations that draw their own folds (each from its own seed) hold out
    different cases, and `compare` refuses them."""
    from radlang.compiler import compile_source
    from radlang.ops.fold_engine import make_splits

    _cohort(tmp_path)
    data = pd.read_csv(tmp_path / "t.csv")
    study = compile_source(SPEC.format(split="", arg="", compare=""), str(tmp_path / "s.rad")).study
    by = study.by_name()
    held = []
    for v in ("v1", "v2"):
        splits = make_splits(by[v].params["cv"], data["y"].to_numpy(), data["pid"].astype(str).to_numpy(), None, by[v].seed)
        held.append([sorted(te.tolist()) for _, _, _, te in splits])
    assert held[0] != held[1]
    assert codes(SPEC.format(split="", arg="", compare="validate cmp = compare(v1, v2)")) == ["E268"]


def test_a_split_that_cannot_be_drawn_is_a_diagnostic(tmp_path):
    _cohort(tmp_path, n=8, per_patient=2)
    src = SPEC.format(split="split cvs = folds(c) { cv: kfold(5) }", arg=", split: cvs", compare="")
    diags = run_error_codes(src, tmp_path / "s.rad", tmp_path / "out")
    assert [d.code for d in diags] == ["E692"] and "4 patients" in diags[0].message


def test_an_external_cohort_shared_by_the_evaluations_is_compared_too(tmp_path):
    src = """
study "ext" { seed: 2 }
cohort dev = dataset("breast_cancer") { stop: 120 }
cohort ext = dataset("breast_cancer") { start: 480 }
features a = tabular(dev) { columns: [mean_radius, mean_texture] }
features b = tabular(dev) { columns: [worst_area, worst_concavity, mean_smoothness] }
model ma = logistic(a, target: dev.outcome)
model mb = logistic(b, target: dev.outcome)
split cvs = folds(dev) { cv: stratified_kfold(3) }
validate va = evaluate(ma, split: cvs) { external: ext, metrics: [auc], bootstrap: 0 }
validate vb = evaluate(mb, split: cvs) { external: ext, metrics: [auc], bootstrap: 0 }
validate cmp = compare(va, vb) { bootstrap: 100 }
"""
    out = tmp_path / "out"
    run_spec(src, tmp_path / "s.rad", out)
    m = json.loads((out / "metrics" / "cmp.json").read_text())
    ext = m["external"]
    assert ext["cohort"] == "ext" and ext["n_cases"] == 89
    pa, pb = (predictions(out, v) for v in ("va", "vb"))
    pa, pb = pa[pa["set"] == "external"], pb[pb["set"] == "external"]
    ref = delong_test(pa["outcome"], pa["probability"], pb["probability"].to_numpy())
    assert ext["pairs"][0]["delong"]["p"] == pytest.approx(ref["p"], rel=1e-9)
    assert ext["pairs"][0]["difference"] == pytest.approx(ref["auc_a"] - ref["auc_b"], abs=1e-12)
    rows = (out / "metrics" / "cmp.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["cross_validation"] * 3 + ["external"] * 3
