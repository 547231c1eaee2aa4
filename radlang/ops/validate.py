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
the metrics under <out>/plots/<stage>/. This module declares the operator; its run-time code is
radlang/ops/evaluation_run.py, its self-contained parts (the renderer inlines them) are fold_engine.py,
clinical_metrics.py, evaluation_plots.py and evaluation_summary.py.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Literal

from pydantic import Field, field_validator

from radlang.ops.clinical_metrics import (
    auc_rank,
    binary_metrics,
    calibration_stats,
    evaluation_csv,
    evaluation_json,
    multiclass_metrics,
    net_benefit,
    patient_resamples,
    regression_metrics,
    round_floats,
)
from radlang.ops.evaluation_plots import evaluation_plots, write_evaluation_plots
from radlang.ops.evaluation_run import fold_pipeline_code, fold_worker_imports, run_evaluate
from radlang.ops.evaluation_summary import cv_description, evaluation_summary
from radlang.ops.fold_engine import (
    choose_threshold,
    fitted_selections,
    held_out_heads,
    make_splits,
    model_artefact,
    run_fold,
    skops_io,
    survival_predictions,
)
from radlang.ops.survival_metrics import (
    SURVIVAL_METRIC_HELPERS,
    evaluation_times,
    horizon_problems,
    survival_metrics,
    survival_plots,
)
from radlang.registry import Operator, Port, register
from radlang.types import RType
from radlang.values import Rule, Settings, Sym, Variant, out_of_range, variants

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
    seed: int | None = Field(None, description="seed of the splits (default: the stage's own): validations of one cohort with one seed use the same folds")

    _g = field_validator("groups", mode="before")(lambda cls, v: _groups_ref(v))


class KFoldCV(Variant):
    call_name = "kfold"
    positional = ("k",)
    k: int = Field(5, ge=2)
    repeats: int = Field(1, ge=1)
    groups: str | None = Field(None, description="`train.patient` (default), `train.id` or `train.site`")
    seed: int | None = Field(None, description="seed of the splits (default: the stage's own): validations of one cohort with one seed use the same folds")

    _g = field_validator("groups", mode="before")(lambda cls, v: _groups_ref(v))


class LeaveOneSiteOut(Variant):
    call_name = "leave_one_site_out"


class NoCV(Variant):
    call_name = "none"


BINARY_METRICS = ("auc", "roc", "sensitivity", "specificity", "accuracy", "brier", "calibration", "net_benefit")
SURVIVAL_METRICS = ("c_index", "uno_c", "td_auc", "brier", "ibs", "calibration", "km")
HORIZON_METRICS = ("td_auc", "brier", "ibs", "calibration")   # survival metrics at stated horizons
MULTICLASS_METRICS = ("auc", "accuracy", "log_loss")
REGRESSION_METRICS = ("r2", "mae", "rmse")   # continuous outcomes (a network model's regression head)
ALL_METRICS = tuple(sorted(set(BINARY_METRICS + SURVIVAL_METRICS + MULTICLASS_METRICS + REGRESSION_METRICS)))


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
                          "c_index", "uno_c", "td_auc", "ibs", "km", "log_loss"]] | None = Field(
        None, description="default: every metric that fits the outcome (survival: those at horizons only with `horizons`)")
    horizons: list[float] | None = Field(None, description=("survival: times (in the outcome's unit) at which the time-dependent AUC, "
                                                            "Brier score and calibration are computed, ascending"))
    ibs_points: int = Field(50, ge=2, le=10000, description="survival: times from the first to the last horizon for the integrated Brier score")
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

    @field_validator("horizons")
    @classmethod
    def _h(cls, v):
        if v is not None and (not v or any(h <= 0 for h in v) or any(b <= a for a, b in pairwise(v))):
            raise out_of_range("`horizons` lists times greater than 0 in ascending order, e.g. [365, 730, 1095]")
        return v

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
        allowed = {"binary": BINARY_METRICS, "survival": SURVIVAL_METRICS, "multiclass": MULTICLASS_METRICS,
                   "continuous": REGRESSION_METRICS}.get(task, ())
        for x in s.metrics:
            if x not in allowed:
                if x in REGRESSION_METRICS:
                    msg = f"`{x}` is a metric for continuous outcomes, but the model's outcome is {task}"
                elif x in SURVIVAL_METRICS and x not in BINARY_METRICS:
                    msg = f"`{x}` needs a survival outcome, but `{ctx.stmt.op.name}` evaluates a {task} model"
                else:
                    msg = f"`{x}` is a metric for {'binary' if x in BINARY_METRICS else 'multiclass'} outcomes, but the model's outcome is {task}"
                ctx.error("E245", msg, setting="metrics", hint=f"metrics for a {task} outcome: {', '.join(allowed) or 'none'}")
    if task == "survival" and not s.horizons:
        need = [x for x in s.metrics or () if x in HORIZON_METRICS]
        if need:
            ctx.error("E315", f"{', '.join(f'`{x}`' for x in need)} of a survival model {'is' if len(need) == 1 else 'are'} computed at "
                      "stated times, but the evaluation has no `horizons`", setting="metrics",
                      hint="add `horizons: [...]` (times in the outcome's unit, within follow-up), e.g. `horizons: [365, 730]`")
    if task == "survival" and s.horizons and len(s.horizons) < 2 and "ibs" in (s.metrics or ()):
        ctx.error("E317", "`ibs` integrates the Brier score from the first to the last horizon, but `horizons` lists one",
                  setting="horizons", hint="list at least two horizons, e.g. `horizons: [12, 24, 36]`, or drop `ibs`")
    if s.horizons and task != "survival":
        ctx.error("E316", f"`horizons` are times for survival metrics, but `{ctx.stmt.op.name}` evaluates a {task} model",
                  setting="horizons", hint="remove `horizons`")
    if s.threshold is not None and task != "binary":
        ctx.error("E246", f"an operating threshold needs a binary outcome; the model's outcome is {task}", setting="threshold")
    cohort = ctx.types.get(m.cohort) if m.cohort else None
    if isinstance(s.cv, LeaveOneSiteOut) and cohort is not None and not cohort.has_site:
        ctx.error("E247", f"`leave_one_site_out` needs sites, but cohort `{m.cohort}` has no site column", setting="cv",
                  hint=f"add `site: <column>` to `{m.cohort}`, or use `stratified_kfold(5)`")
    if m.site_adapted and not isinstance(s.cv, (LeaveOneSiteOut, NoCV)):
        ctx.error("E540", f"a {m.detail} adapts across sites, but this validation's folds would train it on the labels of the held-out "
                  "cases' own sites: the target site would not be unseen", setting="cv",
                  hint="use `cv: leave_one_site_out`, or `cv: none` with an `external` cohort from another site")
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
    split = ctx.inputs.get("split")
    if split is not None:
        _shared_split_checks(ctx, m, split)
    return RType("Evaluation", cohort=m.cohort, outcome=task, head=m.head, patch=m.patch, detail="evaluation",   # head, patch: a network
                 split=split.split if split else None)


