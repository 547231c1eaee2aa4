"""ROC, calibration and decision-curve plots of an evaluation (survival: radlang/ops/survival_metrics.py's), drawn from its metrics JSON (self-contained: the
renderer inlines them). Each is drawn only when its metric is listed.
"""

from __future__ import annotations

from radlang.ops.evaluation_summary import cv_description


def evaluation_plots(metrics, survival=None):
    """PNG bytes of the plots of a binary evaluation, from its metrics dict (nothing is recomputed):
    {"roc.png": ..., "calibration.png": ..., "decision_curve.png": ...}; a plot whose data the metrics
    do not hold (not asked for in `metrics:`) is left out. Fixed size, dpi and no metadata: the same
    metrics give the same bytes. A survival evaluation's plots are `survival(metrics)`: the caller passes
    radlang/ops/survival_metrics.py's `survival_plots`."""
    if metrics.get("outcome") == "survival":
        return survival(metrics)
    if metrics.get("outcome") != "binary":
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


def write_evaluation_plots(metrics, folder, plots):
    """Write `plots` (evaluation_plots of these metrics) under `folder` (each atomically: a temporary file in the same
    folder, then os.replace); removes a plot of an earlier run that these metrics no longer give. Returns the file
    names written, in order."""
    import os
    import tempfile

    folder = str(folder)
    if plots:
        os.makedirs(folder, exist_ok=True)
    for name in ("roc.png", "calibration.png", "decision_curve.png", "km.png"):
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
