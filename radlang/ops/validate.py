"""Leakage-free validation with clinical metrics.

    validate v = evaluate(clf) {
      cv: stratified_kfold(5, repeats: 3)      # or kfold(5), leave_one_site_out, none (external only)
      external: ext                            # an external cohort: the model fit on all of `train`
      metrics: [auc, roc, sensitivity, specificity, brier, calibration, net_benefit]
      threshold: sensitivity >= 0.9            # or specificity >= 0.95, or youden
      bootstrap: 1000
    }

Every stage fit on outcomes or data statistics upstream of the model (selection, imputation, scaling,
the model, the threshold) is assembled into one scikit-learn Pipeline and refit inside each training
fold. Splits are group-aware: all cases of one patient land on the same side. The threshold is chosen
on the training fold's own predictions by the stated rule, then applied unchanged to the held-out fold
(and, for the final model fit on every training case, to the external cohort).

Outputs: <out>/metrics/<stage>.json (sorted keys, 12 significant digits), out-of-fold predictions
<out>/predictions/<stage>.csv and, for binary outcomes, ROC / calibration / decision-curve PNGs drawn from
the metrics under <out>/plots/<stage>/. The functions below are self-contained (the renderer inlines them).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from radlang.registry import Operator, Port, register
from radlang.types import RType
from radlang.values import Rule, Settings, Sym, Variant, out_of_range, variants

# ----------------------------------------------------------------------------------------------
# self-contained implementation


def make_splits(cv, y_strat, groups, sites, seed):
    """[(repeat, fold, train_idx, test_idx)]. Group-aware whenever a group (patient) has several cases."""
    import numpy as np
    from sklearn.model_selection import GroupKFold, KFold, LeaveOneGroupOut, StratifiedGroupKFold, StratifiedKFold

    n = len(groups)
    idx = np.arange(n)
    kind = cv["kind"]
    out = []
    if kind == "none":
        return out
    if kind == "leave_one_site_out":
        for f, (tr, te) in enumerate(LeaveOneGroupOut().split(idx, groups=np.asarray(sites))):
            out.append((0, f, tr, te))
        return out
    grouped = len(set(groups)) < n
    for r in range(int(cv.get("repeats", 1))):
        rs = seed + r
        k = int(cv["k"])
        if kind == "stratified_kfold" and y_strat is not None:
            splitter = StratifiedGroupKFold(k, shuffle=True, random_state=rs) if grouped else StratifiedKFold(k, shuffle=True, random_state=rs)
        else:
            splitter = GroupKFold(k, shuffle=True, random_state=rs) if grouped else KFold(k, shuffle=True, random_state=rs)
        ys = y_strat if y_strat is not None else np.zeros(n)
        for f, (tr, te) in enumerate(splitter.split(idx, ys, groups=np.asarray(groups) if grouped else None)):
            out.append((r, f, tr, te))
    return out


def choose_threshold(y, p, rule):
    """The operating threshold (predict positive when p >= t), from training predictions only.
    rule: {"metric": "youden"} or {"metric": "sensitivity"|"specificity", "op": ">="|">", "value": v}."""
    import math

    import numpy as np

    y = np.asarray(y).astype(int)
    p = np.asarray(p, dtype=float)
    metric = rule["metric"]
    if metric == "youden":
        from sklearn.metrics import roc_curve

        fpr, tpr, thr = roc_curve(y, p)
        j = tpr - fpr
        ok = np.isfinite(thr)
        best = int(np.argmax(np.where(ok, j, -np.inf)))
        return float(thr[best])
    v = float(rule["value"])
    strict = rule.get("op") == ">"
    if metric == "sensitivity":
        pos = np.sort(p[y == 1])[::-1]
        need = (math.floor(v * len(pos)) + 1) if strict else math.ceil(v * len(pos) - 1e-12)
        need = min(max(need, 1), len(pos))
        return float(pos[need - 1])          # the need-th highest positive score: at least `need` positives at or above it
    if metric == "specificity":
        neg = np.sort(p[y == 0])
        need = (math.floor(v * len(neg)) + 1) if strict else math.ceil(v * len(neg) - 1e-12)
        need = min(max(need, 1), len(neg))
        return float(np.nextafter(neg[need - 1], np.inf))   # `need` negatives strictly below it
    raise ValueError(f"unknown threshold rule {metric!r}")


def run_fold(task):
    """Fit the pipeline on one training fold; predict the held-out fold (and the training fold, for the threshold).
    task: {"build": (fn, args), "X": DataFrame, "y": array, "train": idx, "test": idx, "task": str, "rule": dict|None,
    "patients": patient id per row of X, or None}."""
    import warnings

    import numpy as np

    fn, args = task["build"]
    pipe = fn(*args)
    X, y = task["X"], task["y"]
    tr, te = task["train"], task["test"]
    fit_params = {}
    if task.get("patients") is not None and hasattr(pipe, "param_grid"):
        # several cases per patient: the grid search's inner CV keeps each patient in one inner fold too (selectors
        # group their own inner CV by the patients they were built with)
        g_tr = np.asarray(task["patients"])[tr]
        if len(set(g_tr)) < len(g_tr):
            from sklearn.model_selection import GroupKFold, StratifiedGroupKFold

            kind = StratifiedGroupKFold if type(pipe.cv).__name__ == "StratifiedKFold" else GroupKFold
            pipe.set_params(cv=kind(pipe.cv.n_splits, shuffle=True, random_state=pipe.cv.random_state))
            fit_params["groups"] = g_tr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe.fit(X.iloc[tr], y[tr], **fit_params)
        fitted = pipe.best_estimator_ if hasattr(pipe, "best_estimator_") else pipe
        selected = fitted_selections(fitted)
        if task["task"] == "survival":
            risk = np.asarray(pipe.predict(X.iloc[te]), float) if len(te) else np.empty(0)
            return {"test": risk, "threshold": None, "selected": selected, **({"model": pipe} if task.get("return_model") else {})}
        p_te = pipe.predict_proba(X.iloc[te]) if len(te) else np.empty((0, len(fitted.classes_)))
        out = {"test": p_te[:, 1] if task["task"] == "binary" else p_te, "threshold": None, "selected": selected}
        if task["task"] == "binary" and task.get("rule"):
            k = int(task.get("threshold_cv") or 0)
            yt = np.asarray(y[tr]).astype(int)
            if k >= 2 and min(int(yt.sum()), int(len(yt) - yt.sum())) >= k:
                # choose on out-of-fold predictions inside the training fold: scores the model never saw while fitting
                from sklearn.base import clone
                from sklearn.model_selection import StratifiedGroupKFold

                g_in = np.asarray(task["patients"])[tr] if task.get("patients") is not None else np.arange(len(tr)).astype(str)
                p_tr = np.empty(len(tr))
                for a, b in StratifiedGroupKFold(k, shuffle=True, random_state=int(task.get("seed", 0))).split(X.iloc[tr], yt, g_in):
                    inner = clone(pipe)
                    inner_params = {kk: (v[a] if hasattr(v, "__len__") and len(v) == len(tr) else v) for kk, v in fit_params.items()}
                    inner.fit(X.iloc[tr].iloc[a], yt[a], **inner_params)
                    p_tr[b] = inner.predict_proba(X.iloc[tr].iloc[b])[:, 1]
            else:
                p_tr = pipe.predict_proba(X.iloc[tr])[:, 1]
            t = choose_threshold(y[tr], p_tr, task["rule"])
            pred = p_tr >= t
            out.update(threshold=t, train_sensitivity=float(pred[yt == 1].mean()), train_specificity=float((~pred[yt == 0]).mean()))
        if "search" in task and hasattr(pipe, "best_params_"):
            back = {"n_neighbors": "k"}
            out["best_params"] = {back.get(k.split("__", 1)[1], k.split("__", 1)[1]): v for k, v in pipe.best_params_.items()}
        if task.get("return_model"):
            out["model"] = pipe
    return out


def fitted_selections(pipe):
    """{selector step name: the feature names it kept}, for every fitted selector in a pipeline, also inside the
    branches of a join (a ColumnTransformer)."""
    out = {}
    for name, step in getattr(pipe, "steps", []):
        if hasattr(step, "get_support"):
            out[name] = [str(c) for c in step.get_feature_names_out()]
        for branch in getattr(step, "named_transformers_", {}).values():
            out.update(fitted_selections(branch))
    return out


def model_artefact(model):
    """The final fitted pipeline as bytes in skops' format, which loads without running code when the loader names
    the types it trusts. The fold-only inputs of selectors (patients, raters) are dropped, and the archive is made
    reproducible: skops names its arrays by memory address and stamps the time, so the arrays are renamed in order
    of appearance and every entry gets a fixed date: the same model gives the same bytes."""
    import io
    import itertools
    import json
    import zipfile

    import skops.io as sio

    def strip(est):
        for _, step in getattr(est, "steps", []):
            strip(step)
        for branch in getattr(est, "named_transformers_", {}).values():
            strip(branch)
        if hasattr(est, "fold_inputs"):
            est.fold_inputs = None

    model = getattr(model, "best_estimator_", model)
    strip(model)
    raw = zipfile.ZipFile(io.BytesIO(sio.dumps(model)))
    schema = json.loads(raw.read("schema.json"))
    names, ids, numbers = {}, {}, itertools.count()

    def rename(node):       # array files and object ids (skops' memo of shared objects) are numbered in a fixed walk order
        if isinstance(node, dict):
            if isinstance(node.get("file"), str):
                node["file"] = names.setdefault(node["file"], f"{len(names):06d}.npy")
            if isinstance(node.get("__id__"), int):
                # a JSON scalar (a string, a number) is shared or not as the interpreter happened to intern it: each
                # gets its own number; objects keep the sharing that the model's own structure gives them
                if node.get("__loader__") == "JsonNode" or node["__id__"] not in ids:
                    ids[node["__id__"]] = next(numbers)
                node["__id__"] = ids[node["__id__"]]
            for k in sorted(node):
                rename(node[k])
        elif isinstance(node, list):
            for v in node:
                rename(v)

    rename(schema)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        entries = [("schema.json", json.dumps(schema, sort_keys=True).encode())]
        entries += sorted((new, raw.read(old)) for old, new in names.items())
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            z.writestr(info, data)
    return out.getvalue()


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
            rng = np.random.default_rng(seed)
            uniq, inv = np.unique(np.asarray(groups).astype(str), return_inverse=True)
            rows = [np.flatnonzero(inv == g) for g in range(len(uniq))]
            stats = []
            for _ in range(B):
                pick = rng.integers(0, len(uniq), len(uniq))
                ix = np.concatenate([rows[g] for g in pick])
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
        m["auc"] = {"estimate": float(roc_auc_score(y, P, multi_class="ovr", labels=labels)), "average": "macro one-vs-rest"}
    m["accuracy"] = float(accuracy_score(y, P.argmax(axis=1)))
    m["log_loss"] = float(log_loss(y, P, labels=labels))
    return m


def survival_metrics(time, event, risk, fold_ids):
    """Harrell's C-index (scikit-survival), per fold (risk scores of different fold models are not comparable) and their mean."""
    import numpy as np
    from sksurv.metrics import concordance_index_censored

    time = np.asarray(time, float)
    event = np.asarray(event).astype(bool)
    risk = np.asarray(risk, float)
    per = []
    for f in sorted(set(fold_ids)):
        ix = np.asarray([x == f for x in fold_ids])
        if event[ix].sum() == 0:
            continue
        per.append(float(concordance_index_censored(event[ix], time[ix], risk[ix])[0]))
    return {"c_index": {"estimate": float(np.mean(per)) if per else None, "per_fold": per}}


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


