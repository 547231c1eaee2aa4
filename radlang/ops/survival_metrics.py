"""Survival metrics of validated predictions (self-contained: the renderer inlines them), computed inside each
fold (the censoring distribution from that fold's training cases) and on an external cohort (the censoring
distribution from the training cohort):

- Harrell's C (with a patient-level bootstrap CI) and Uno's C (IPCW, truncated at the last horizon);
- the cumulative/dynamic time-dependent AUC at each horizon (Uno 2007; Hung & Chiang 2010) and its
  survival-weighted mean;
- the Brier score at each horizon and the integrated Brier score (Graf 1999, IPCW) between the first and the last
  horizon;
- calibration at each horizon: the mean predicted survival against the Kaplan–Meier survival of each risk decile;
- Kaplan–Meier curves of the low- and high-risk groups (the cut-off: the median risk of the training fold) with
  lifelines' log-rank test.

NumPy from the published formulas, written to give scikit-survival's numbers (tests/validation/test_survival.py
compares them to 1e-9 when scikit-survival is installed); the concordance is radlang/ops/survival_models.py's.
"""

from __future__ import annotations

from radlang.ops.survival_models import concordance, step_at


def kaplan_meier(time, event, reverse=False):
    """The Kaplan–Meier estimate at each distinct time: (times, S). reverse: of the censoring distribution (a
    censoring is the event, an event leaves the risk set first), as scikit-survival's kaplan_meier_estimator."""
    import numpy as np

    time = np.asarray(time, float)
    event = np.asarray(event).astype(bool)
    uniq, inv = np.unique(time, return_inverse=True)
    n_event = np.bincount(inv, weights=event.astype(float), minlength=len(uniq))
    n_all = np.bincount(inv, minlength=len(uniq)).astype(float)
    at_risk = n_all[::-1].cumsum()[::-1]
    if reverse:
        at_risk, d = at_risk - n_event, n_all - n_event
    else:
        d = n_event
    ratio = np.divide(d, at_risk, out=np.zeros(len(uniq)), where=d != 0)
    return uniq, np.cumprod(1.0 - ratio)


def censoring_survival(train_time, train_event, times):
    """G(t): the probability of being uncensored beyond t, Kaplan–Meier on the training cases (1 when none is censored)."""
    import numpy as np

    if np.asarray(train_event).astype(bool).all():
        return np.ones(len(np.atleast_1d(times)))
    u, g = kaplan_meier(train_time, train_event, reverse=True)
    return step_at(u, g, np.atleast_1d(np.asarray(times, float)), 1.0)


def inverse_weights(train_time, train_event, time, event, used):
    """1/G(t_i) for the rows `used` (events whose weight a metric needs), 0 elsewhere and where G is 0."""
    import numpy as np

    w = np.zeros(len(time))
    if used.any():
        g = censoring_survival(train_time, train_event, np.asarray(time, float)[used])
        w[used] = np.divide(1.0, g, out=np.zeros(len(g)), where=g > 0)
    return w


def uno_c(train_time, train_event, time, event, risk, tau):
    """Uno's C: Harrell's pairs weighted by 1/G(t_i)^2, event cases before tau only."""
    import numpy as np

    time = np.asarray(time, float)
    event = np.asarray(event).astype(bool)
    w = inverse_weights(train_time, train_event, time, event, event & (time < tau))
    return concordance(time, event, risk, np.square(w))


def cumulative_dynamic_auc(train_time, train_event, time, event, risk, times):
    """The time-dependent AUC at each time (cases: an event by t, weighted 1/G(t_i); controls: alive at t) and its mean
    weighted by the Kaplan–Meier of the test cases, as scikit-survival's cumulative_dynamic_auc: (aucs, mean)."""
    import numpy as np

    time = np.asarray(time, float)
    event = np.asarray(event).astype(bool)
    risk = np.asarray(risk, float)
    times = np.asarray(times, float)
    ipcw = inverse_weights(train_time, train_event, time, event, event & (time <= times.max()))
    order = np.argsort(-risk, kind="stable")
    est, t_o, e_o, w_o = risk[order], time[order], event[order], ipcw[order]
    tied = np.abs(np.diff(np.r_[np.inf, est])) <= 1e-8
    drop = np.flatnonzero(tied) - 1
    scores = []
    for h in times:
        tp = np.cumsum(((t_o <= h) & e_o) * w_o)
        fp = np.cumsum(t_o > h)
        tpr = np.r_[0, np.delete(tp / tp[-1], drop)] if tp[-1] > 0 else None
        fpr = np.r_[0, np.delete(fp / fp[-1], drop)] if fp[-1] > 0 else None
        scores.append(float(np.trapezoid(tpr, fpr)) if tpr is not None and fpr is not None else float("nan"))
    scores = np.asarray(scores)
    if len(times) == 1:
        return scores, float(scores[0])
    u, s = kaplan_meier(time, event)
    s_t = step_at(u, s, times, 1.0)
    d = -np.diff(np.r_[1.0, s_t])
    return scores, float((scores * d).sum() / (1.0 - s_t[-1]))