def _shared_split_checks(ctx, m, split):
    """A shared split replaces `cv` and `groups` (E319), and is drawn on the model's own cohort (E242)."""
    given = set(ctx.settings.model_fields_set) | set(ctx.inputs)      # settings given (also through `like`), ports bound
    for what in ("cv", "groups"):
        if what in given:
            ctx.error("E319", f"`{what}` is given together with `split:`; the shared split decides the folds and what never straddles them",
                      setting=what if what == "cv" else None, port=what if what == "groups" else None,
                      hint=f"drop `{what}`, or set it on the `split` stage")
    if m.cohort and split.cohort != m.cohort:
        ctx.error("E242", f"the split is drawn on cohort `{split.cohort}`, but the model is trained on `{m.cohort}`", port="split",
                  hint=f"draw the split on `{m.cohort}`: `folds({m.cohort})`")


def _evaluate_reaches(stage, study=None) -> dict:
    """What the evaluation's run-time glue (ops/evaluation_run.py) calls only for some studies, by name: a survival
    outcome's target, horizons, metrics, plots and held-out predictions (also for a multi-task model, whose other heads
    may be survival heads), a multi-task model's head metrics, a shared split's folds. The glue looks them up here
    instead of naming them, so that a render of a study with none of these carries none of their code."""
    from radlang.ops.survival_models import survival_artefact, survival_target

    out = {}
    model = study.by_name().get(stage.extra.get("refit", {}).get("model")) if study is not None else None
    heads = bool(model is not None and model.params.get("heads"))
    if stage.type.outcome == "survival" or heads:
        out.update({f.__name__: f for f in (survival_target, evaluation_times, horizon_problems, survival_metrics, survival_plots,
                                            survival_predictions, survival_artefact)})
    if heads:
        from radlang.ops.multitask import head_metrics

        out["head_metrics"] = head_metrics
    if "split" in stage.inputs:
        from radlang.ops.split import shared_splits

        out["shared_splits"] = shared_splits
    return out


def evaluation_cv(stage, by) -> dict:
    """The cross-validation an evaluation runs: its shared split's (`split:`, ops/split.py), else its own `cv`.
    by: the study's stages by name."""
    ref = stage.inputs.get("split")
    return by[ref.stage].params["cv"] if ref is not None else stage.params["cv"]