def cv_description(metrics):
    """How the evaluation cross-validated, in words: `5x3 folds`, `5 folds`, `leave-one-site-out, 3 sites`."""
    cv = metrics.get("cv") or {}
    if cv.get("kind") == "leave_one_site_out":
        return f"leave-one-site-out, {cv.get('splits')} sites"
    reps = int(cv.get("repeats") or 1)
    return f"{cv.get('k')}x{reps} folds" if reps > 1 else f"{cv.get('k')} folds"


def evaluation_plots(metrics):
    """PNG bytes of the plots of a binary evaluation, from its metrics dict (nothing is recomputed):
    {"roc.png": ..., "calibration.png": ..., "decision_curve.png": ...}; a plot whose data the metrics
    do not hold (not asked for in `metrics:`) is left out. Fixed size, dpi and no metadata: the same
    metrics give the same bytes."""
    if metrics.get("task") != "binary":
        return {}

    import io
    import math

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    sets = []
    if isinstance(metrics.get("cross_validation"), dict):
        sets.append(("cross-validation (out-of-fold, " + cv_description(metrics) + ")", metrics["cross_validation"], "#1f77b4"))
    if isinstance(metrics.get("external"), dict):
        sets.append((f"external `{metrics['external'].get('cohort', 'external')}`", metrics["external"], "#d62728"))

    def auc_text(m):
        a = m.get("auc") or {}
        if a.get("estimate") is None:
            return ""
        t = f"AUC {a['estimate']:.3f}"
        if a.get("ci_low") is not None and a.get("ci_high") is not None:
            t += f" [{a['ci_low']:.3f}, {a['ci_high']:.3f}]"
        return t

    def finish(fig, ax, xlabel, ylabel, heading, legend_at):
        """Label, lay out and render one plot to PNG bytes (no version stamp, so runs give identical files)."""
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(heading, fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.legend(loc=legend_at, fontsize=7)
        fig.tight_layout()
        FigureCanvasAgg(fig)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
        return buf.getvalue()

    title = f"`{metrics.get('stage', '')}`: {metrics.get('model', '')} on `{metrics.get('cohort', '')}` ({metrics.get('n_cases', '?')} cases)"
    out = {}
    rule = (metrics.get("threshold") or {}).get("rule")
    if rule:
        rule_text = "maximum Youden index" if rule.get("metric") == "youden" else f"{rule.get('metric')} {rule.get('op', '>=')} {rule.get('value'):g}"
    else:
        rule_text = ""

    roc_sets = [(n, m, c) for n, m, c in sets if isinstance(m.get("roc"), dict)]
    if roc_sets:
        fig = Figure(figsize=(6.4, 5.6))
        ax = fig.add_subplot(1, 1, 1)
        ax.plot([0, 1], [0, 1], linestyle=":", color="#888888", linewidth=1, label="chance")
        for name, m, color in roc_sets:
            ax.plot(m["roc"]["fpr"], m["roc"]["tpr"], color=color, linewidth=2,
                    label=f"{name}: {auc_text(m)}".rstrip(": "))
            if m.get("sensitivity") is not None and m.get("specificity") is not None:
                at = f"threshold {m['threshold']:.3f}" if m.get("threshold") is not None else "per-fold thresholds"
                ax.plot([1 - m["specificity"]], [m["sensitivity"]], marker="o", markersize=9, color=color, markeredgecolor="black",
                        linestyle="none", label=f"operating point at {at}: sens {m['sensitivity']:.2f}, spec {m['specificity']:.2f}")
        ax.set_xlim(-0.01, 1.01)
        ax.set_ylim(-0.01, 1.01)
        out["roc.png"] = finish(fig, ax, "1 - specificity (false positive rate)", "sensitivity (true positive rate)",
                                "ROC  " + title + (f"\nthreshold chosen on training data: {rule_text}" if rule_text else ""), "lower right")

    cal_sets = [(n, m, c) for n, m, c in sets if isinstance(m.get("calibration"), dict) and (m["calibration"].get("curve") or {}).get("predicted")]
    if cal_sets:
        fig = Figure(figsize=(6.4, 5.6))
        ax = fig.add_subplot(1, 1, 1)
        ax.plot([0, 1], [0, 1], linestyle=":", color="#888888", linewidth=1, label="ideal (predicted = observed)")
        for name, m, color in cal_sets:
            cal = m["calibration"]
            stats = []
            if cal.get("intercept") is not None:
                stats.append(f"intercept {cal['intercept']:.2f}")
            if cal.get("slope") is not None:
                stats.append(f"slope {cal['slope']:.2f}")
            ax.plot(cal["curve"]["predicted"], cal["curve"]["observed"], color=color, marker="o", linewidth=1.5,
                    label=f"{name}: " + (", ".join(stats) if stats else "intercept/slope not estimable"))
        ax.set_xlim(-0.01, 1.01)
        ax.set_ylim(-0.01, 1.01)
        out["calibration.png"] = finish(fig, ax, "predicted probability (mean of the bin)", "observed fraction of positives",
                                        "Calibration  " + title, "upper left")

    nb_sets = [(n, m, c) for n, m, c in sets if isinstance(m.get("net_benefit"), dict) and m["net_benefit"].get("thresholds")]
    if nb_sets:
        fig = Figure(figsize=(6.4, 5.6))
        ax = fig.add_subplot(1, 1, 1)
        top = 0.0
        for name, m, color in nb_sets:
            nb = m["net_benefit"]
            t = nb["thresholds"]
            model = [float("nan") if v is None else v for v in nb["model"]]
            every = [float("nan") if v is None else v for v in nb["all"]]
            ax.plot(t, model, color=color, linewidth=2, label=f"model, {name}")
            ax.plot(t, every, color=color, linewidth=1, linestyle="--", label=f"treat all, {name}")
            top = max([top] + [v for v in model + every if math.isfinite(v)])
        ax.plot(nb_sets[0][1]["net_benefit"]["thresholds"], nb_sets[0][1]["net_benefit"]["none"], color="black", linewidth=1,
                label="treat none")
        span = max(top, 0.05)
        ax.set_ylim(-0.15 * span, 1.1 * span)
        out["decision_curve.png"] = finish(fig, ax, "threshold probability", "net benefit", "Decision curve  " + title, "best")
    return out


def write_evaluation_plots(metrics, folder, plots=None):
    """Write the plots of `evaluation_plots` under `folder` (each atomically: a temporary file in the same
    folder, then os.replace); removes a plot of an earlier run that these metrics no longer give.
    `plots`: evaluation_plots(metrics) when the caller already has them. Returns the file names written, in order."""
    import os
    import tempfile

    if plots is None:
        plots = evaluation_plots(metrics)
    folder = str(folder)
    if plots:
        os.makedirs(folder, exist_ok=True)
    for name in ("roc.png", "calibration.png", "decision_curve.png"):
        if name not in plots and os.path.exists(os.path.join(folder, name)):
            os.remove(os.path.join(folder, name))
    written = []
    for name, data in plots.items():
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
        try:
            os.chmod(tmp, 0o644)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, os.path.join(folder, name))
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
        written.append(name)
    return written


