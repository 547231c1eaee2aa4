"""Survival outcomes, models and metrics: the metrics against scikit-survival's on the same predictions (1e-9; skipped
without it), the Breslow survival function against lifelines', lifelines' reference numbers on `load_rossi` through
`radlang run`, planted leakage with a survival outcome, and the bad-input diagnostics."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _validation_util import codes, metrics, predictions, run_error_codes, run_spec

from radlang.ops import survival_metrics as sm
from radlang.ops.survival_models import breslow, concordance, survival_estimator_class, survival_target

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cli_runner import run_cli

HAS_SKSURV = importlib.util.find_spec("sksurv") is not None
needs_sksurv = pytest.mark.skipif(not HAS_SKSURV, reason="scikit-survival (the optional GPL-3 `survival-gpl` extra) is not installed")


def _cohort(seed, n, censor=0.35, ties=True):
    """Times (rounded to give tied times when `ties`), events, a risk score with tied values, survival curves."""
    rng = np.random.default_rng(seed)
    risk = np.round(rng.normal(size=n), 1)             # tied risk scores
    t = rng.exponential(10 * np.exp(-0.7 * risk))
    t = np.round(t, 0) + 1 if ties else t + 0.01
    e = rng.random(n) > censor
    return t, e, risk


def _split(t, e, risk):
    """The first two thirds train the censoring distribution; scikit-survival needs the held-out times within the
    training follow-up, so the last training time is an event after every held-out time."""
    n = len(t)
    tr, te = np.arange(n) < 2 * n // 3, np.arange(n) >= 2 * n // 3
    t, e = t.copy(), e.copy()
    t[0], e[0] = t.max() + 1, True
    return (t[tr], e[tr]), (t[te], e[te], risk[te])


@needs_sksurv
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_equal_scikit_survival(seed):
    from sksurv.metrics import (
        brier_score,
        concordance_index_censored,
        concordance_index_ipcw,
        cumulative_dynamic_auc,
        integrated_brier_score,
    )
    from sksurv.nonparametric import kaplan_meier_estimator

    t, e, risk = _cohort(seed, 150)
    (tt, et), (vt, ve, vr) = _split(t, e, risk)
    ytr, yte = survival_target(tt, et), survival_target(vt, ve)
    assert abs(concordance(t, e, risk) - concordance_index_censored(e, t, risk)[0]) < 1e-9
    for rev in (False, True):
        u, s = sm.kaplan_meier(t, e, reverse=rev)
        u2, s2 = kaplan_meier_estimator(e, t, reverse=rev)
        np.testing.assert_allclose(u, u2, rtol=0, atol=1e-12)
        np.testing.assert_allclose(s, s2, rtol=0, atol=1e-12)
    horizons = [float(np.quantile(vt, q)) for q in (0.3, 0.5, 0.7)]
    tau = horizons[-1]
    assert abs(sm.uno_c(tt, et, vt, ve, vr, tau) - concordance_index_ipcw(ytr, yte, vr, tau=tau)[0]) < 1e-9
    aucs, mean = sm.cumulative_dynamic_auc(tt, et, vt, ve, vr, horizons)
    ref_aucs, ref_mean = cumulative_dynamic_auc(ytr, yte, vr, horizons)
    np.testing.assert_allclose(aucs, ref_aucs, rtol=0, atol=1e-9)
    assert abs(mean - ref_mean) < 1e-9
    grid = sm.evaluation_times(horizons, 20)
    surv = np.exp(-np.outer(np.exp(vr), np.asarray(grid) / 12.0))
    b = sm.brier_scores(tt, et, vt, ve, surv, grid)
    np.testing.assert_allclose(b, brier_score(ytr, yte, surv, grid)[1], rtol=0, atol=1e-9)
    assert abs(sm.integrated_brier(grid, b) - integrated_brier_score(ytr, yte, surv, grid)) < 1e-9


def test_breslow_survival_equals_lifelines():
    from lifelines import CoxPHFitter
    from lifelines.datasets import load_rossi

    d = load_rossi()
    cph = CoxPHFitter().fit(d, "week", "arrest")
    X = d.drop(columns=["week", "arrest"])
    lp = np.log(cph.predict_partial_hazard(X).to_numpy())
    times, h0 = breslow(d["week"], d["arrest"], lp)
    ref = cph.predict_survival_function(X.iloc[:5], times=[10, 20, 30, 52]).to_numpy().T
    ours = np.exp(-np.exp(lp[:5])[:, None] * sm.step_at(times, h0, [10, 20, 30, 52], 0.0)[None, :])
    np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-12)


ROSSI = """
study "rossi" { seed: 3 }
cohort r = table("rossi.csv") { id: case, outcome: survival(time: week, event: arrest) }
features f = tabular(r)
model m = cox(f, target: r.outcome) { alpha: 0, impute: none, scale: none }
validate v = evaluate(m) { cv: kfold(3), horizons: [13, 26, 39], bootstrap: 20 }
"""


def _rossi_csv(folder):
    from lifelines.datasets import load_rossi

    d = load_rossi()
    d.insert(0, "case", [f"r{i:03d}" for i in range(len(d))])
    d.to_csv(folder / "rossi.csv", index=False)
    return d


def test_rossi_reference_through_radlang(tmp_path):
    from lifelines import CoxPHFitter

    from radlang.predict import load_model

    d = _rossi_csv(tmp_path)
    cph = CoxPHFitter().fit(d.drop(columns=["case"]), "week", "arrest")
    assert round(cph.concordance_index_, 2) == 0.64
    assert round(cph.log_likelihood_, 2) == -658.75
    run_spec(ROSSI, tmp_path / "rossi.rad", tmp_path / "out")
    model = load_model((tmp_path / "out" / "models" / "v.model.json").read_bytes(), None)   # a Cox model: saved as JSON
    feats = [c for c in d.columns if c not in ("case", "week", "arrest")]
    np.testing.assert_allclose(model.coef, cph.params_.loc[feats].to_numpy(), rtol=0, atol=1e-6)
    risk = model.predict(d[feats].astype(float))
    assert concordance(d["week"], d["arrest"], risk) == cph.concordance_index_
    m = metrics(tmp_path / "out")["cross_validation"]
    assert len(m["c_index"]["per_fold"]) == 3 and len(m["brier"]["estimate"]) == 3
    assert [c["horizon"] for c in m["calibration"]] == [13, 26, 39] and m["km"]["logrank"]["p"] > 0
    p = predictions(tmp_path / "out")
    assert {"risk", "risk_group", "survival_at_13", "survival_at_39"} <= set(p.columns)
    assert ((p["survival_at_13"] >= p["survival_at_39"]) & (p["survival_at_39"] > 0)).all()
    assert (tmp_path / "out" / "plots" / "v" / "km.png").exists() and (tmp_path / "out" / "plots" / "v" / "calibration.png").exists()


def test_elastic_net_cox_equals_lifelines():
    from lifelines import CoxPHFitter
    from lifelines.datasets import load_rossi

    d = load_rossi()
    X = d.drop(columns=["week", "arrest"]).astype(float)
    est = survival_estimator_class()(kind="cox", alpha=0.1, l1_ratio=0.5).fit(X, survival_target(d["week"], d["arrest"]))
    ref = CoxPHFitter(penalizer=0.1, l1_ratio=0.5).fit(d, "week", "arrest")
    np.testing.assert_allclose(est.coef_, ref.params_.loc[X.columns].to_numpy(), rtol=0, atol=1e-9)


def test_survival_mlp_is_deterministic_and_learns():
    t, e, _ = _cohort(5, 120, ties=False)
    rng = np.random.default_rng(1)
    X = rng.normal(size=(120, 4))
    t = np.exp(-X[:, 0]) * t                      # the first feature shortens survival
    y = survival_target(t, e)
    make = survival_estimator_class()
    a = make(kind="survival_mlp", hidden=(8,), epochs=150, lr=0.01, seed=3).fit(X, y)
    b = make(kind="survival_mlp", hidden=(8,), epochs=150, lr=0.01, seed=3).fit(X, y)
    assert all(np.array_equal(u, v) for u, v in zip(a.weights_, b.weights_))
    assert concordance(t, e, a.predict(X)) > 0.7
    s = a.survival_at(X[:3], [0.5, 1.0, 2.0])
    assert s.shape == (3, 3) and (np.diff(s, axis=1) <= 0).all()


@needs_sksurv
@pytest.mark.parametrize("kind", ["random_survival_forest", "gradient_boosted_survival"])
def test_scikit_survival_models(kind):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(80, 3))
    t = rng.exponential(np.exp(-X[:, 0])) + 0.01
    e = rng.random(80) > 0.3
    est = survival_estimator_class()(kind=kind, n_estimators=20, seed=0).fit(X, survival_target(t, e))
    s = est.survival_at(X[:4], [0.1, 0.5])
    assert s.shape == (4, 2) and (s >= 0).all() and (s <= 1).all()
    assert concordance(t, e, est.predict(X)) > 0.6


LEAK = """
study "survival noise" { seed: 11 }
cohort c = table("noise.csv") { id: case, outcome: survival(time: t, event: e) }
features f = tabular(c)
model m = survival_mlp(f, target: c.outcome) { hidden: [8], epochs: 60, lr: 0.01 }
validate v = evaluate(m) { cv: kfold(5), metrics: [c_index], bootstrap: 200 }
"""


def test_planted_leakage_survival_noise(tmp_path):
    """Random times against 2,000 noise features: a model refit inside the folds finds nothing (its CI holds 0.5)."""
    rng = np.random.default_rng(0)
    n, p = 100, 2000
    df = pd.DataFrame(rng.normal(size=(n, p)), columns=[f"g{j}" for j in range(p)])
    df.insert(0, "case", [f"c{i:03d}" for i in range(n)])
    df.insert(1, "t", np.round(rng.exponential(20, n), 3) + 0.1)
    df.insert(2, "e", (rng.random(n) < 0.7).astype(int))
    df.to_csv(tmp_path / "noise.csv", index=False)
    run_spec(LEAK, tmp_path / "noise.rad", tmp_path / "out")
    c = metrics(tmp_path / "out")["cross_validation"]["c_index"]
    assert c["ci_low"] < 0.5 < c["ci_high"], c


BAD = """
study "bad" { seed: 1 }
cohort c = table("bad.csv") { id: case, outcome: survival(time: os, event: dead) }
features f = tabular(c)
model m = cox(f, target: c.outcome)
validate v = evaluate(m) { cv: kfold(3) }
"""


def _bad_table(tmp_path, os_=None, dead=None):
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"case": [f"k{i}" for i in range(30)], "os": np.round(rng.exponential(10, 30), 2) + 1,
                       "dead": rng.integers(0, 2, 30), "x": rng.normal(size=30)})
    for i, v in (os_ or {}).items():
        df["os"] = df["os"].astype(object)
        df.loc[i, "os"] = v
    for i, v in (dead or {}).items():
        df["dead"] = df["dead"].astype(object)
        df.loc[i, "dead"] = v
    df.to_csv(tmp_path / "bad.csv", index=False)
    return df


def test_bad_survival_table(tmp_path):
    _bad_table(tmp_path, os_={2: -3.0, 5: None}, dead={7: 2, 9: None})
    diags = run_error_codes(BAD, tmp_path / "bad.rad", tmp_path / "out")
    text = "\n".join(f"{d.code} {d.message}" for d in diags)
    assert {d.code for d in diags} == {"E640"}
    for case, col, what in (("k2", "os", "negative"), ("k5", "os", "missing"), ("k7", "dead", "not 0/1"), ("k9", "dead", "missing event")):
        assert any(case in d.message and f"`{col}`" in d.message and what in d.message for d in diags), (case, text)


def test_all_censored(tmp_path):
    _bad_table(tmp_path, dead={i: 0 for i in range(30)})
    diags = run_error_codes(BAD, tmp_path / "bad.rad", tmp_path / "out")
    assert [d.code for d in diags] == ["E642"]
    assert "censored" in diags[0].message and "`dead`" in diags[0].message and "`k0`" in diags[0].message


def test_horizon_beyond_follow_up(tmp_path):
    df = _bad_table(tmp_path)
    last = df.loc[df["os"].astype(float).idxmax()]
    src = BAD.replace("cv: kfold(3)", f"cv: kfold(3), horizons: [5, {float(last['os']) + 1:g}]")
    diags = run_error_codes(src, tmp_path / "bad.rad", tmp_path / "out")
    assert diags and {d.code for d in diags} == {"E680"}
    assert "last follow-up of cohort `c`" in diags[0].message and "`os`" in diags[0].message and f"`{last['case']}`" in diags[0].message


CHECK = """
study "s" { seed: 1 }
cohort c = table("x.csv") { id: case, outcome: survival(time: os, event: dead) }
cohort b = table("y.csv") { id: case, outcome: y as binary }
features f = tabular(c)
features g = tabular(b)
"""


def test_check_diagnostics(monkeypatch):
    def errors(src):
        return [c for c in codes(src) if c.startswith("E")]

    assert errors(CHECK + "model m = cox(f, target: c.outcome)\nvalidate v = evaluate(m) { metrics: [c_index, brier] }") == ["E315"]
    assert errors(CHECK + "model m = cox(f, target: c.outcome)\nvalidate v = evaluate(m) { horizons: [12, 24] }") == []
    assert errors(CHECK + "model m = logistic(g, target: b.outcome)\nvalidate v = evaluate(m) { horizons: [12] }") == ["E316"]
    assert errors(CHECK + "model m = cox(f, target: c.outcome)\nvalidate v = evaluate(m) { horizons: [12], metrics: [ibs] }") == ["E317"]
    assert "E302" in errors(CHECK + "model m = cox(f, target: c.outcome)\nvalidate v = evaluate(m) { horizons: [24, 12] }")
    assert errors(CHECK + "model m = random_survival_forest(f, target: c.outcome)") == []
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "sksurv" else real(name, *a))
    assert errors(CHECK + "model m = gradient_boosted_survival(f, target: c.outcome)") == ["E260"]
    assert errors(CHECK + "model m = cox(f, target: c.outcome)") == []
    # a survival model's grid search scores by Harrell's C: a classifier's `scoring` there would be ignored
    assert errors(CHECK + "model m = cox(f, target: c.outcome) { search: grid(alpha: [0.1, 1], scoring: roc_auc) }") == ["E346"]
    assert errors(CHECK + "model m = cox(f, target: c.outcome) { search: grid(alpha: [0.1, 1]) }") == []
    assert errors(CHECK + "model m = logistic(g, target: b.outcome) { search: grid(C: [0.1, 1], scoring: accuracy) }") == []


def test_horizon_beyond_follow_up_at_check(tmp_path):
    df = _bad_table(tmp_path)
    last = df.loc[df["os"].astype(float).idxmax()]
    src = BAD.replace("cv: kfold(3)", f"cv: kfold(3), horizons: [5, {float(last['os']):g}]")
    (tmp_path / "bad.rad").write_text(src)
    from radlang.compiler import compile_source

    diags = [d for d in compile_source(src, str(tmp_path / "bad.rad"), data=True).diagnostics if d.is_error]
    assert [d.code for d in diags] == ["E680"]
    assert f"`{last['case']}`" in diags[0].message and "`os`" in diags[0].message and diags[0].span.line == 6


EXTERNAL = """
study "ext" { seed: 2 }
cohort dev = table("dev.csv") { id: case, outcome: survival(time: t, event: e) }
cohort ext = table("ext.csv") { id: case, outcome: survival(time: t, event: e) }
features f = tabular(dev)
model m = cox(f, target: dev.outcome) { l1_ratio: 0.5, search: grid(alpha: [0.01, 0.5], cv: 3) }
validate v = evaluate(m) { cv: kfold(3), external: ext, horizons: [HORIZONS], bootstrap: 0 }
"""


def test_external_cohort_metrics_use_the_training_censoring(tmp_path):
    """On an external cohort the censoring distribution comes from the training cohort: the metrics equal the formulas
    applied to the final model's risks and survival probabilities with the development cohort as training data."""
    rng = np.random.default_rng(8)

    def table(name, n, prefix):
        X = rng.normal(size=(n, 3))
        t = np.round(rng.exponential(10 * np.exp(-X[:, 0])), 3) + 0.05
        df = pd.DataFrame(X, columns=["a", "b", "c"]).assign(case=[f"{prefix}{i}" for i in range(n)], t=t, e=(rng.random(n) < 0.7).astype(int))
        df.to_csv(tmp_path / name, index=False)
        return df

    dev, ext = table("dev.csv", 120, "d"), table("ext.csv", 60, "x")
    hs = [float(np.quantile(ext["t"], q)) for q in (0.3, 0.6)]
    run_spec(EXTERNAL.replace("HORIZONS", ", ".join(repr(h) for h in hs)), tmp_path / "e.rad", tmp_path / "out")
    full = metrics(tmp_path / "out")
    assert [set(b) for b in full["search"]["best_params"]] == [{"alpha"}] * 4     # 3 folds and the final model, by inner CV
    assert full["search"]["scoring"] == "c_index"        # what the search maximised: the estimator's Harrell's C
    m = full["external"]
    p = predictions(tmp_path / "out")
    pe = p[p["set"] == "external"]
    assert list(pe["case_id"]) == list(ext["case"])
    risk = pe["risk"].to_numpy()
    assert m["c_index"]["estimate"] == pytest.approx(concordance(ext["t"], ext["e"], risk), abs=1e-11)
    assert m["uno_c"]["estimate"] == pytest.approx(sm.uno_c(dev["t"], dev["e"], ext["t"], ext["e"], risk, hs[-1]), abs=1e-11)
    surv = pe[[f"survival_at_{h:g}" for h in hs]].to_numpy()
    b = sm.brier_scores(dev["t"], dev["e"], ext["t"], ext["e"], surv, hs)
    assert m["brier"]["estimate"] == pytest.approx(list(b), abs=1e-11)
    assert m["km"]["curves"]["high"]["n"] == int((pe["risk_group"] == "high").sum())
    # the final model, saved as JSON and read back without scikit-learn, gives the external rows' numbers exactly (on
    # the table as radlang read it; the CSVs' 17 digits read back exactly with round_trip); `radlang predict` on the
    # external file writes the same risks
    from radlang.predict import load_model

    card = json.loads((tmp_path / "out" / "models" / "v.json").read_text())
    assert (card["format"], card["file"]) == ("radlang-survival/1", "v.model.json")
    saved = load_model((tmp_path / "out" / "models" / "v.model.json").read_bytes(), None)
    exact = pd.read_csv(tmp_path / "out" / "predictions" / "v.csv", float_precision="round_trip")
    exact = exact[exact["set"] == "external"]
    read = pd.read_csv(tmp_path / "ext.csv")[["a", "b", "c"]]
    assert np.array_equal(saved.predict(read), exact["risk"].to_numpy())
    assert np.array_equal(saved.survival_at(read, hs), exact[[f"survival_at_{h:g}" for h in hs]].to_numpy())
    rc, _, err = run_cli(["predict", tmp_path / "e.rad", "v", tmp_path / "ext.csv", "--out", tmp_path / "out", "-o", tmp_path / "p.csv"])
    assert rc == 0, err
    got = pd.read_csv(tmp_path / "p.csv", dtype={"case_id": str}, float_precision="round_trip")
    assert list(got["case_id"]) == list(ext["case"]) and np.array_equal(got["risk"].to_numpy(), exact["risk"].to_numpy())


