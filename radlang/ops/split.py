"""`folds`: a cross-validation split declared once, which several validations share.

    split cvs = folds(train) { cv: stratified_kfold(5, repeats: 2) }
    validate v_clin = evaluate(clin, split: cvs)
    validate v_rad  = evaluate(rad, split: cvs)
    validate cmp    = compare(v_clin, v_rad)       # paired: the same held-out folds for every model

An `evaluate` draws its own folds from its own seed, so two validations of one cohort hold out different cases,
and their predictions cannot be paired. A `split` stage draws the folds once, per patient (a patient's cases are
always held out together), stratified by the outcome (the event indicator for survival), and records which fold
holds out each case in each repeat: <out>/splits/<stage>.csv. Every `evaluate` given `split:` holds out exactly
those cases, whatever its own features; `compare` pairs their predictions case by case.

`fold_assignment` and `splits_from_assignment` are self-contained: the renderer inlines them.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from radlang.ops.fold_engine import make_splits
from radlang.ops.validate import KFoldCV, LeaveOneSiteOut, StratifiedKFoldCV
from radlang.registry import Operator, Port, register
from radlang.types import RType
from radlang.values import Settings, variants

# ----------------------------------------------------------------------------------------------
# self-contained implementation


def fold_assignment(case_ids, patient_ids, splits):
    """The held-out fold of every case in every repeat, as a table (case_id, patient_id, repeat, fold), sorted by
    repeat then case order. splits: [(repeat, fold, train_idx, test_idx)] over the rows of case_ids."""
    import pandas as pd

    rows = []
    for rep, fold, _, te in splits:
        for i in te:
            rows.append((int(rep), str(case_ids[i]), str(patient_ids[i]), int(fold), int(i)))
    rows.sort(key=lambda r: (r[0], r[4]))
    return pd.DataFrame([(c, p, r, f) for r, c, p, f, _ in rows], columns=["case_id", "patient_id", "repeat", "fold"])


def splits_from_assignment(assignment, case_ids):
    """[(repeat, fold, train_idx, test_idx)] over the rows of case_ids, as the shared split assigns them: in each
    repeat, fold f holds out the cases the assignment puts in f, and trains on the other rows. Returns
    (splits, the case ids the assignment does not hold)."""
    import numpy as np

    ids = [str(c) for c in case_ids]
    missing = sorted(set(ids) - set(assignment["case_id"].astype(str)))
    out = []
    for rep in sorted({int(r) for r in assignment["repeat"]}):
        a = assignment[assignment["repeat"].astype(int) == rep]
        fold_of = dict(zip(a["case_id"].astype(str), a["fold"].astype(int)))
        f = np.array([fold_of.get(c, -1) for c in ids])
        for fold in sorted({int(x) for x in a["fold"]}):
            out.append((rep, fold, np.flatnonzero((f != fold) & (f >= 0)), np.flatnonzero(f == fold)))
    return out, missing


# ----------------------------------------------------------------------------------------------
# run time


def _split_problems(stage, cohort_name, df, cv, y_strat, groups, sites):
    """Why the folds cannot be drawn on this cohort (E692), before scikit-learn is asked to."""
    import numpy as np

    from radlang.diagnostics import Diagnostic

    n = len(df)
    if cv["kind"] == "leave_one_site_out":
        found = len(set(sites)) if sites is not None else 0
        if found < 2:
            return [Diagnostic("E692", f"`{stage.name}`: leave-one-site-out needs at least 2 sites in cohort `{cohort_name}`, found {found}",
                               stage.span, hint="add a `site:` column with several sites, or use `stratified_kfold(5)`")]
        return []
    k = int(cv["k"])
    ng = len(set(groups))
    if ng < k:
        return [Diagnostic("E692", f"`{stage.name}`: cohort `{cohort_name}` has {n} cases from {ng} patients, fewer than the {k} folds",
                           stage.span, hint=f"use `{cv['kind']}({max(2, ng)})` or add cases")]
    if cv["kind"] == "stratified_kfold" and y_strat is not None:
        classes, counts = np.unique(y_strat, return_counts=True)
        if len(classes) < 2 or counts.min() < k:
            small = classes[int(np.argmin(counts))]
            return [Diagnostic("E692", f"`{stage.name}`: cohort `{cohort_name}` has {counts.min()} case(s) with outcome {small}, fewer than "
                               f"the {k} stratified folds", stage.span,
                               hint=f"use `stratified_kfold({max(2, int(counts.min()))})`" if len(classes) > 1 else "a split stratified by "
                               "the outcome needs cases of at least two classes")]
    return []


def run_folds(stage, ctx):
    """Draw the folds on the cohort's cases and write <out>/splits/<stage>.csv; the value is the assignment table."""
    from radlang.backends.cache import atomic_write_bytes
    from radlang.backends.executor import RunError

    cohort_name = stage.inputs["cohort"].stage
    df = ctx.results[cohort_name]
    cv = stage.params["cv"]
    outcome = stage.type.outcome
    col = "event" if outcome == "survival" else "outcome"
    y_strat = None
    if outcome in ("binary", "multiclass", "survival") and col in df.columns:     # the cohort's reader refused missing outcomes
        y_strat = df[col].astype(int).to_numpy()
    gattr = (cv.get("groups") or "").rpartition(".")[2] or "patient"
    groups = df[{"id": "case_id", "patient": "patient_id", "site": "site"}[gattr]].astype(str).to_numpy()
    sites = df["site"].astype(str).to_numpy() if "site" in df.columns else None
    errs = _split_problems(stage, cohort_name, df, cv, y_strat, groups, sites)
    if errs:
        raise RunError(errs)
    splits = make_splits(cv, y_strat, groups, sites, stage.seed)
    table = fold_assignment(df["case_id"].astype(str).to_numpy(), df["patient_id"].astype(str).to_numpy(), splits)
    data = table.to_csv(index=False, lineterminator="\n").encode("utf-8")
    atomic_write_bytes(ctx.out / "splits" / f"{stage.name}.csv", data)
    ctx.keys[stage.name] = ctx.stage_key(stage, data.decode("utf-8"))
    return table