def evaluation_summary(metrics, files):
    """The lines `radlang run` prints after the run for one evaluate stage: the headline numbers of its metrics
    dict (as written to the JSON) and the files written (paths relative to <out>)."""

    def auc_text(a):
        t = f"AUC {a['estimate']:.3f}"
        if a.get("ci_low") is not None and a.get("ci_high") is not None:
            t += f" [{a['ci_low']:.3f}, {a['ci_high']:.3f}]"
        return t

    def headline(m, task):
        if m.get("note"):
            return m["note"]
        bits = []
        if task == "survival":
            c = m.get("c_index") or {}
            if c.get("estimate") is not None:
                bits.append(f"C-index {c['estimate']:.3f} (mean of {len(c.get('per_fold') or [])} folds)")
        elif isinstance(m.get("auc"), dict) and m["auc"].get("estimate") is not None:
            bits.append(auc_text(m["auc"]) + (" (macro one-vs-rest)" if task == "multiclass" else ""))
        for k in ("sensitivity", "specificity", "accuracy"):
            if m.get(k) is not None:
                bits.append(f"{k} {m[k]:.2f}")
        return ", ".join(bits) or "no headline metric"

    task = metrics.get("task")
    rule = (metrics.get("threshold") or {}).get("rule")
    rule_text = None
    if rule:
        rule_text = "maximum Youden index" if rule.get("metric") == "youden" else f"{rule.get('metric')} {rule.get('op', '>=')} {rule.get('value'):g}"
    parts = []
    cvm = metrics.get("cross_validation")
    if isinstance(cvm, dict):
        how = cv_description(metrics)
        n = f"{metrics.get('n_cases')} cases"
        if metrics.get("n_patients") is not None and metrics.get("n_patients") != metrics.get("n_cases"):
            n += f" of {metrics['n_patients']} patients"
        text = f"cross-validated {headline(cvm, task)} ({how}, {n}"
        if rule_text and cvm.get("sensitivity") is not None:
            text += f"; thresholds chosen in each training fold: {rule_text}"
        parts.append(text + ")")
    ext = metrics.get("external")
    if isinstance(ext, dict):
        text = f"external `{ext.get('cohort', 'external')}` ({ext.get('n_predictions')} cases) {headline(ext, task)}"
        if ext.get("threshold") is not None and ext.get("sensitivity") is not None:
            text += f" at threshold {ext['threshold']:.3f}" + (f" (chosen on training data: {rule_text})" if rule_text else "")
        parts.append(text)
    lines = [f"{metrics.get('stage')}: " + ("; ".join(parts) if parts else "no predictions")]
    if files:
        lines.append(f"{metrics.get('stage')}: wrote " + ", ".join(files))
    return lines


