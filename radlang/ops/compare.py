"""`compare`: several models validated on the same folds, compared pair by pair.

    split cvs = folds(train) { cv: stratified_kfold(5, repeats: 2) }
    validate v_clin = evaluate(clin, split: cvs)
    validate v_rad  = evaluate(rad, split: cvs)
    validate v_both = evaluate(both, split: cvs)
    validate cmp = compare(v_clin, v_rad, v_both) { bootstrap: 2000 }

The evaluations must hold out one shared split (E268) of one cohort (E266): then every case has one out-of-fold
prediction per model and repeat, and the models' predictions pair case by case. For a binary outcome, for
each pair of models (in the order written):

- the difference in AUC, with a bootstrap CI that resamples patients (all of a patient's cases and predictions
  go in or out together: the cases of one patient are not independent), on the out-of-fold predictions of every
  repeat stacked, the way `evaluate` reports each model's AUC;
- DeLong's test for two correlated AUCs (DeLong, DeLong & Clarke-Pearson, Biometrics 1988;44:837-845), computed
  with the fast algorithm of Sun & Xu (IEEE Signal Process Lett 2014;21:1389-1393), on one prediction per case:
  the mean of its out-of-fold probabilities over the repeats (with one repeat, the predictions themselves).

For a survival outcome the metric is Harrell's C-index (the mean over folds, as `evaluate` reports it: risk scores
of different fold models are not comparable), with the same patient bootstrap; DeLong's test is for AUCs and is not
computed. When every evaluation holds the same external cohort, its predictions (of the final models) are
compared the same way.

Writes <out>/metrics/<stage>.json, the comparison table <out>/metrics/<stage>.csv (one row per model and per
pair) and <out>/plots/<stage>/comparison.png, drawn from the JSON. The functions below `run_compare` are
self-contained: the renderer inlines them.
"""

from __future__ import annotations

from pydantic import Field

from radlang.ops.clinical_metrics import auc_rank, patient_resamples, round_floats
from radlang.registry import Operator, Port, register
from radlang.types import RType
from radlang.values import Settings

# ----------------------------------------------------------------------------------------------
# self-contained implementation


def delong_covariance(y, scores):
    """AUCs of several scores of the same cases and the covariance matrix of their estimates, by DeLong's method with
    Sun & Xu's fast algorithm (mid-ranks instead of the m x n comparisons). y: 0/1 per case; scores: (k, n).
    Returns (aucs [k], S [k, k])."""
    import numpy as np
    from scipy.stats import rankdata

    y = np.asarray(y).astype(bool)
    scores = np.atleast_2d(np.asarray(scores, dtype=float))
    x, z = scores[:, y], scores[:, ~y]          # positives (m), negatives (n)
    m, n = x.shape[1], z.shape[1]
    tx = rankdata(x, axis=1)
    tz = rankdata(z, axis=1)
    t = rankdata(np.concatenate([x, z], axis=1), axis=1)
    aucs = (t[:, :m].sum(axis=1) / m - (m + 1) / 2.0) / n
    v10 = (t[:, :m] - tx) / n                   # structural components of the positives
    v01 = 1.0 - (t[:, m:] - tz) / m             # and of the negatives
    s10 = np.atleast_2d(np.cov(v10))
    s01 = np.atleast_2d(np.cov(v01))
    return aucs, s10 / m + s01 / n


def delong_test(y, p_a, p_b):
    """DeLong's test of H0: AUC(a) = AUC(b) for two scores of the same cases. Returns {auc_a, auc_b, difference,
    se, z, p}; two scores with the same ranks have a difference of 0, no variance, and p = 1."""
    import math

    import numpy as np
    from scipy.stats import norm

    aucs, S = delong_covariance(y, np.vstack([p_a, p_b]))
    diff = float(aucs[0] - aucs[1])
    var = float(S[0, 0] + S[1, 1] - 2 * S[0, 1])
    if var <= 1e-15 * max(1.0, float(S[0, 0] + S[1, 1])):
        return {"auc_a": float(aucs[0]), "auc_b": float(aucs[1]), "difference": diff, "se": 0.0,
                "z": 0.0 if diff == 0 else None, "p": 1.0 if diff == 0 else None}
    z = diff / math.sqrt(var)
    return {"auc_a": float(aucs[0]), "auc_b": float(aucs[1]), "difference": diff, "se": math.sqrt(var), "z": z, "p": float(2 * norm.sf(abs(z)))}


