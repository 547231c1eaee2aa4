"""Clinical metrics of validated predictions (self-contained: the renderer inlines them): AUC with a patient-level
bootstrap CI, sensitivity/specificity at the chosen threshold, Brier, calibration intercept and slope
(statsmodels) with the calibration curve, net benefit (as dcurves defines it), multiclass one-vs-rest AUC;
and the byte-stable JSON/CSV writers of metrics and predictions.
"""

from __future__ import annotations


def calibration_stats(y, p, bins):
    """Calibration intercept (calibration-in-the-large, logit(p) as offset) and slope (logistic recalibration),
    with statsmodels; and the calibration curve (quantile bins) from scikit-learn."""
    import numpy as np
    import statsmodels.api as sm
    from sklearn.calibration import calibration_curve

    y = np.asarray(y).astype(float)
    p = np.clip(np.asarray(p, dtype=float), 1e-10, 1 - 1e-10)
    lp = np.log(p / (1 - p))
    import warnings

    out = {}
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            slope_fit = sm.GLM(y, sm.add_constant(lp, has_constant="add"), family=sm.families.Binomial()).fit()
            icpt_fit = sm.GLM(y, np.ones_like(lp), family=sm.families.Binomial(), offset=lp).fit()
        out["slope"] = float(slope_fit.params[1])
        out["intercept"] = float(icpt_fit.params[0])
    except Exception:  # noqa: BLE001 -- perfect separation etc.: no finite estimate
        out["slope"] = None
        out["intercept"] = None
    obs, pred = calibration_curve(y, p, n_bins=int(bins), strategy="quantile")
    out["curve"] = {"predicted": [float(x) for x in pred], "observed": [float(x) for x in obs]}
    return out


def net_benefit(y, p, thresholds):
    """Net benefit of the model, treat-all and treat-none at each threshold probability pt, as dcurves defines it
    (treat when p >= pt): NB = TP/n - FP/n * pt / (1 - pt). Vectorised; tests check it against dcurves.dca."""
    import numpy as np

    y = np.asarray(y).astype(int)
    p = np.asarray(p, dtype=float)
    t = np.asarray([float(x) for x in thresholds])
    n = len(y)
    treat = p[None, :] >= t[:, None]
    tp = (treat & (y[None, :] == 1)).sum(axis=1) / n
    fp = (treat & (y[None, :] == 0)).sum(axis=1) / n
    odds = t / (1 - t)
    prev = y.mean()
    return {"thresholds": t.tolist(), "model": (tp - fp * odds).tolist(), "all": (prev - (1 - prev) * odds).tolist(),
            "none": [0.0] * len(t)}