# ----------------------------------------------------------------------------------------------
# declarations


def _groups_ref(v):
    return None if v is None else str(v)


class StratifiedKFoldCV(Variant):
    call_name = "stratified_kfold"
    positional = ("k",)
    k: int = Field(5, ge=2, description="folds")
    repeats: int = Field(1, ge=1, description="repeats with different shuffles")
    groups: str | None = Field(None, description="`train.patient` (default), `train.id` or `train.site`: what never straddles a split")

    _g = field_validator("groups", mode="before")(lambda cls, v: _groups_ref(v))


class KFoldCV(Variant):
    call_name = "kfold"
    positional = ("k",)
    k: int = Field(5, ge=2)
    repeats: int = Field(1, ge=1)
    groups: str | None = Field(None, description="`train.patient` (default), `train.id` or `train.site`")

    _g = field_validator("groups", mode="before")(lambda cls, v: _groups_ref(v))


class LeaveOneSiteOut(Variant):
    call_name = "leave_one_site_out"


class NoCV(Variant):
    call_name = "none"


BINARY_METRICS = ("auc", "roc", "sensitivity", "specificity", "accuracy", "brier", "calibration", "net_benefit")
SURVIVAL_METRICS = ("c_index",)
MULTICLASS_METRICS = ("auc", "accuracy", "log_loss")
ALL_METRICS = tuple(sorted(set(BINARY_METRICS + SURVIVAL_METRICS + MULTICLASS_METRICS)))