def test_horizon_outside_a_folds_follow_up(tmp_path):
    """Within the cohort's follow-up, but after every time but the longest: the folds without the longest follow-up (two
    of three) cannot score it, nor the fold holding it (its training cases end earlier); a horizon before every case's
    time cannot be scored either. Each fold is named, with the case that bounds it."""
    df = _bad_table(tmp_path)
    t = np.sort(df["os"].astype(float).to_numpy())
    src = BAD.replace("cv: kfold(3)", f"cv: kfold(3), horizons: [{(t[-1] + t[-2]) / 2:g}]")
    diags = run_error_codes(src, tmp_path / "bad.rad", tmp_path / "out")
    assert [d.code for d in diags] == ["E680"] * 3 and all("`os`" in d.message for d in diags)
    # the two folds without the longest follow-up cannot score it; the fold holding it, trained without it, has no censoring
    # distribution there: it names the case with the last training time
    assert sum("at or beyond the last follow-up of the held-out cases of fold" in d.message for d in diags) == 2
    longest = df.loc[df["os"].astype(float).idxmax(), "case"]
    second = df.loc[df["os"].astype(float) == t[-2], "case"].iloc[0]
    assert [f"`{second}`" in d.message for d in diags if "last training follow-up" in d.message] == [True]
    assert all(f"`{longest}`" not in d.message for d in diags if "at or beyond the last follow-up of the held-out" in d.message)
    src = BAD.replace("cv: kfold(3)", f"cv: kfold(3), horizons: [{t[0] / 2:g}]")
    diags = run_error_codes(src, tmp_path / "bad.rad", tmp_path / "out2")
    first = df.loc[df["os"].astype(float).idxmin(), "case"]
    assert diags[0].code == "E680" and "before the first follow-up time of cohort `c`" in diags[0].message and f"`{first}`" in diags[0].message


def test_cox_that_cannot_converge_says_why(tmp_path):
    """More features than cases and no penalty: lifelines cannot converge; `run` says so as E648 with what to change."""
    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.normal(size=(24, 30)), columns=[f"g{j}" for j in range(30)])
    df.insert(0, "case", [f"c{i}" for i in range(24)])
    df.insert(1, "os", np.round(rng.exponential(5, 24), 2) + 0.1)
    df.insert(2, "dead", 1)
    df.to_csv(tmp_path / "bad.csv", index=False)
    diags = run_error_codes(BAD.replace("model m = cox(f, target: c.outcome)", "model m = cox(f, target: c.outcome) { alpha: 0 }"),
                            tmp_path / "bad.rad", tmp_path / "out")
    assert [d.code for d in diags] == ["E648"]
    assert "did not converge" in diags[0].message and "raise `alpha`" in diags[0].message
