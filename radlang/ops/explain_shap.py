"""SHAP explanations of a validation stage's final model (a scikit-learn pipeline), with the `shap` library.

    explain why = shap(v) { explainer: partition, max_evals: 500, group_by: [family, filter] }

What is explained: the final model that `evaluate` saved (models/<v>.skops, refit on every training case), as a
function of the feature columns it keeps (the columns its selectors kept; when its steps are not plain column
selections, every input column), on the training cohort's cases. The output is the probability of the positive
class (binary outcomes) or the predicted risk / value; `output: log_odds` explains the logistic margin instead.

The explainer is named, never chosen automatically, and its budget is bounded by `max_evals`:

- `partition` (default): Owen values over a feature hierarchy. Radiomic features are strongly collinear (a
  wavelet or LoG family measures one thing many times), so the hierarchy is a clustering of the features on the
  training cases (complete linkage on 1 - |Pearson r|), and a Partition masker over the background cases.
- `permutation`: sampled Shapley values (antithetic permutations, seeded) with an Independent masker;
  `max_evals` must be at least 2 x features + 1.
- `exact`: exact Shapley values with an Independent masker (2^features evaluations: at most 16 features).
- `linear`: the closed form of a linear model, phi_i = beta_i (x_i - mean x_i) over an Independent masker, for
  a pipeline whose margin is affine in its features (impute, selection, scaling, then logistic or Cox);
  verified on the training cases.

The background is `background` training cases drawn with the stage's seed (default: every training case).
With `per_fold: true`, each training fold's model is refit as the validation fit it and explained on its held-out
cases, with its background and hierarchy from that fold's training cases only (shap_folds.csv, long format:
repeat, fold, case, feature, value; shap.json's `folds`: mean |SHAP| and in how many folds each feature was kept).
Grouped values sum the members of a group (`group_by`): `family` (the PyRadiomics feature class: firstorder,
glcm, ...), `filter` (original, wavelet, log, ...) or `image_type` (wavelet-LLH, log-sigma-2-0-mm-3D, ...),
from PyRadiomics names `<image type>_<class>_<feature>`; other columns (clinical ones) form the group `other`.

Outputs under <out>/explain/<stage>/: shap_values.csv (case, base value, model output, one column per feature),
shap_<grouping>.csv, shap.json (settings, features, clustering, mean |SHAP| per feature and group, the largest
efficiency error), and PNGs beeswarm.png, bar.png, beeswarm_<grouping>.png, bar_<grouping>.png.

Only scikit-learn models are explained for now: a network (a `train` stage, or an `evaluate` stage of a `cnn` model) is a
type error in `radlang check` (E280).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from radlang.registry import Operator, Port, register
from radlang.types import RType
from radlang.values import Settings

# ----------------------------------------------------------------------------------------------
# self-contained implementation

def feature_groups(names, by):
    """{group: [member names]} of feature columns, by `family` (feature class), `filter` (image filter) or
    `image_type` (filter with its parameters), parsed from PyRadiomics names `<image type>_<class>_<feature>`
    (a `<table>.` prefix is allowed); a column that is not a PyRadiomics feature goes to the group `other`."""
    import re

    classes = ("shape2D", "shape", "firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm")   # PyRadiomics feature classes
    pattern = re.compile(r"^(?:.*\.)?([A-Za-z0-9-]+)_(" + "|".join(classes) + r")_(.+)$")
    groups: dict[str, list[str]] = {}
    for n in names:
        m = pattern.match(str(n))
        if m is None:
            g = "other"
        elif by == "family":
            g = m.group(2)
        elif by == "filter":
            g = m.group(1).split("-", 1)[0]
        else:
            g = m.group(1)
        groups.setdefault(g, []).append(str(n))
    return dict(sorted(groups.items()))


def grouped_values(values, names, groups):
    """(n cases x groups) array: each group's value is the sum of its members' values."""
    import numpy as np

    col = {n: i for i, n in enumerate(names)}
    return np.column_stack([np.asarray(values)[:, [col[m] for m in members]].sum(axis=1) for members in groups.values()])


def feature_clustering(train):
    """A hierarchy of the features from the training cases (n x k): complete linkage on 1 - |Pearson r| (a constant
    feature is at distance 1 from every other). A scipy linkage matrix, as shap's Partition masker takes it."""
    import numpy as np
    from scipy.cluster.hierarchy import linkage
    from scipy.spatial.distance import squareform

    X = np.asarray(train, dtype=float)
    k = X.shape[1]
    if k < 2:
        return np.zeros((0, 4))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.corrcoef(X, rowvar=False)
    d = 1.0 - np.abs(np.nan_to_num(r, nan=0.0))
    np.fill_diagonal(d, 0.0)
    return linkage(squareform(np.clip((d + d.T) / 2, 0.0, 1.0), checks=False), method="complete")