def harrell_c(time, event, risk):
    """Harrell's concordance index: over the comparable pairs (i had the event, and j a later time, or the same time
    censored), the fraction where i has the higher risk, ties in risk counting one half; the pairs and ties of
    scikit-survival's concordance_index_censored, which `evaluate` reports."""
    import numpy as np

    time = np.asarray(time, float)
    event = np.asarray(event).astype(bool)
    risk = np.asarray(risk, float)
    comparable = event[:, None] & ((time[:, None] < time[None, :]) | ((time[:, None] == time[None, :]) & ~event[None, :]))
    if not comparable.any():
        return None
    d = risk[:, None] - risk[None, :]
    return float(((d > 0) + 0.5 * (d == 0))[comparable].sum() / comparable.sum())


def fold_c_index(time, event, risk, folds):
    """The mean over folds of Harrell's C (folds without a comparable pair are left out), as `evaluate` reports it."""
    import numpy as np

    folds = np.asarray(folds)
    per = [c for c in (harrell_c(time[folds == f], event[folds == f], risk[folds == f]) for f in sorted(set(folds.tolist())))
           if c is not None]
    return float(np.mean(per)) if per else None


def compare_set(table, names, outcome, B, ci, seed, delong):
    """Compare the models on one set of paired predictions. table: one row per (repeat, case) with `patient_id`,
    `case_id`, `fold` (the repeat and held-out fold), the outcome (`outcome`, or `time` and `event`) and one column of
    predictions per model name (probability, or risk). Returns {metric, n_cases, n_patients, n_predictions, models,
    pairs}: each model's estimate with its bootstrap CI, and for each pair (a, b) the difference a - b with its CI
    and, for AUCs with `delong`, DeLong's test on the per-case mean prediction."""
    import itertools

    import numpy as np

    groups = table["patient_id"].astype(str).to_numpy()
    if outcome == "binary":
        y = table["outcome"].astype(int).to_numpy()

        def metric(ix, name):
            yy = y[ix]
            return auc_rank(yy, table[name].to_numpy()[ix]) if 0 < yy.sum() < len(yy) else None
    else:
        t, e = table["time"].astype(float).to_numpy(), table["event"].astype(int).to_numpy()
        folds = table["fold"].astype(str).to_numpy()

        def metric(ix, name):
            return fold_c_index(t[ix], e[ix], table[name].to_numpy()[ix], folds[ix])

    everything = np.arange(len(table))
    est = {n: metric(everything, n) for n in names}
    pairs = list(itertools.combinations(names, 2))
    boot = {n: [] for n in names}
    bdiff = {pr: [] for pr in pairs}
    kept = 0
    for ix in patient_resamples(groups, B, seed):
        vals = {n: metric(ix, n) for n in names}
        if any(v is None for v in vals.values()):
            continue
        kept += 1
        for n in names:
            boot[n].append(vals[n])
        for a, b in pairs:
            bdiff[(a, b)].append(vals[a] - vals[b])
    lo_q, hi_q = (1 - ci) / 2, 1 - (1 - ci) / 2

    def interval(xs):
        return (float(np.quantile(xs, lo_q)), float(np.quantile(xs, hi_q))) if xs else (None, None)

    models = {}
    for n in names:
        lo, hi = interval(boot[n])
        models[n] = {"estimate": est[n], "ci_low": lo, "ci_high": hi}
    per_case = table.groupby("case_id", sort=False)
    out_pairs = []
    for a, b in pairs:
        lo, hi = interval(bdiff[(a, b)])
        d = {"a": a, "b": b, "difference": None if est[a] is None or est[b] is None else est[a] - est[b], "ci_low": lo, "ci_high": hi}
        if outcome == "binary" and delong:
            mean = per_case[[a, b, "outcome"]].mean()
            if mean["outcome"].nunique() == 2:
                dl = delong_test(mean["outcome"].astype(int).to_numpy(), mean[a].to_numpy(), mean[b].to_numpy())
                d["delong"] = {"z": dl["z"], "p": dl["p"], "se": dl["se"], "auc_a": dl["auc_a"], "auc_b": dl["auc_b"], "cases": len(mean)}
        out_pairs.append(d)
    return {"metric": "auc" if outcome == "binary" else "c_index", "n_predictions": len(table), "n_cases": int(table["case_id"].nunique()),
            "n_patients": len(set(groups)), "models": models, "pairs": out_pairs, "bootstrap": kept}