def auc_rank(y, p):
    """AUC as the Mann-Whitney statistic with mid-ranks for ties: the same number as sklearn's roc_auc_score
    (trapezoidal ROC area), without its input validation; used for the bootstrap."""
    import numpy as np
    from scipy.stats import rankdata

    y = np.asarray(y).astype(bool)
    r = rankdata(p)
    n1 = int(y.sum())
    n0 = len(y) - n1
    return float((r[y].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


def patient_resamples(groups, B, seed):
    """B bootstrap resamples of the rows, drawn by patient: each draws as many patients as there are, with
    replacement, and takes every row of each patient drawn (a patient drawn twice brings its rows twice)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    uniq, inv = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    rows = [np.flatnonzero(inv == g) for g in range(len(uniq))]
    for _ in range(int(B)):
        pick = rng.integers(0, len(uniq), len(uniq))
        yield np.concatenate([rows[g] for g in pick])


def binary_metrics(y, p, pred, groups, params, seed):
    """AUC (with a patient-level bootstrap CI), ROC points, sensitivity / specificity at the chosen thresholds,
    Brier, calibration and net benefit. y, p, pred, groups: one row per prediction (repeats stacked)."""
    import numpy as np
    from sklearn.metrics import brier_score_loss, roc_auc_score, roc_curve

    y = np.asarray(y).astype(int)
    p = np.asarray(p, dtype=float)
    want = set(params["metrics"])
    m = {"n_predictions": len(y), "n_positive": int(y.sum())}
    if len(np.unique(y)) < 2:
        m["note"] = "a single outcome class: no AUC, ROC or calibration"
        return m
    if "auc" in want:
        auc = {"estimate": float(roc_auc_score(y, p))}
        B = int(params["bootstrap"])
        if B > 0:
            stats = []
            for ix in patient_resamples(groups, B, seed):
                if y[ix].min() == y[ix].max():
                    continue
                stats.append(auc_rank(y[ix], p[ix]))
            a = (1 - float(params["ci"])) / 2
            if stats:
                auc.update(ci_low=float(np.quantile(stats, a)), ci_high=float(np.quantile(stats, 1 - a)), bootstrap=len(stats), ci=float(params["ci"]))
            else:  # every resample held one class only (a tiny or extremely unbalanced cohort): no interval
                auc.update(ci_low=None, ci_high=None, bootstrap=0, ci=float(params["ci"]))
        m["auc"] = auc
    if "roc" in want:
        fpr, tpr, thr = roc_curve(y, p)
        m["roc"] = {"fpr": [float(x) for x in fpr], "tpr": [float(x) for x in tpr], "thresholds": [float(x) if np.isfinite(x) else None for x in thr]}
    if pred is not None:
        pred = np.asarray(pred).astype(bool)
        if "sensitivity" in want:
            m["sensitivity"] = float(pred[y == 1].mean())
        if "specificity" in want:
            m["specificity"] = float((~pred[y == 0]).mean())
        if "accuracy" in want:
            m["accuracy"] = float((pred == (y == 1)).mean())
    if "brier" in want:
        m["brier"] = float(brier_score_loss(y, p))
    if "calibration" in want:
        m["calibration"] = calibration_stats(y, p, params["calibration_bins"])
    if "net_benefit" in want:
        lo, hi, step = params["net_benefit_range"]
        ts = np.round(np.arange(float(lo), float(hi) + 1e-9, float(step)), 10)
        m["net_benefit"] = net_benefit(y, p, ts)
    return m


def multiclass_metrics(y, P, params):
    import numpy as np
    from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

    y = np.asarray(y).astype(int)
    labels = list(range(P.shape[1]))
    m = {"n_predictions": len(y)}
    if "auc" in params["metrics"]:
        if len(np.unique(y)) == len(labels):
            m["auc"] = {"estimate": float(roc_auc_score(y, P, multi_class="ovr", labels=labels)), "average": "macro one-vs-rest"}
        else:   # e.g. one held-out site without cases of some class: one-vs-rest AUC is undefined for that class
            m["auc"] = {"estimate": None, "note": f"{len(labels) - len(np.unique(y))} class(es) absent: no one-vs-rest AUC"}
    m["accuracy"] = float(accuracy_score(y, P.argmax(axis=1)))
    m["log_loss"] = float(log_loss(y, P, labels=labels))
    return m


def regression_metrics(y, pred, groups, params, seed):
    """A continuous outcome's metrics of predictions `pred` (one row per prediction, repeats stacked): R² (1 - residual
    / total sum of squares about the observed mean; with a patient-level bootstrap CI when `bootstrap` > 0), the mean
    absolute error and the root mean squared error, in the outcome's units."""
    import numpy as np

    y = np.asarray(y, float)
    pred = np.asarray(pred, float)
    want = set(params.get("metrics") or ("r2", "mae", "rmse"))
    m = {"n_predictions": len(y)}
    r = y - pred

    def r2(ix):
        ss = float(((y[ix] - y[ix].mean()) ** 2).sum())
        return 1 - float((r[ix] ** 2).sum()) / ss if ss > 0 else None

    if "r2" in want:
        est = r2(np.arange(len(y))) if len(y) > 1 else None
        m["r2"] = {"estimate": est}
        B = int(params.get("bootstrap") or 0)
        if B > 0 and est is not None:
            stats = [v for v in (r2(ix) for ix in patient_resamples(groups, B, seed)) if v is not None]
            a = (1 - float(params["ci"])) / 2
            m["r2"].update(ci_low=float(np.quantile(stats, a)) if stats else None, ci_high=float(np.quantile(stats, 1 - a)) if stats else None,
                           bootstrap=len(stats), ci=float(params["ci"]))
    if "mae" in want:
        m["mae"] = float(np.abs(r).mean()) if len(r) else None
    if "rmse" in want:
        m["rmse"] = float(np.sqrt((r ** 2).mean())) if len(r) else None
    return m


def round_floats(obj, digits=12):
    """Fixed float formatting for deterministic JSON: `digits` significant digits, NaN/inf -> null."""
    import math

    if isinstance(obj, float):
        if not math.isfinite(obj):
            return None
        return float(f"{obj:.{digits}g}")
    if isinstance(obj, dict):
        return {str(k): round_floats(v, digits) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [round_floats(v, digits) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        return round_floats(obj.item(), digits)
    return obj


def evaluation_json(metrics):
    """The bytes of <out>/metrics/<stage>.json."""
    import json

    return (json.dumps(round_floats(metrics), sort_keys=True, indent=2, allow_nan=False) + "\n").encode("utf-8")


def evaluation_csv(df):
    """The bytes of <out>/predictions/<stage>.csv: floats with 17 significant digits, so they read back exactly."""
    return df.to_csv(index=False, float_format="%.17g", lineterminator="\n").encode("utf-8")