def _rule(v):
    if v is None or isinstance(v, dict):
        return v
    if isinstance(v, Sym) or (isinstance(v, str) and not isinstance(v, Rule)):
        if str(v) != "youden":
            raise ValueError(f"unknown threshold rule `{v}`; write `youden`, `sensitivity >= 0.9` or `specificity >= 0.95`")
        return {"metric": "youden"}
    if isinstance(v, Rule):
        left = str(v.left)
        if left not in ("sensitivity", "specificity"):
            raise ValueError(f"a threshold rule constrains `sensitivity` or `specificity`, not `{left}`")
        if v.op not in (">=", ">"):
            raise ValueError(f"write the rule as `{left} >= <value>`")
        if isinstance(v.right, bool) or not isinstance(v.right, (int, float)) or not 0 < v.right < 1:
            raise out_of_range(f"`{left} {v.op} ...` needs a number between 0 and 1")
        return {"metric": left, "op": v.op, "value": float(v.right)}
    raise ValueError("write the threshold as `youden`, `sensitivity >= 0.9` or `specificity >= 0.95`")


class EvaluateSettings(Settings):
    cv: StratifiedKFoldCV | KFoldCV | LeaveOneSiteOut | NoCV = Field(
        default_factory=lambda: StratifiedKFoldCV(k=5, repeats=1),
        description="stratified_kfold(k, repeats: r) | kfold(k, repeats: r) | leave_one_site_out | none; always group-aware by patient")
    metrics: list[Literal["auc", "roc", "sensitivity", "specificity", "accuracy", "brier", "calibration", "net_benefit",
                          "c_index", "log_loss"]] | None = Field(None, description="default: every metric that fits the outcome")
    threshold: dict | None = Field(None, description="`youden` (default for binary outcomes), `sensitivity >= 0.9`, `specificity >= 0.95`")
    threshold_cv: int = Field(3, ge=0, le=10, description=("inner folds (patient-grouped) whose out-of-fold predictions choose the "
                              "threshold inside each training fold; 0 = the training fold's own fitted predictions (optimistic)"))
    bootstrap: int = Field(1000, ge=0, description="bootstrap resamples (by patient) for the AUC confidence interval")
    ci: float = Field(0.95, gt=0, lt=1)
    calibration_bins: int = Field(10, ge=2)
    net_benefit_range: list[float] = Field(default_factory=lambda: [0.01, 0.99, 0.01], description="[from, to, step] threshold probabilities")

    _cv = field_validator("cv", mode="before")(
        lambda cls, v: NoCV() if v is None else variants(StratifiedKFoldCV, KFoldCV, LeaveOneSiteOut, NoCV).func(v))
    _t = field_validator("threshold", mode="before")(lambda cls, v: _rule(v))

    @field_validator("metrics", mode="before")
    @classmethod
    def _m(cls, v):
        return [str(x) for x in v] if isinstance(v, list) else ([str(v)] if isinstance(v, str) else v)

    @field_validator("net_benefit_range")
    @classmethod
    def _nb(cls, v):
        if len(v) != 3 or not (0 < v[0] < 1 and 0 < v[1] < 1 and v[0] <= v[1] and v[2] > 0):
            raise out_of_range("`net_benefit_range` is [from, to, step] with 0 < from <= to < 1 and step > 0")
        return v