def brier_scores(train_time, train_event, time, event, surv, times):
    """The IPCW Brier score of predicted survival `surv` (rows: cases, columns: times) at each time (Graf et al. 1999)."""
    import numpy as np

    time = np.asarray(time, float)
    event = np.asarray(event).astype(bool)
    surv = np.asarray(surv, float)
    times = np.asarray(times, float)
    g_t = censoring_survival(train_time, train_event, times)
    out = []
    for k, h in enumerate(times):
        case = (time <= h) & event
        w_case = inverse_weights(train_time, train_event, time, event, case)
        control = (time > h) / g_t[k] if g_t[k] > 0 else np.zeros(len(time))
        out.append(float(np.mean(np.square(surv[:, k]) * w_case + np.square(1.0 - surv[:, k]) * control)))
    return np.asarray(out)


def integrated_brier(times, scores):
    """The Brier score integrated over [times[0], times[-1]] (trapezoids), divided by the length of that interval."""
    import numpy as np

    times = np.asarray(times, float)
    return float(np.trapezoid(scores, times) / (times[-1] - times[0]))


def evaluation_times(horizons, points):
    """The times at which survival probabilities are predicted: the horizons and, for the integrated Brier score,
    `points` equally spaced times from the first to the last horizon."""
    import numpy as np

    h = sorted(float(x) for x in horizons or [])
    if len(h) < 2:
        return h
    return sorted(set(h) | {float(x) for x in np.linspace(h[0], h[-1], int(points))})


def horizon_problems(horizons, train_time, time, where):
    """Why a horizon cannot be scored on held-out cases `time` with censoring estimated on `train_time`: it must be
    at or after the first held-out time, before the last one, and not after the last training time.
    [(kind, message)], kind: "last" (the held-out cases' last time), "first" (their first) or "train" (the last training time)."""
    import numpy as np

    time = np.asarray(time, float)
    out = []
    for h in horizons or []:
        if h >= time.max():
            out.append(("last", f"horizon {h:g} is at or beyond the last follow-up of {where} ({time.max():g})"))
        elif h < time.min():
            out.append(("first", f"horizon {h:g} is before the first follow-up time of {where} ({time.min():g})"))
        elif h > np.max(train_time):
            out.append(("train", f"horizon {h:g} is beyond the last training follow-up ({np.max(train_time):g}) for {where}"))
    return out


def fold_survival_metrics(fold, params):
    """Every asked-for survival metric of one fold (or the external cohort): fold holds train_time, train_event,
    time, event, risk and, with horizons, surv (held-out survival at evaluation_times)."""
    import numpy as np

    want = set(params["metrics"])
    horizons = [float(h) for h in params.get("horizons") or []]
    time, event, risk = np.asarray(fold["time"], float), np.asarray(fold["event"]).astype(bool), np.asarray(fold["risk"], float)
    out = {"n": len(time), "events": int(event.sum())}
    if not event.any():
        return out
    out["c_index"] = concordance(time, event, risk)
    if "uno_c" in want:
        tau = horizons[-1] if horizons else float(np.max(fold["train_time"]))
        out["uno_c"] = uno_c(fold["train_time"], fold["train_event"], time, event, risk, tau)
    if horizons and fold.get("surv") is not None:
        grid = evaluation_times(horizons, params["ibs_points"])
        cols = [grid.index(h) for h in horizons]
        if "td_auc" in want:
            aucs, mean = cumulative_dynamic_auc(fold["train_time"], fold["train_event"], time, event, risk, horizons)
            out["td_auc"], out["td_auc_mean"] = [float(a) for a in aucs], mean
        if "brier" in want or "ibs" in want:
            b = brier_scores(fold["train_time"], fold["train_event"], time, event, fold["surv"], grid)
            out["brier"] = [float(b[c]) for c in cols]
            if len(grid) > 1:
                out["ibs"] = integrated_brier(grid, b)
    return out


