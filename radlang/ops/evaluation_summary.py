"""The console summary of an evaluation: the lines `radlang run` prints after the run (self-contained: the renderer
inlines them), from the metrics exactly as written.
"""

from __future__ import annotations


def cv_description(metrics):
    """How the evaluation cross-validated, in words: `5x3 folds`, `5 folds`, `leave-one-site-out, 3 sites`."""
    cv = metrics.get("cv") or {}
    if cv.get("kind") == "leave_one_site_out":
        return f"leave-one-site-out, {cv.get('splits')} sites"
    reps = int(cv.get("repeats") or 1)
    return f"{cv.get('k')}x{reps} folds" if reps > 1 else f"{cv.get('k')} folds"


def evaluation_summary(metrics, files):
    """The lines `radlang run` prints after the run for one evaluate stage: the headline numbers of its metrics
    dict (as written to the JSON) and the files written (paths relative to <out>)."""

    def auc_text(a):
        t = f"AUC {a['estimate']:.3f}"
        if a.get("ci_low") is not None and a.get("ci_high") is not None:
            t += f" [{a['ci_low']:.3f}, {a['ci_high']:.3f}]"
        return t

    def headline(m, outcome):
        if m.get("note"):
            return m["note"]
        bits = []
        if outcome == "survival":
            c = m.get("c_index") or {}
            if c.get("estimate") is not None:
                ci = f" [{c['ci_low']:.3f}, {c['ci_high']:.3f}]" if c.get("ci_low") is not None and c.get("ci_high") is not None else ""
                bits.append(f"C-index {c['estimate']:.3f}{ci} (mean of {len(c.get('per_fold') or [])} folds)")
            if (m.get("ibs") or {}).get("estimate") is not None:
                bits.append(f"integrated Brier {m['ibs']['estimate']:.3f}")
        elif outcome == "continuous":
            r2 = m.get("r2") or {}
            if r2.get("estimate") is not None:
                ci = f" [{r2['ci_low']:.3f}, {r2['ci_high']:.3f}]" if r2.get("ci_low") is not None and r2.get("ci_high") is not None else ""
                bits.append(f"R² {r2['estimate']:.3f}{ci}")
            bits += [f"{k.upper()} {m[k]:.3g}" for k in ("mae", "rmse") if m.get(k) is not None]
        elif isinstance(m.get("auc"), dict) and m["auc"].get("estimate") is not None:
            bits.append(auc_text(m["auc"]) + (" (macro one-vs-rest)" if outcome == "multiclass" else ""))
        for k in ("sensitivity", "specificity", "accuracy"):
            if m.get(k) is not None:
                bits.append(f"{k} {m[k]:.2f}")
        return ", ".join(bits) or "no headline metric"

    outcome = metrics.get("outcome")
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
        text = f"cross-validated {headline(cvm, outcome)} ({how}, {n}"
        if rule_text and cvm.get("sensitivity") is not None:
            text += f"; thresholds chosen in each training fold: {rule_text}"
        parts.append(text + ")")
    per_site = metrics.get("per_site")
    if isinstance(per_site, dict) and per_site:
        parts.append("per held-out site: " + ", ".join(f"`{site}` {headline(m, outcome)}" for site, m in sorted(per_site.items())))
    ext = metrics.get("external")
    if isinstance(ext, dict):
        text = f"external `{ext.get('cohort', 'external')}` ({ext.get('n_predictions')} cases) {headline(ext, outcome)}"
        if ext.get("threshold") is not None and ext.get("sensitivity") is not None:
            text += f" at threshold {ext['threshold']:.3f}" + (f" (chosen on training data: {rule_text})" if rule_text else "")
        parts.append(text)
    lines = [f"{metrics.get('stage')}: " + ("; ".join(parts) if parts else "no predictions")]
    if files:
        lines.append(f"{metrics.get('stage')}: wrote " + ", ".join(files))
    return lines