def linear_coefficients(f, x0):
    """(coefficients, intercept) of a function that is affine in its k inputs, from its values at x0 and at x0 plus
    each unit vector."""
    import numpy as np

    x0 = np.asarray(x0, dtype=float)
    k = x0.shape[0]
    pts = np.vstack([x0, x0 + np.eye(k)])
    v = np.asarray(f(pts), dtype=float)
    coef = v[1:] - v[0]
    return coef, float(v[0] - coef @ x0)


def shap_explain(f, X, background, train, explainer, max_evals, seed):
    """SHAP values of f (rows of k features -> one output each) at the rows of X: (values n x k, base values n,
    f(X)). `background` is the masker's data, `train` the training cases the Partition hierarchy is computed on."""
    import numpy as np
    import shap

    X = np.asarray(X, dtype=float)
    bg = np.asarray(background, dtype=float)
    if explainer == "partition":
        masker = shap.maskers.Partition(bg, max_samples=len(bg), clustering=feature_clustering(train))
        e = shap.explainers.PartitionExplainer(f, masker)
        res = e(X, max_evals=int(max_evals), silent=True)
    elif explainer == "permutation":
        e = shap.explainers.PermutationExplainer(f, shap.maskers.Independent(bg, max_samples=len(bg)), seed=int(seed))
        res = e(X, max_evals=int(max_evals), silent=True)
    elif explainer == "exact":
        e = shap.explainers.ExactExplainer(f, shap.maskers.Independent(bg, max_samples=len(bg)))
        res = e(X, max_evals=int(max_evals), silent=True)
    else:
        coef, b = linear_coefficients(f, bg.mean(axis=0))
        e = shap.explainers.LinearExplainer((coef, b), shap.maskers.Independent(bg, max_samples=len(bg)))
        res = e(X)
    values = np.asarray(res.values, dtype=float).reshape(len(X), X.shape[1])
    base = np.broadcast_to(np.asarray(res.base_values, dtype=float).reshape(-1), (len(X),)).copy()
    return values, base, np.asarray(f(X), dtype=float).reshape(-1)