def survival_calibration(time, event, surv_h, bins):
    """Predicted survival at a horizon against the Kaplan–Meier survival there, by group of predicted risk (equal-size
    groups of cases sorted by predicted survival; the last groups take the remainder)."""
    import numpy as np

    time, event, surv_h = np.asarray(time, float), np.asarray(event).astype(bool), np.asarray(surv_h, float)
    order = np.argsort(-surv_h, kind="stable")
    groups = [g for g in np.array_split(order, min(int(bins), len(order))) if len(g)]
    return groups, [float(surv_h[g].mean()) for g in groups]


def km_risk_groups(time, event, high):
    """Kaplan–Meier curves of the low- and high-risk groups and lifelines' log-rank test between them."""
    import numpy as np
    from lifelines.statistics import logrank_test

    time, event, high = np.asarray(time, float), np.asarray(event).astype(bool), np.asarray(high).astype(bool)
    out = {"curves": {}}
    for name, sel in (("low", ~high), ("high", high)):
        if sel.any():
            u, s = kaplan_meier(time[sel], event[sel])
            out["curves"][name] = {"n": int(sel.sum()), "events": int(event[sel].sum()), "time": [float(x) for x in u],
                                   "survival": [float(x) for x in s]}
    if high.any() and (~high).any():
        r = logrank_test(time[high], time[~high], event_observed_A=event[high], event_observed_B=event[~high])
        out["logrank"] = {"statistic": float(r.test_statistic), "p": float(r.p_value)}
    return out


def survival_metrics(folds, params, seed):
    """The survival metrics of a validation (one entry of folds per CV fold, or one for an external cohort): each
    fold's numbers, their means, a patient-level bootstrap CI of the mean Harrell's C, calibration at each horizon and
    Kaplan–Meier risk groups (first repeat only: a patient counts once) on the pooled held-out predictions.
    A fold: {label, repeat, train_time, train_event, time, event, risk, surv, cut, patients}."""
    import numpy as np

    want = set(params["metrics"])
    horizons = [float(h) for h in params.get("horizons") or []]
    per = [fold_survival_metrics(f, params) for f in folds]
    scored = [(f, m) for f, m in zip(folds, per) if "c_index" in m]
    m = {"n_predictions": int(sum(len(f["time"]) for f in folds)), "n_events": int(sum(int(np.sum(f["event"])) for f in folds))}
    if horizons:
        m["horizons"] = horizons
    if not scored:
        m["note"] = "no events among the held-out cases: no survival metric"
        return m

    def mean(key, i=None):
        vals = [x[key] if i is None else x[key][i] for _, x in scored if key in x]
        vals = [v for v in vals if v is not None and np.isfinite(v)]
        return float(np.mean(vals)) if vals else None

    m["c_index"] = {"estimate": mean("c_index"), "per_fold": [x["c_index"] for _, x in scored]}
    B = int(params.get("bootstrap") or 0)
    if B > 0:
        patients = sorted({str(p) for f, _ in scored for p in f["patients"]})
        pos = {p: i for i, p in enumerate(patients)}
        rows = [np.asarray([pos[str(p)] for p in f["patients"]]) for f, _ in scored]
        rng = np.random.default_rng(seed)
        stats = []
        for _ in range(B):
            times_drawn = np.bincount(rng.integers(0, len(patients), len(patients)), minlength=len(patients))
            cs = []
            for (f, _), r in zip(scored, rows):
                ix = np.repeat(np.arange(len(r)), times_drawn[r])
                if len(ix) and np.asarray(f["event"])[ix].any():
                    c = concordance(np.asarray(f["time"])[ix], np.asarray(f["event"])[ix], np.asarray(f["risk"])[ix])
                    if np.isfinite(c):
                        cs.append(c)
            if cs:
                stats.append(float(np.mean(cs)))
        a = (1 - float(params["ci"])) / 2
        m["c_index"].update(ci_low=float(np.quantile(stats, a)) if stats else None,
                            ci_high=float(np.quantile(stats, 1 - a)) if stats else None, bootstrap=len(stats), ci=float(params["ci"]))
    if "uno_c" in want:
        m["uno_c"] = {"estimate": mean("uno_c"), "per_fold": [x.get("uno_c") for _, x in scored],
                      "tau": horizons[-1] if horizons else "the last training time of each fold"}
    if horizons and "td_auc" in want:
        m["td_auc"] = {"horizons": horizons, "estimate": [mean("td_auc", i) for i in range(len(horizons))],
                       "mean": mean("td_auc_mean"), "per_fold": [x.get("td_auc") for _, x in scored]}
    if horizons and "brier" in want:
        m["brier"] = {"horizons": horizons, "estimate": [mean("brier", i) for i in range(len(horizons))],
                      "per_fold": [x.get("brier") for _, x in scored]}
    if len(horizons) > 1 and "ibs" in want:
        m["ibs"] = {"estimate": mean("ibs"), "from": horizons[0], "to": horizons[-1], "points": int(params["ibs_points"]),
                    "per_fold": [x.get("ibs") for _, x in scored]}
    first = [f for f in folds if f.get("repeat", 0) == 0]
    time = np.concatenate([np.asarray(f["time"], float) for f in first])
    event = np.concatenate([np.asarray(f["event"]).astype(bool) for f in first])
    if horizons and "calibration" in want and all(f.get("surv") is not None for f in first):
        grid = evaluation_times(horizons, params["ibs_points"])
        cal = []
        for h in horizons:
            s_h = np.concatenate([np.asarray(f["surv"], float)[:, grid.index(h)] for f in first])
            groups, predicted = survival_calibration(time, event, s_h, params["calibration_bins"])
            observed = []
            for g in groups:
                u, s = kaplan_meier(time[g], event[g])
                observed.append(float(step_at(u, s, [h], 1.0)[0]))
            cal.append({"horizon": h, "predicted": predicted, "observed": observed, "n": [len(g) for g in groups]})
        m["calibration"] = cal
    if "km" in want:
        high = np.concatenate([np.asarray(f["risk"], float) > f["cut"] for f in first])
        m["km"] = {**km_risk_groups(time, event, high), "cut": "the median risk of each training fold"}
    return m