def _evaluate_plan(stage, memory, study=None):
    """`radlang plan`: how many fits, and what is refit inside every training fold."""
    cv = evaluation_cv(stage, study.by_name()) if study is not None else stage.params["cv"]
    if cv["kind"] in ("stratified_kfold", "kfold"):
        n = int(cv["k"]) * int(cv.get("repeats", 1))
        how = f"{cv['k']}-fold x {cv.get('repeats', 1)} repeat(s) = {n} training folds"
    elif cv["kind"] == "leave_one_site_out":
        how = "one training fold per site"
    else:
        how = "no cross-validation"
    if "split" in stage.inputs:
        how += f", the folds of the shared split `{stage.inputs['split'].stage}`"
    ext = stage.inputs.get("external")
    lines = [("info", how + (f", plus 1 fit on every training case for the external cohort `{ext.stage}`" if ext else "")),
             ("info", "group-aware: cases of one patient never straddle a split")]
    refit = study.refit.get(stage.name) if study is not None else None
    if refit is not None:
        by = study.by_name()
        steps = [f"{n} ({by[n].op})" for n in refit.nodes]
        mp = by[refit.model].params
        pre = [] if mp.get("impute", "none") == "none" else ["impute"]     # network and late-fusion models have no such steps
        post = [] if mp.get("scale", "none") == "none" else ["scale"]
        thr = " -> threshold" if stage.type.outcome == "binary" else ""
        images = stage.extra.get("image_fits", [])
        if images:
            lines.append(("info", (f"image stages refit in each training fold: {', '.join(f'{n} ({by[n].op})' for n in images)}; "
                                   f"{', '.join(refit.sources)} extracted again per fold")))
        lines.append(("info", f"fold input: the columns of {', '.join(refit.sources)}"))
        lines.append(("info", "refit in each training fold: " + " -> ".join(pre + steps[:-1] + post + steps[-1:]) + thr))
        if len(refit.sources) > 1 or any(by[n].fit == "none" for n in refit.nodes):
            lines.append(("info", "refit graph: " + "; ".join(f"{a} -> {b}.{port}" for a, b, port in refit.edges)))
    for n, sentence in sorted(stage.extra.get("transductive", {}).items()):
        lines.append(("warning", f"transductive: `{n}`: {sentence}"))
    return lines


register(Operator(
    name="evaluate", kind="validate", output="Evaluation", settings=EvaluateSettings, positional=("model",),
    inputs=(Port("model", ("Model",), doc="a `model` stage"),
            Port("external", ("Cohort",), optional=True, doc="an external validation cohort (never fit on)"),
            Port("groups", ("Ids", "Site"), optional=True, doc="what must not straddle a split (default: the cohort's patient ids)"),
            Port("split", ("Split",), optional=True, doc="a shared `split` stage: hold out its folds (instead of `cv`)")),
    fit="outcome", behaviour="stateless", run=run_evaluate, sink=True, impl=run_fold, study_code=fold_pipeline_code,
    reaches=_evaluate_reaches, worker_imports=fold_worker_imports,
    version="3",   # 2: survival metrics inside folds (Uno's C, td-AUC, Brier, calibration, KM), survival predictions
    # 3: a `cox` / `survival_mlp` final model saved as JSON (models/<stage>.model.json); a survival search recorded as c_index
    helpers=(make_splits, choose_threshold, fitted_selections, held_out_heads, skops_io, model_artefact, auc_rank, patient_resamples, calibration_stats,
             net_benefit, binary_metrics, multiclass_metrics, regression_metrics, round_floats, evaluation_json, evaluation_csv, cv_description, evaluation_plots,
             write_evaluation_plots, evaluation_summary, survival_predictions) + SURVIVAL_METRIC_HELPERS,
    infer=_evaluate_infer, plan=_evaluate_plan,
    doc="Leakage-free validation: repeated, group-aware cross-validation (or leave-one-site-out) and an external cohort, "
        "with every fitted stage refit inside each training fold; with `split: s` it holds out the folds of a shared `split` stage "
        "instead (so that `compare` can pair models on them). Metrics: AUC with a bootstrap CI, ROC points, "
        "sensitivity/specificity at a threshold chosen on training data by a stated rule, Brier, calibration "
        "intercept/slope and curve, net benefit (dcurves); for survival models Harrell's and Uno's C, time-dependent AUC, "
        "Brier and integrated Brier score and calibration at `horizons`, and Kaplan–Meier risk groups with the log-rank test. "
        "Writes <out>/metrics/<stage>.json, <out>/predictions/<stage>.csv and plots under "
        "<out>/plots/<stage>/, each when its metric is listed: roc.png (`roc`), calibration.png (`calibration`), "
        "decision_curve.png (`net_benefit`); for survival outcomes calibration.png (`calibration`) and km.png (`km`).",
    examples=("validate v = evaluate(clf) { cv: stratified_kfold(5, repeats: 3), threshold: sensitivity >= 0.9, bootstrap: 1000 }",
              "validate v = evaluate(clf, split: cvs) { bootstrap: 1000 }"),
))
