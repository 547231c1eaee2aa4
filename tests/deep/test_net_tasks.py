"""Network models (`cnn`) with a continuous or a survival outcome: invariants on tiny CPU data.

- the survival head's loss is the Cox partial likelihood: with a linear risk it equals lifelines' log-likelihood at
  its own fitted coefficient (Efron's ties), divided by the number of events;
- the regression head trains on the standardised target: scaling the outcome by 4 (exact in floating point) gives
  bit-identical weights and predictions scaled by exactly 4;
- with the image vector at zero, the fused regression/survival network is its tabular-only head;
- two fits are bit-identical (regression and survival); the survival model's survival function is Breslow's;
- `evaluate` scores them with the regression metrics (R², MAE, RMSE) and the survival metrics (C-index, td-AUC,
  Brier, IBS, KM groups) inside folds, and `radlang run` and the rendered script write the same bytes.
"""

from __future__ import annotations

import csv
import json
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from radlang.ops.net_models import fusion_module, net_estimator_class, task_loss
from radlang.ops.survival_models import breslow, concordance, step_at, survival_target
from tests.deep.conftest import compile_spec, write_cohort
from tests.deep.test_net_models import PARAMS, SEGRESNET, voxel_table


def _data(n=16, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.normal(size=(n, 1, 8, 8, 8)).astype(np.float32)
    tab = rng.normal(size=(n, 3))
    return rng, voxel_table(images, tab), tab


def test_survival_loss_is_lifelines_cox_partial_likelihood():
    from lifelines import CoxPHFitter

    rng = np.random.default_rng(4)
    n = 40
    x = rng.normal(size=n)
    time = np.round(rng.exponential(10 * np.exp(-0.7 * x)) + 1)     # rounded: tied times, Efron's correction matters
    event = (rng.random(n) < 0.7).astype(int)
    cph = CoxPHFitter().fit(pd.DataFrame({"x": x, "t": time, "e": event}), duration_col="t", event_col="e")
    beta = float(cph.params_["x"])
    risk = torch.tensor(beta * x, dtype=torch.float64)[:, None]      # a linear head's output
    target = torch.tensor(np.stack([time, event], 1), dtype=torch.float64)
    loss = float(task_loss("survival")(risk, target))
    # torchsurv sums in float32 (1e-7 relative); Breslow's ties would differ by 2%
    assert loss * event.sum() == pytest.approx(-cph.log_likelihood_, rel=1e-6)


def test_regression_trains_on_the_standardised_target():
    _, X, tab = _data()
    y = 3.0 * tab[:, 0] + 10.0
    cls = net_estimator_class("regression")
    a = cls(network=SEGRESNET, params=PARAMS, seed=3).fit(X, y)
    b = cls(network=SEGRESNET, params=PARAMS, seed=3).fit(X, 4.0 * y)
    for k in a.weights_:
        assert a.weights_[k].tobytes() == b.weights_[k].tobytes(), k
    assert np.array_equal(4.0 * a.predict(X), b.predict(X))
    assert a.y_mean_ == pytest.approx(float(y.mean())) and a.y_scale_ == pytest.approx(float(y.std()))


def test_image_branch_at_zero_is_the_tabular_regression_head():
    torch.manual_seed(2)
    fused = fusion_module(SEGRESNET, [1, 8, 8, 8], 3, 1, 0, 0.0).eval()
    tab_only = fusion_module(SEGRESNET, None, 3, 1, 0, 0.0).eval()
    tab_only.tab_in.load_state_dict(fused.tab_in.state_dict())
    t = torch.randn(5, 3)
    with torch.no_grad():
        assert torch.equal(fused.head(torch.zeros(5, fused.n_img), t), tab_only.head(None, t))
    target = torch.randn(5)          # the same loss on the same outputs
    out = tab_only.head(None, t)
    assert float(task_loss("regression")(out, target)) == pytest.approx(float(((out[:, 0] - target) ** 2).mean()), rel=1e-12)


@pytest.mark.parametrize("task", ["regression", "survival"])
def test_two_fits_are_bit_identical(task):
    rng, X, tab = _data(seed=1)
    y = tab[:, 1] if task == "regression" else survival_target(rng.uniform(1, 20, 16).round(), rng.integers(0, 2, 16))
    cls = net_estimator_class(task)
    a = cls(network=SEGRESNET, params=PARAMS, seed=5).fit(X, y)
    b = cls(network=SEGRESNET, params=PARAMS, seed=5).fit(X, y)
    for k in a.weights_:
        assert a.weights_[k].tobytes() == b.weights_[k].tobytes(), k
    assert a.predict(X).tobytes() == b.predict(X).tobytes()


def test_survival_function_is_breslow_on_the_fit_cases():
    rng, X, _ = _data(seed=2)
    time, event = rng.uniform(1, 20, 16).round(), rng.integers(0, 2, 16)
    m = net_estimator_class("survival")(network=SEGRESNET, params=PARAMS, seed=1).fit(X, survival_target(time, event))
    risk = m.predict(X)
    times, h0 = breslow(time, event, risk)
    grid = [2.0, 7.5, 30.0]
    want = np.exp(-np.exp(risk)[:, None] * step_at(times, h0, grid, 0.0)[None, :])
    assert np.array_equal(m.survival_at(X, grid), want)
    assert m.score(X, survival_target(time, event)) == concordance(time, event, risk)


SPEC = '''
study "network outcomes" {{ seed: 5 }}
cohort reg = manifest("{m}") {{ image: t1, mask: seg, outcome: size as continuous }}
cohort surv = manifest("{m}") {{ image: t1, mask: seg, outcome: survival(time: months, event: died) }}
network enc = segresnet(dims: 3, in_channels: 1, out_channels: 2) {{ init_filters: 4, blocks_down: [1, 1], blocks_up: [1], norm: batch }}
features img = patches(reg) {{ patch: [8, 8, 8] }}
features simg = patches(surv) {{ patch: [8, 8, 8] }}
model r = cnn(img, target: reg.outcome, network: enc) {{ epochs: 1, batch: 4, hidden: 8 }}
model s = cnn(simg, target: surv.outcome, network: enc) {{ epochs: 1, batch: 4, hidden: 8 }}
validate vr = evaluate(r) {{ cv: kfold(2), bootstrap: 20 }}
validate vs = evaluate(s) {{ cv: kfold(2), horizons: [25, 35], metrics: [c_index, td_auc, brier, ibs, km], bootstrap: 20 }}
'''


@pytest.fixture(scope="module")
def outcome_cohort(tmp_path_factory):
    root = tmp_path_factory.mktemp("netout")
    m = write_cohort(root / "train", 12, 1)
    with open(m, newline="") as fh:
        rows = list(csv.reader(fh))
    rows[0] += ["size", "months", "died"]
    for i, r in enumerate(rows[1:]):
        r += [f"{10 + i * 0.5:.2f}", str(5 + ((i * 5) % 12) * 4), "1" if i % 3 else "0"]
    with open(m, "w", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)
    return root, m


def test_evaluate_scores_regression_and_survival_networks_and_render_matches(outcome_cohort, tmp_path):
    from radlang.backends.executor import run_study
    from radlang.backends.render.script import render_to_dir
    from tests.render.render_helpers import run_script

    def all_files(root):
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    _, m = outcome_cohort
    study = compile_spec(SPEC.format(m=m), tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ctx = run_study(study, out=tmp_path / "run", workers=1, quiet=True)
    reg = ctx.results["vr"]["metrics"]
    assert reg["outcome"] == "continuous" and set(reg["cross_validation"]) >= {"r2", "mae", "rmse"}
    preds = pd.read_csv(tmp_path / "run" / "predictions" / "vr.csv")
    r = preds["outcome"] - preds["prediction"]
    assert reg["cross_validation"]["mae"] == pytest.approx(float(r.abs().mean()), rel=1e-9)
    surv = ctx.results["vs"]["metrics"]["cross_validation"]
    assert {"c_index", "td_auc", "brier", "ibs", "km"} <= set(surv) and len(surv["c_index"]["per_fold"]) == 2
    sp = pd.read_csv(tmp_path / "run" / "predictions" / "vs.csv")
    assert {"risk", "risk_group", "survival_at_25", "survival_at_35"} <= set(sp.columns)
    assert ((sp["survival_at_35"] <= sp["survival_at_25"]) & (sp["survival_at_25"] <= 1)).all()
    from radlang.predict import predict

    applied = pd.read_csv(predict(study, "vr", str(m), tmp_path / "p.csv", out=tmp_path / "run"))   # the saved final model
    assert list(applied.columns) == ["case_id", "prediction"] and len(applied) == 12 and applied["prediction"].notna().all()
    script = render_to_dir(study, tmp_path / "review") / "study.py"
    proc = run_script(script, "--out", str(tmp_path / "script"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ran, scripted = all_files(tmp_path / "run"), all_files(tmp_path / "script")
    keep = [k for k in ran if k.startswith(("metrics/", "predictions/", "models/"))]
    assert keep and all(ran[k] == scripted.get(k) for k in keep), [k for k in keep if ran[k] != scripted.get(k)]
    assert json.loads(ran["metrics/vr.json"])["cross_validation"] == json.loads(scripted["metrics/vr.json"])["cross_validation"]


def test_planted_leakage_random_survival_gives_chance_concordance():
    """Random follow-up and events, pure-noise images: the cross-validated C-index (the mean of the folds' C, as
    `evaluate` reports it: a Cox model's risks are comparable within a fit only) has a 95% bootstrap CI that holds 0.5."""
    from sklearn.model_selection import KFold

    rng = np.random.default_rng(12)
    images = rng.normal(size=(40, 1, 8, 8, 8)).astype(np.float32)
    X = voxel_table(images)
    time, event = rng.uniform(1, 30, 40).round(1), rng.integers(0, 2, 40)
    y = survival_target(time, event)
    cls = net_estimator_class("survival")
    folds = []
    for tr, te in KFold(4, shuffle=True, random_state=0).split(X):
        folds.append((te, cls(network=SEGRESNET, params={**PARAMS, "epochs": 2}, seed=0).fit(X.iloc[tr], y[tr]).predict(X.iloc[te])))
    boot = np.random.default_rng(0)
    stats = []
    for _ in range(500):
        per = []
        for te, risk in folds:
            ix = boot.integers(0, len(te), len(te))
            per.append(concordance(time[te][ix], event[te][ix], risk[ix]))
        stats.append(np.nanmean(per))
    lo, hi = np.nanquantile(stats, [0.025, 0.975])
    assert lo < 0.5 < hi


def test_survival_network_learns_a_planted_hazard():
    """The risk is a log hazard (higher = earlier event): with constant images, a linear head on a tabular column whose
    true log hazard ratio is 1.5 gives a held-out C-index within 0.05 of the oracle's (the true log hazard's)."""
    rng = np.random.default_rng(0)
    n = 60
    tab = rng.normal(size=(n, 2))
    time = rng.exponential(10 * np.exp(-1.5 * tab[:, 0])) + 0.5
    event = (rng.random(n) < 0.8).astype(int)
    X = voxel_table(np.zeros((n, 1, 8, 8, 8), np.float32), tab)
    params = {**PARAMS, "epochs": 30, "validation": 0, "batch": 16, "hidden": 0}
    m = net_estimator_class("survival")(network=SEGRESNET, params=params, seed=0).fit(X[:40], survival_target(time[:40], event[:40]))
    oracle = concordance(time[40:], event[40:], tab[40:, 0])
    assert oracle > 0.75                        # the planted signal is there
    assert concordance(time[40:], event[40:], m.predict(X[40:])) > oracle - 0.05