def _evaluate_infer(ctx):
    s = ctx.settings
    m = ctx.inputs["model"]
    task = m.outcome
    if s.metrics:
        allowed = {"binary": BINARY_METRICS, "survival": SURVIVAL_METRICS, "multiclass": MULTICLASS_METRICS}.get(task, ())
        for x in s.metrics:
            if x not in allowed:
                if x in SURVIVAL_METRICS:
                    msg = f"`{x}` needs a survival outcome, but `{ctx.stmt.op.name}` evaluates a {task} model"
                else:
                    msg = f"`{x}` is a metric for {'binary' if x in BINARY_METRICS else 'multiclass'} outcomes, but the model's outcome is {task}"
                ctx.error("E245", msg, setting="metrics", hint=f"metrics for a {task} outcome: {', '.join(allowed) or 'none'}")
    if s.threshold is not None and task != "binary":
        ctx.error("E246", f"an operating threshold needs a binary outcome; the model's outcome is {task}", setting="threshold")
    cohort = ctx.types.get(m.cohort) if m.cohort else None
    if isinstance(s.cv, LeaveOneSiteOut) and cohort is not None and not cohort.has_site:
        ctx.error("E247", f"`leave_one_site_out` needs sites, but cohort `{m.cohort}` has no site column", setting="cv",
                  hint=f"add `site: <column>` to `{m.cohort}`, or use `stratified_kfold(5)`")
    ext = ctx.inputs.get("external")
    if ext is not None and ext.outcome != task:
        ctx.error("E248", f"the external cohort `{ext.cohort}` has {'no' if not ext.outcome else 'a ' + ext.outcome} outcome, "
                  f"but the model predicts a {task} outcome", port="external")
    if isinstance(s.cv, NoCV) and ext is None:
        ctx.error("E305", "with `cv: none`, give an `external` cohort to evaluate on", setting="cv")
    cvg = getattr(s.cv, "groups", None)
    if cvg is not None:
        parts = cvg.split(".")
        if len(parts) != 2 or parts[1] not in ("id", "patient", "site"):
            ctx.error("E304", f"cv `groups: {cvg}` names a cohort attribute: `{m.cohort or 'train'}.patient`, `.id` or `.site`", setting="cv")
        elif m.cohort and parts[0] != m.cohort:
            ctx.error("E242", f"cv `groups` comes from cohort `{parts[0]}`, but the model is trained on `{m.cohort}`", setting="cv")
        elif parts[1] == "site" and cohort is not None and not cohort.has_site:
            ctx.error("E247", f"cohort `{m.cohort}` has no site column to group by", setting="cv")
    g = ctx.inputs.get("groups")
    if g is not None and m.cohort and g.cohort != m.cohort:
        ctx.error("E242", f"`groups` comes from cohort `{g.cohort}`, but the model is trained on `{m.cohort}`", port="groups")
    return RType("Evaluation", cohort=m.cohort, outcome=task, detail="evaluation")