def shap_plots(values, data, names, base, title, seed, max_display=15):
    """{"beeswarm.png": ..., "bar.png": ...}: shap's beeswarm (its layout jitter seeded with `seed`) and bar (mean |SHAP|)
    plots, at a fixed size and dpi with no metadata stamp, so the same values give the same bytes. `data` (the
    feature values that colour the beeswarm) may be None (grouped values have no single feature value)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import shap

    expl = shap.Explanation(values=np.asarray(values, dtype=float), base_values=np.asarray(base, dtype=float),
                            data=None if data is None else np.asarray(data, dtype=float), feature_names=list(names))
    out = {}
    for kind in ("beeswarm", "bar"):
        fig = plt.figure(figsize=(8, 0.4 * min(len(names), max_display) + 1.6), dpi=100)
        ax = fig.add_subplot(1, 1, 1)
        if kind == "beeswarm":     # its layout jitter draws from NumPy's global generator: seeded here, restored after
            state = np.random.get_state()
            np.random.seed(int(seed))
            try:
                shap.plots.beeswarm(expl, max_display=max_display, ax=ax, show=False, plot_size=None,
                                    color_bar=data is not None, **({} if data is not None else {"color": "#1E88E5"}))
            finally:
                np.random.set_state(state)
        else:
            shap.plots.bar(expl, max_display=max_display, ax=ax, show=False)
        ax.set_title(title, fontsize=9)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
        plt.close(fig)
        out[f"{kind}.png"] = buf.getvalue()
    return out


# ----------------------------------------------------------------------------------------------
# declaration

EXACT_MAX_FEATURES = 16


def _words(v):
    return [str(x) for x in v] if isinstance(v, list) else ([str(v)] if isinstance(v, str) else v)


class ShapSettings(Settings):
    explainer: Literal["partition", "permutation", "exact", "linear"] = Field(
        "partition", description="partition (Owen values over a feature clustering of the training cases), permutation, exact or linear")
    max_evals: int = Field(500, ge=1, description="model evaluations per explained case (partition, permutation, exact)")
    background: int | None = Field(None, ge=1, description="background cases drawn from the training cases with the stage's seed (default: all)")
    cases: int | None = Field(None, ge=1, description="explain only the first N training cases (default: all)")
    output: Literal["probability", "log_odds"] = Field("probability", description="binary outcomes: the probability or the logistic margin")
    per_fold: bool = Field(False, description="also explain each training fold's model (refit) on its held-out cases: shap_folds.csv")
    group_by: list[Literal["family", "filter", "image_type"]] = Field(
        default_factory=lambda: ["family", "filter"], description="groupings whose values sum their members' (PyRadiomics names)")

    _e = field_validator("explainer", "output", mode="before")(lambda cls, v: str(v) if isinstance(v, str) else v)
    _g = field_validator("group_by", mode="before")(lambda cls, v: _words(v))


def _shap_type(ctx) -> RType:
    m = ctx.inputs["model"]
    s = ctx.settings
    if m.kind == "TrainedModel" or m.head:
        what = m.describe() if m.kind == "TrainedModel" else f"{m.describe()} of a network model (`cnn`)"
        ctx.error("E280", f"SHAP explains a validation stage's scikit-learn model, but this is a {what}: a torch network",
                  port="model", hint="explain a network with `gradcam`; SHAP for networks is not available yet")
    elif m.outcome not in ("binary", "continuous", "survival"):
        what = f"a {m.outcome} outcome" if m.outcome else f"a {m.detail or 'validation'} without a model's predictions"
        ctx.error("E281", f"SHAP explains the final model of an `evaluate` stage with a binary, continuous or survival outcome, "
                  f"not {what}", port="model", hint="explain an `evaluate` stage of a `model`")
    elif s.output == "log_odds" and m.outcome != "binary":
        ctx.error("E331", f"`output: log_odds` needs a binary outcome; this model's outcome is {m.outcome}", setting="output")
    return RType("Explanation", cohort=m.cohort, outcome=m.outcome, detail="SHAP")


def _kept_columns(pipe, X, predict):
    """The input columns the final pipeline's output depends on: those its last top-level selector kept, when
    changing every other column leaves its predictions unchanged on the training cases; else every column."""
    import numpy as np

    from radlang.ops.fold_engine import fitted_selections

    est = getattr(pipe, "best_estimator_", pipe)
    sel = fitted_selections(est)
    top = [name for name, _ in getattr(est, "steps", []) if name in sel]
    kept = [c for c in sel[top[-1]] if c in X.columns] if top else []
    if not kept or len(kept) == X.shape[1]:
        return list(X.columns)
    other = [c for c in X.columns if c not in kept]
    shifted = X.copy()
    shifted[other] = shifted[other].to_numpy()[::-1] * 3.0 + 1.0
    return kept if np.allclose(predict(X), predict(shifted), rtol=0, atol=1e-12) else list(X.columns)


def _explain(stage, pipe, X, explain, outcome, what):
    """SHAP values of one fitted pipeline: trained on the rows of X (which give the background and the Partition
    hierarchy), explained at the rows of the table `explain`. `what` names the model in diagnostics ("the final model of `v`",
    "the model of fold 2 of repeat 1 of `v`"). Returns (kept columns, values, base values, outputs, background size)."""
    import numpy as np
    import pandas as pd

    from radlang.backends.executor import RunError
    from radlang.diagnostics import Diagnostic

    p = stage.params
    pipe = getattr(pipe, "best_estimator_", pipe)
    if outcome == "binary":
        predict = (lambda D: pipe.decision_function(D)) if p["output"] == "log_odds" else (lambda D: pipe.predict_proba(D)[:, 1])
    else:
        predict = pipe.predict
    medians = X.median()

    def full(Z, cols):
        D = pd.DataFrame(np.broadcast_to(medians.to_numpy(), (len(Z), X.shape[1])).copy(), columns=X.columns)
        D[cols] = np.asarray(Z, dtype=float)
        return D

    kept = _kept_columns(pipe, X, predict)
    f = (lambda Z: predict(full(Z, kept))) if len(kept) < X.shape[1] else (lambda Z: predict(pd.DataFrame(np.asarray(Z, dtype=float), columns=X.columns)))
    train = X[kept].to_numpy()
    n_bg = p.get("background")
    if n_bg is not None and n_bg > len(train):
        raise RunError([Diagnostic("E526", f"`{stage.name}`: a background of {n_bg} cases, but {what} was trained on {len(train)} cases",
                                   stage.span, hint=f"set `background` to at most {len(train)}, or leave it out to use every training case")])
    rng = np.random.default_rng(int(stage.seed))
    bg = train if n_bg is None or n_bg == len(train) else train[np.sort(rng.choice(len(train), int(n_bg), replace=False))]
    k, ex, budget = len(kept), p["explainer"], int(p["max_evals"])
    if ex == "exact" and k > EXACT_MAX_FEATURES:
        raise RunError([Diagnostic("E527", f"`{stage.name}`: the exact explainer needs 2^{k} model evaluations per case for the {k} "
                                   f"features of {what}", stage.span, hint="use `explainer: partition`")])
    if ex == "permutation" and budget < 2 * k + 1:
        raise RunError([Diagnostic("E527", f"`{stage.name}`: the permutation explainer needs `max_evals` >= {2 * k + 1} "
                                   f"(2 x {k} features of {what} + 1), not {budget}", stage.span, hint=f"set `max_evals: {2 * k + 1}` or more")])
    if ex == "linear":
        coef, b = linear_coefficients(f, train.mean(axis=0))
        err = float(np.max(np.abs(train @ coef + b - np.asarray(f(train), dtype=float))))
        if not err <= 1e-8 * max(1.0, float(np.max(np.abs(f(train))))):
            raise RunError([Diagnostic("E528", f"`{stage.name}`: {what} (output {p['output']}) is not linear in its features "
                                       f"(off by up to {err:.3g})", stage.span,
                                       hint="use `explainer: partition`; `linear` fits a logistic margin (`output: log_odds`) or a Cox risk")])
    values, base, fx = shap_explain(f, explain[kept].to_numpy(), bg, train, ex, budget, stage.seed)
    return kept, values, base, fx, len(bg)


def run_shap(stage, ctx):
    """SHAP values of the final model of the validation stage on its training cases (and, with `per_fold`, of each
    training fold's model on its held-out cases), grouped, plotted and written under <out>/explain/<stage>/."""
    import json

    import numpy as np
    import pandas as pd

    from radlang.backends.cache import atomic_write_bytes, atomic_write_text
    from radlang.backends.executor import RunError
    from radlang.backends.refit import assemble
    from radlang.ops.clinical_metrics import evaluation_csv
    from radlang.ops.fold_engine import run_fold
    from radlang.predict import PredictError, load_card, load_model

    p = stage.params
    v = ctx.study.stage(stage.inputs["model"].stage)
    try:
        card, data = load_card(ctx.out, v)
        pipe = load_model(data, v)
    except PredictError as e:
        raise RunError(e.diagnostics) from None
    cohort_df = ctx.results[card["cohort"]]
    X = assemble(ctx, v, card["refit"], card["cohort"])
    X.index = X.index.astype(str)
    ids = [c for c in cohort_df["case_id"].astype(str) if c in X.index]
    X = X.loc[ids, card["columns"]].astype(float)
    outcome, ex = card["outcome"], p["explainer"]
    rows = X.index if not p.get("cases") else X.index[:int(p["cases"])]
    kept, values, base, fx, n_bg = _explain(stage, pipe, X, X.loc[rows], outcome, f"the final model of `{v.name}`")

    folder = ctx.out / "explain" / stage.name
    table = pd.DataFrame({"case_id": list(rows), "base_value": base, "output": fx})
    atomic_write_bytes(folder / "shap_values.csv", evaluation_csv(pd.concat([table, pd.DataFrame(values, columns=kept)], axis=1)))
    title = f"{stage.name}: SHAP ({ex}) of the final model of {v.name}, {len(rows)} training cases"
    plots = shap_plots(values, X.loc[rows, kept].to_numpy(), kept, base, title, stage.seed)
    summary = {"stage": stage.name, "validation": v.name, "model": card["operator"], "cohort": card["cohort"], "explainer": ex,
               "max_evals": int(p["max_evals"]) if ex != "linear" else None, "background": n_bg, "cases": len(rows),
               "output": p["output"] if outcome == "binary" else "prediction", "features": kept,
               "clustering": "complete linkage on 1 - |Pearson r|, training cases" if ex == "partition" else None,
               "mean_abs": dict(zip(kept, np.abs(values).mean(axis=0).tolist())),
               "efficiency_max_error": float(np.max(np.abs(values.sum(axis=1) + base - fx))) if len(rows) else 0.0, "groups": {}}
    for by in p["group_by"]:
        groups = feature_groups(kept, by)
        gv = grouped_values(values, kept, groups)
        atomic_write_bytes(folder / f"shap_{by}.csv",
                           evaluation_csv(pd.concat([table, pd.DataFrame(gv, columns=list(groups))], axis=1)))
        summary["groups"][by] = {"members": groups, "mean_abs": dict(zip(groups, np.abs(gv).mean(axis=0).tolist()))}
        for name, png in shap_plots(gv, None, list(groups), base, f"{title}, by {by}", stage.seed).items():
            plots[name.replace(".png", f"_{by}.png")] = png
    if p["per_fold"]:
        long, errors = [], []
        for rep, fold, job in ctx.results[v.name]["folds"]():
            # the fold's pipeline, refit on its training rows and loaded as the final model is (skops, trusted types only)
            model = load_model(run_fold({**job, "rule": None, "save_model": True})["model_bytes"], v)
            Xf = job["X"].iloc[job["train"]]
            test_ids = list(job["X"].index[job["test"]])
            what = f"the model of fold {fold + 1} of repeat {rep + 1} of `{v.name}`"
            k_f, v_f, b_f, fx_f, _ = _explain(stage, model, Xf, job["X"].iloc[job["test"]], outcome, what)
            errors.append(float(np.max(np.abs(v_f.sum(axis=1) + b_f - fx_f))) if len(test_ids) else 0.0)
            for i, cid in enumerate(test_ids):
                long += [{"repeat": rep, "fold": fold, "case_id": cid, "feature": c, "value": float(v_f[i, j]), "base_value": float(b_f[i]),
                          "output": float(fx_f[i])} for j, c in enumerate(k_f)]
        per = pd.DataFrame(long, columns=["repeat", "fold", "case_id", "feature", "value", "base_value", "output"])
        atomic_write_bytes(folder / "shap_folds.csv", evaluation_csv(per))
        explained = per.groupby(["repeat", "fold", "case_id"]).ngroups          # held-out cases, over every repeat
        summary["folds"] = {"folds": len(errors), "efficiency_max_error": max(errors, default=0.0),
                            # a feature a fold's model does not keep has no effect there: it counts as 0 in the mean
                            "mean_abs": (per["value"].abs().groupby(per["feature"]).sum() / max(explained, 1)).to_dict(),
                            "kept_in": per.drop_duplicates(["repeat", "fold", "feature"]).groupby("feature").size().to_dict()}
    for name, png in sorted(plots.items()):
        atomic_write_bytes(folder / name, png)
    atomic_write_text(folder / "shap.json", json.dumps(summary, indent=2, sort_keys=True) + "\n")
    ctx.keys[stage.name] = ctx.stage_key(stage)
    ctx.summary.append(f"{stage.name}: SHAP ({ex}) of {len(kept)} features for {len(rows)} cases -> explain/{stage.name}/")
    return summary


register(Operator(
    name="shap", kind="explain", output="Explanation", settings=ShapSettings, behaviour="stateless", run=run_shap, sink=True,
    inputs=(Port("model", ("Evaluation", "TrainedModel"), doc="an `evaluate` stage: its final model is explained"),),
    positional=("model",), infer=_shap_type, impl=shap_explain, version="1",
    helpers=(feature_clustering, linear_coefficients, feature_groups, grouped_values, shap_plots),
    doc=("SHAP values (shap) of a validation stage's final scikit-learn model on its training cases (and, with `per_fold`, of each "
         "fold's model on its held-out cases): an explicitly chosen "
         "explainer (partition over a feature clustering of the training cases, permutation, exact, linear) with bounded "
         "`max_evals`; values grouped by PyRadiomics feature family, filter or image type; CSV, JSON and beeswarm / bar PNGs "
         "under <out>/explain/<stage>/."),
    examples=("explain why = shap(v) { explainer: partition, max_evals: 200, per_fold: true, group_by: [family, filter] }",),
))