def comparison_csv(result):
    """The comparison table: one row per model and per pair, for each compared set (cross-validation, external)."""
    import csv
    import io

    def num(v):
        return "" if v is None else f"{v:.12g}"

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["set", "metric", "row", "model_a", "model_b", "estimate", "ci_low", "ci_high", "delong_z", "delong_p"])
    for set_name in ("cross_validation", "external"):
        r = result.get(set_name)
        if not isinstance(r, dict):
            continue
        for n in result["order"]:
            m = r["models"][n]
            w.writerow([set_name, r["metric"], "model", n, "", num(m["estimate"]), num(m["ci_low"]), num(m["ci_high"]), "", ""])
        for pr in r["pairs"]:
            dl = pr.get("delong") or {}
            w.writerow([set_name, r["metric"], "difference", pr["a"], pr["b"], num(pr["difference"]), num(pr["ci_low"]), num(pr["ci_high"]),
                        num(dl.get("z")), num(dl.get("p"))])
    return buf.getvalue().encode("utf-8")


def comparison_plot(result):
    """PNG bytes of the comparison, from its metrics dict only: each model's estimate with its CI (left) and each
    pair's difference with its CI and DeLong p (right), for each compared set. Fixed size and dpi, no metadata."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    sets = [(s, result[s]) for s in ("cross_validation", "external") if isinstance(result.get(s), dict)]
    colours = {"cross_validation": "#1f77b4", "external": "#d62728"}
    fig = Figure(figsize=(10, 4.5))
    left, right = fig.subplots(1, 2)
    label = "AUC" if result.get("metric") == "auc" else "C-index"
    for k, (s, r) in enumerate(sets):
        off = 0.15 * (k - (len(sets) - 1) / 2)
        names = list(result["order"])
        for i, n in enumerate(names):
            m = r["models"][n]
            if m["estimate"] is None:
                continue
            err = [[m["estimate"] - m["ci_low"]], [m["ci_high"] - m["estimate"]]] if m["ci_low"] is not None else None
            left.errorbar(m["estimate"], i + off, xerr=err, fmt="o", color=colours[s], capsize=3, label=s.replace("_", "-") if i == 0 else None)
        left.set_yticks(range(len(names)), names)
        for i, pr in enumerate(r["pairs"]):
            if pr["difference"] is None:
                continue
            err = [[pr["difference"] - pr["ci_low"]], [pr["ci_high"] - pr["difference"]]] if pr["ci_low"] is not None else None
            right.errorbar(pr["difference"], i + off, xerr=err, fmt="s", color=colours[s], capsize=3)
            p = (pr.get("delong") or {}).get("p")
            if p is not None:
                right.annotate(f"p={p:.3g}", (pr["difference"], i + off), textcoords="offset points", xytext=(6, 4), fontsize=7, color=colours[s])
        right.set_yticks(range(len(r["pairs"])), [f"{pr['a']} - {pr['b']}" for pr in r["pairs"]])
    if result.get("metric") == "auc":
        left.axvline(0.5, color="grey", lw=0.8, ls=":")
    right.axvline(0.0, color="grey", lw=0.8, ls="--")
    ci = f"{100 * float(result.get('ci', 0.95)):g}% CI, patient bootstrap"
    left.set_xlabel(f"{label} ({ci})")
    right.set_xlabel(f"difference in {label} ({100 * float(result.get('ci', 0.95)):g}% CI" + ("; DeLong p)" if result.get("metric") == "auc" else ")"))
    left.set_title(f"`{result.get('stage', '')}`: models on split `{result.get('split', '')}`", fontsize=9)
    right.set_title("pairwise differences", fontsize=9)
    for ax in (left, right):
        ax.grid(True, alpha=0.3)
        ax.invert_yaxis()
    if sets:
        left.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    return buf.getvalue()


def paired_predictions(frames, names, set_name, outcome):
    """One table of the models' predictions of one set, paired by (repeat, case): the rows every model predicts.
    frames: {name: predictions DataFrame as `evaluate` writes it}. Returns (table, the number of rows left out)."""
    col = "probability" if outcome == "binary" else "risk"
    keys = ["repeat", "case_id"]
    out_cols = ["outcome"] if outcome == "binary" else ["time", "event"]
    table, total = None, 0
    for n in names:
        f = frames[n]
        f = f[f["set"] == set_name]
        total = max(total, len(f))
        part = f[keys + ["fold", "patient_id"] + out_cols + [col]].rename(columns={col: n}) if table is None else f[keys + [col]].rename(columns={col: n})
        table = part if table is None else table.merge(part, on=keys, how="inner")
    table = table.assign(case_id=table["case_id"].astype(str)).sort_values(keys, kind="stable").reset_index(drop=True)
    table["fold"] = table["repeat"].astype(str) + ":" + table["fold"].astype(str)
    return table, total - len(table)


# ----------------------------------------------------------------------------------------------
# run time


def run_compare(stage, ctx):
    import json

    from radlang.backends.cache import atomic_write_bytes
    from radlang.ops.clinical_metrics import evaluation_json

    names = [stage.inputs[p].stage for p in sorted(stage.inputs)]
    p = stage.params
    ck = ctx.stage_key(stage)
    ctx.keys[stage.name] = ck
    cached = ctx.cache.get(ck)
    if cached is None:
        by = ctx.study.by_name()
        outcome = by[names[0]].type.outcome
        frames = {n: ctx.results[n]["predictions"] for n in names}
        mets = {n: ctx.results[n]["metrics"] for n in names}
        result = {"stage": stage.name, "outcome": outcome, "order": names, "metric": "auc" if outcome == "binary" else "c_index",
                  "split": by[names[0]].type.split, "cohort": by[names[0]].type.cohort, "bootstrap": p["bootstrap"], "ci": p["ci"],
                  "seed": stage.seed, "models": {n: {"model": mets[n]["model"], "features": mets[n]["features"],
                                                     "pipeline": mets[n]["pipeline"]} for n in names}}
        warns = []
        externals = {(mets[n].get("external") or {}).get("cohort") for n in names}
        sets = ["cv"] + (["external"] if len(externals) == 1 and None not in externals else [])
        if len(externals) > 1:
            warns.append(f"`{stage.name}`: the evaluations hold different external cohorts (or none): only the cross-validation is compared")
        for s in sets:
            table, lost = paired_predictions(frames, names, s, outcome)
            if lost:
                warns.append(f"`{stage.name}`: {lost} prediction(s) of the {s} set are not made by every model (a case without features) "
                             f"and are left out of the comparison")
            key = "cross_validation" if s == "cv" else "external"
            result[key] = compare_set(table, names, outcome, int(p["bootstrap"]), float(p["ci"]), stage.seed, outcome == "binary")
            if s == "external":
                result[key]["cohort"] = next(iter(externals))
        result["warnings"] = warns
        mbytes = evaluation_json(result)
        shown = json.loads(mbytes.decode("utf-8"))
        cached = (mbytes, comparison_csv(shown), comparison_plot(shown), warns)
        ctx.cache.put(ck, cached)
    mbytes, cbytes, png, warns = cached
    ctx.warnings.extend(warns)
    atomic_write_bytes(ctx.out / "metrics" / f"{stage.name}.json", mbytes)
    atomic_write_bytes(ctx.out / "metrics" / f"{stage.name}.csv", cbytes)
    atomic_write_bytes(ctx.out / "plots" / stage.name / "comparison.png", png)
    shown = json.loads(mbytes.decode("utf-8"))
    cv = shown["cross_validation"]
    label = "AUC" if shown["metric"] == "auc" else "C-index"
    parts = []
    for pr in cv["pairs"]:
        t = f"{pr['a']} - {pr['b']}: {label} difference " + ("n/a" if pr["difference"] is None else f"{pr['difference']:+.3f}")
        if pr["ci_low"] is not None:
            t += f" [{pr['ci_low']:+.3f}, {pr['ci_high']:+.3f}]"
        if (pr.get("delong") or {}).get("p") is not None:
            t += f", DeLong p = {pr['delong']['p']:.3g}"
        parts.append(t)
    ctx.summary.append(f"{stage.name}: {len(names)} models on the folds of `{shown['split']}` ({cv['n_cases']} cases): " + "; ".join(parts)
                       + f"; wrote metrics/{stage.name}.json, metrics/{stage.name}.csv, plots/{stage.name}/comparison.png")
    return shown


# ----------------------------------------------------------------------------------------------
# declaration


class CompareSettings(Settings):
    bootstrap: int = Field(2000, ge=0, description="bootstrap resamples (by patient) for the CIs of each model and of each difference")
    ci: float = Field(0.95, gt=0, lt=1, description="confidence level")


PORTS = ("eval1", "eval2", "eval3", "eval4")


def _compare_infer(ctx):
    ins = [(p, ctx.inputs[p]) for p in PORTS if p in ctx.inputs]
    first_port, first = ins[0]
    for port, t in ins:
        if t.outcome not in ("binary", "survival"):
            ctx.error("E267", f"`compare` compares AUCs (binary outcomes) or C-indices (survival); `{port}` evaluates a {t.outcome} model",
                      port=port)
        if t.cohort != first.cohort:
            ctx.error("E266", f"the models of one comparison must be validated on one cohort: `{port}` is on `{t.cohort}`, "
                      f"`{first_port}` on `{first.cohort}`", port=port, hint="compare models of the same cases: validate each on the same cohort")
        elif t.outcome != first.outcome:
            ctx.error("E267", f"`{port}` evaluates a {t.outcome} outcome, `{first_port}` a {first.outcome} one", port=port)

    hint = "declare the folds once (`split cvs = folds(train) { ... }`) and give each evaluation `split: cvs`"
    unshared = [port for port, t in ins if t.split is None]
    if unshared:
        ctx.error("E268", f"{', '.join(f'`{p}`' for p in unshared)} draw{'s' if len(unshared) == 1 else ''} its own folds: "
                  "the models would be compared on different held-out cases", port=unshared[0], hint=hint)
    elif len({t.split for _, t in ins}) > 1:
        ctx.error("E268", "the evaluations hold out different splits: " + ", ".join(f"`{p}` `{t.split}`" for p, t in ins), port=ins[1][0], hint=hint)
    return RType("Evaluation", cohort=first.cohort, outcome=first.outcome, split=first.split, detail="model comparison")


def _compare_plan(stage, memory, study=None):
    names = [stage.inputs[p].stage for p in PORTS if p in stage.inputs]
    metric = "AUC" if stage.type.outcome == "binary" else "C-index"
    pairs = [f"{a} - {b}" for i, a in enumerate(names) for b in names[i + 1:]]
    lines = [("info", f"{metric} of {', '.join(names)} on the folds of `{stage.type.split}`; pairs: {'; '.join(pairs)}"),
             ("info", f"CIs from {stage.params['bootstrap']} bootstrap resamples of patients")]
    if stage.type.outcome == "binary":
        lines.append(("info", "DeLong's test on each case's out-of-fold probability (its mean over the repeats)"))
    return lines


register(Operator(
    name="compare", kind="validate", output="Evaluation", settings=CompareSettings, positional=PORTS,
    inputs=(Port("eval1", ("Evaluation",), doc="an `evaluate` stage given `split:`"),
            Port("eval2", ("Evaluation",), doc="another, on the same split"),
            Port("eval3", ("Evaluation",), optional=True, doc="another, on the same split"),
            Port("eval4", ("Evaluation",), optional=True, doc="another, on the same split")),
    behaviour="stateless", run=run_compare, sink=True, infer=_compare_infer, plan=_compare_plan, impl=compare_set,
    helpers=(delong_covariance, delong_test, patient_resamples, harrell_c, fold_c_index, auc_rank, round_floats,
             comparison_csv, comparison_plot, paired_predictions),
    doc="Paired comparison of up to four models validated on one shared split: each model's AUC (binary) or C-index "
        "(survival) and each pair's difference, with bootstrap CIs that resample patients, and DeLong's test for two "
        "correlated AUCs. Writes <out>/metrics/<stage>.json, the table <out>/metrics/<stage>.csv and "
        "<out>/plots/<stage>/comparison.png.",
    examples=("validate cmp = compare(v_clin, v_rad, v_both) { bootstrap: 2000 }",),
))