def _evaluate_plan(stage, memory, study=None):
    """`radlang plan`: how many fits, and what is refit inside every training fold."""
    p = stage.params
    cv = p["cv"]
    if cv["kind"] in ("stratified_kfold", "kfold"):
        n = int(cv["k"]) * int(cv.get("repeats", 1))
        how = f"{cv['k']}-fold x {cv.get('repeats', 1)} repeat(s) = {n} training folds"
    elif cv["kind"] == "leave_one_site_out":
        how = "one training fold per site"
    else:
        how = "no cross-validation"
    ext = stage.inputs.get("external")
    lines = [("info", how + (f", plus 1 fit on every training case for the external cohort `{ext.stage}`" if ext else "")),
             ("info", "group-aware: cases of one patient never straddle a split")]
    refit = study.refit.get(stage.name) if study is not None else None
    if refit is not None:
        by = study.by_name()
        steps = [f"{n} ({by[n].op})" for n in refit.nodes]
        mp = by[refit.model].params
        pre = [] if mp.get("impute", "median") == "none" else ["impute"]
        post = [] if mp.get("scale", "standard") == "none" else ["scale"]
        thr = " -> threshold" if stage.type.outcome == "binary" else ""
        lines.append(("info", f"fold input: the columns of {', '.join(refit.sources)}"))
        lines.append(("info", "refit in each training fold: " + " -> ".join(pre + steps[:-1] + post + steps[-1:]) + thr))
        if len(refit.sources) > 1 or any(by[n].fit == "none" for n in refit.nodes):
            lines.append(("info", "refit graph: " + "; ".join(f"{a} -> {b}.{port}" for a, b, port in refit.edges)))
    return lines