def survival_plots(metrics):
    """PNG bytes of a survival evaluation's plots, from its metrics dict: calibration.png (predicted vs Kaplan–Meier
    survival by risk group at each horizon) and km.png (Kaplan–Meier curves of the risk groups), each when its metric
    was computed. Fixed size, dpi and no metadata: the same metrics give the same bytes."""
    sets = [(n, metrics[k]) for n, k in (("cross-validation", "cross_validation"), ("external", "external")) if isinstance(metrics.get(k), dict)]
    cal = [(n, m["calibration"]) for n, m in sets if m.get("calibration")]
    km = [(n, m["km"]) for n, m in sets if m.get("km", {}).get("curves")]
    if not cal and not km:
        return {}              # nothing to draw (neither metric listed): matplotlib is not imported
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    title = f"`{metrics.get('stage', '')}`: {metrics.get('model', '')} on `{metrics.get('cohort', '')}`"

    def png(fig):
        fig.tight_layout()
        FigureCanvasAgg(fig)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
        return buf.getvalue()

    out = {}
    if cal:
        fig = Figure(figsize=(5, 5))
        ax = fig.add_subplot(1, 1, 1)
        ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="ideal")
        for n, rows in cal:
            for r in rows:
                ax.plot(r["predicted"], r["observed"], marker="o", label=f"{n}, horizon {r['horizon']:g}")
        ax.set_xlabel("predicted survival at the horizon")
        ax.set_ylabel("Kaplan–Meier survival at the horizon")
        ax.set_title(title + "\ncalibration by risk group", fontsize=9)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper left", fontsize=7)
        out["calibration.png"] = png(fig)
    if km:
        fig = Figure(figsize=(6, 4.5))
        ax = fig.add_subplot(1, 1, 1)
        for (n, k), style in zip(km, ("-", "--")):
            p = (k.get("logrank") or {}).get("p")
            for g, color in (("low", "#1f77b4"), ("high", "#d62728")):
                c = k["curves"].get(g)
                if c:
                    ax.step([0.0] + c["time"], [1.0] + c["survival"], where="post", color=color, linestyle=style,
                            label=f"{n}: {g} risk (n={c['n']})" + (f", log-rank p={p:.3g}" if p is not None and g == "high" else ""))
        ax.set_xlabel("time")
        ax.set_ylabel("survival (Kaplan–Meier)")
        ax.set_ylim(0, 1.02)
        ax.set_title(title + "\nrisk groups split at the training median risk", fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower left", fontsize=7)
        out["km.png"] = png(fig)
    return out


SURVIVAL_METRIC_HELPERS = (concordance, step_at, kaplan_meier, censoring_survival, inverse_weights, uno_c, cumulative_dynamic_auc,
                           brier_scores, integrated_brier, evaluation_times, horizon_problems, fold_survival_metrics,
                           survival_calibration, km_risk_groups, survival_metrics, survival_plots)