def shared_splits(stage, split_name, assignment, case_ids, cohort_name):
    """The folds of a validation that holds out a shared split: [(repeat, fold, train_idx, test_idx)] over its rows.
    A case the split does not assign is E693 (the split and the validation must see the same cases)."""
    from radlang.backends.executor import RunError
    from radlang.diagnostics import Diagnostic

    splits, missing = splits_from_assignment(assignment, case_ids)
    if missing:
        raise RunError([Diagnostic("E693", f"`{stage.name}`: {len(missing)} case(s) of cohort `{cohort_name}` are in no fold of the shared "
                                   f"split `{split_name}`: {', '.join(missing[:8])}" + (" ..." if len(missing) > 8 else ""), stage.span,
                                   hint=f"draw `{split_name}` on the cohort `{stage.name}` validates")])
    return splits


# ----------------------------------------------------------------------------------------------
# declaration


class FoldsSettings(Settings):
    cv: StratifiedKFoldCV | KFoldCV | LeaveOneSiteOut = Field(
        default_factory=lambda: StratifiedKFoldCV(k=5, repeats=1),
        description="stratified_kfold(k, repeats: r) | kfold(k, repeats: r) | leave_one_site_out; always group-aware by patient")

    _cv = field_validator("cv", mode="before")(lambda cls, v: variants(StratifiedKFoldCV, KFoldCV, LeaveOneSiteOut).func(v))


def _folds_infer(ctx):
    coh = ctx.inputs["cohort"]
    s = ctx.settings
    if isinstance(s.cv, LeaveOneSiteOut) and not coh.has_site:
        ctx.error("E247", f"`leave_one_site_out` needs sites, but cohort `{coh.cohort}` has no site column", setting="cv",
                  hint=f"add `site: <column>` to `{coh.cohort}`, or use `stratified_kfold(5)`")
    g = getattr(s.cv, "groups", None)
    if g is not None:
        parts = g.split(".")
        if len(parts) != 2 or parts[1] not in ("id", "patient", "site"):
            ctx.error("E304", f"cv `groups: {g}` names a cohort attribute: `{coh.cohort}.patient`, `.id` or `.site`", setting="cv")
        elif parts[0] != coh.cohort:
            ctx.error("E242", f"cv `groups` comes from cohort `{parts[0]}`, but the split is drawn on `{coh.cohort}`", setting="cv")
        elif parts[1] == "site" and not coh.has_site:
            ctx.error("E247", f"cohort `{coh.cohort}` has no site column to group by", setting="cv")
    if not coh.outcome:
        ctx.error("E203", f"cohort `{coh.cohort}` has no outcome to validate against: a split is drawn on the cases a model is validated on",
                  port="cohort", hint="draw the split on the cohort whose outcome the models predict")
    return RType("Split", cohort=coh.cohort, outcome=coh.outcome, has_site=coh.has_site, split=ctx.stmt.name,
                 detail="cross-validation split")


def _folds_plan(stage, memory, study=None):
    cv = stage.params["cv"]
    if cv["kind"] == "leave_one_site_out":
        how = "one held-out fold per site"
    else:
        how = f"{cv['k']}-fold x {cv.get('repeats', 1)} repeat(s), drawn once"
    return [("info", how + "; every validation given `split:` holds out the same cases (written to splits/"
             f"{stage.name}.csv)"), ("info", "group-aware: cases of one patient are held out together")]


register(Operator(
    name="folds", kind="split", output="Split", settings=FoldsSettings, positional=("cohort", "cv"),
    inputs=(Port("cohort", ("Cohort",), doc="the cohort the validations cross-validate"),),
    behaviour="stateless", run=run_folds, impl=fold_assignment, helpers=(splits_from_assignment, make_splits),
    infer=_folds_infer, plan=_folds_plan,
    doc="Cross-validation folds drawn once (group-aware by patient, stratified by the outcome) and shared: every `evaluate` "
        "given `split:` holds out the same cases in the same folds, so their predictions can be compared pair by pair "
        "(`compare`). Writes <out>/splits/<stage>.csv (case, patient, repeat, held-out fold).",
    examples=("split cvs = folds(train) { cv: stratified_kfold(5, repeats: 2) }",),
))