register(Operator(
    name="evaluate", kind="validate", output="Evaluation", settings=EvaluateSettings, positional=("model",),
    inputs=(Port("model", ("Model",), doc="a `model` stage"),
            Port("external", ("Cohort",), optional=True, doc="an external validation cohort (never fit on)"),
            Port("groups", ("Ids", "Site"), optional=True, doc="what must not straddle a split (default: the cohort's patient ids)")),
    fit="outcome", behaviour="stateless", mode="evaluate", sink=True, impl=run_fold,
    helpers=(make_splits, choose_threshold, fitted_selections, model_artefact, auc_rank, calibration_stats, net_benefit, binary_metrics, multiclass_metrics,
             survival_metrics, round_floats, evaluation_json, evaluation_csv, cv_description, evaluation_plots, write_evaluation_plots,
             evaluation_summary),
    infer=_evaluate_infer, plan=_evaluate_plan,
    doc="Leakage-free validation: repeated, group-aware cross-validation (or leave-one-site-out) and an external cohort, "
        "with every fitted stage refit inside each training fold. Metrics: AUC with a bootstrap CI, ROC points, "
        "sensitivity/specificity at a threshold chosen on training data by a stated rule, Brier, calibration "
        "intercept/slope and curve, net benefit (dcurves), and the C-index for survival models. "
        "Writes <out>/metrics/<stage>.json, <out>/predictions/<stage>.csv and, for binary outcomes, plots under "
        "<out>/plots/<stage>/, each when its metric is listed: roc.png (`roc`), calibration.png (`calibration`), "
        "decision_curve.png (`net_benefit`).",
    examples=("validate v = evaluate(clf) { cv: stratified_kfold(5, repeats: 3), threshold: sensitivity >= 0.9, bootstrap: 1000 }",),
))
