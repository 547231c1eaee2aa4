"""An inner cross-validation that cannot fit in the training folds, found from the cohort's size (E652).

A fitted stage that declares `inner_cv` (e.g. `lasso`, whose penalty is chosen by an inner CV with `cv` folds)
runs that inner CV on each training fold of the validation that refits it (its refit graph). scikit-learn's stratified inner CV fails when every class of a training fold has fewer cases than
`cv` (a continuous outcome: when the training fold has fewer cases than `cv`). Where the cohort's size is known
before running (a phantom, or a manifest's rows read by radlang/checks/data.py), a stratified outer k-fold puts
m - ceil(m/k) or m - floor(m/k) cases of a class with m cases into each training fold (scikit-learn's
StratifiedKFold spreads every class evenly), so a setting that fails in every fold is an error here, and the
largest value that works in every fold is known. The inner folds that choose a binary threshold
(`threshold_cv`) refit the chain on a part of each training set, and count the same way. Cohorts whose patients have several cases are split by
patient groups, whose sizes are not known here: the run checks those (radlang/ops/evaluation_run.py).
"""

from __future__ import annotations

from radlang import registry
from radlang.diagnostics import Diagnostic
from radlang.passes.fit_boundaries import refit_graph, validated_model


def _classes(counts: dict) -> str:
    return " and ".join(f"{n} of class `{c}`" for c, n in sorted(counts.items()))


def _spread(lo: dict, hi: dict, k: int) -> tuple[dict, dict]:
    """Cases per class in the training sets of a k-fold split that spreads every class evenly over the folds
    (scikit-learn's StratifiedKFold, and StratifiedGroupKFold when each patient has one case), from a set holding
    lo..hi cases of each class: m - ceil(m/k) .. m - floor(m/k)."""
    return {c: m - -(-m // k) for c, m in lo.items()}, {c: m - m // k for c, m in hi.items()}


def training_sets(st, task: str, fact: dict, cv: dict) -> list[tuple[str, dict, dict, bool]]:
    """The sets a validation fits its select stages on: [(what, lo, hi, sure)] with the fewest (lo) and most (hi)
    cases per class (`{"all": n}` for a continuous outcome), and whether the set surely exists."""
    from radlang.ops.validate import BINARY_METRICS

    p, name = st.params, st.name
    counts = fact["classes"] if task != "continuous" else {"all": fact["cases"]}
    out = []
    if cv["kind"] == "stratified_kfold" or (cv["kind"] == "kfold" and task == "continuous"):
        lo, hi = _spread(counts, counts, int(cv["k"]))
        out.append((f"the training folds of `{name}` ({cv['kind']}({cv['k']}))", lo, hi, True))
    if "external" in st.inputs:
        out.append((f"the final model of `{name}` (all cases, before the external cohort)", counts, counts, True))
    metrics = set(p.get("metrics") or BINARY_METRICS)
    kt = int(p.get("threshold_cv") or 0)
    if task == "binary" and kt >= 2 and (p.get("threshold") is not None or metrics & {"sensitivity", "specificity", "accuracy"}):
        # the threshold is chosen on out-of-fold predictions of inner folds of each of those sets, refitting the chain there
        for what, lo, hi, _ in list(out):
            if min(hi.values()) >= kt:     # they run only where every class has kt cases
                ilo, ihi = _spread({c: max(m, kt) for c, m in lo.items()}, hi, kt)
                out.append((f"the {kt} inner folds that choose the threshold (`threshold_cv: {kt}`) inside {what}", ilo, ihi,
                            min(lo.values()) >= kt))
    return out


def check_folds(stages: dict, bounds: dict, facts: dict, diags: list):
    for name in sorted(stages):
        st = stages[name]
        model_name = validated_model(st)
        model = stages.get(model_name) if model_name else None
        if model is None or "target" not in model.inputs:
            continue
        selects = [stages[n] for n in refit_graph(st, model, stages).nodes if n != model.name]
        cohort = model.inputs["target"].stage
        fact = facts.get(cohort)
        task = model.type.outcome
        if fact is None or fact["grouped"] or task not in ("binary", "multiclass", "continuous"):
            continue
        if task != "continuous" and not fact["classes"]:
            continue
        from radlang.ops.validate import evaluation_cv

        sets = training_sets(st, task, fact, evaluation_cv(st, stages))
        for s in selects:
            setting = registry.get(s.op).inner_cv
            if setting is None:
                continue
            c = int(s.params[setting])
            failing = next(((what, hi) for what, _, hi, sure in sets if sure and max(hi.values()) < c), None)
            if failing is None:
                continue                  # it may fail only for some orders of the data: the run checks it
            what, hi = failing
            ok = min(max(lo.values()) for _, lo, _, _ in sets)
            b = bounds.get(s.name)
            where = (b.spans.get((setting,)) or b.key_spans.get(setting)) if b is not None else None
            size = f"{fact['cases']} cases" + ("" if task == "continuous" else f": {_classes(fact['classes'])}")
            held = f"at most {hi['all']} cases" if task == "continuous" else f"at most {_classes(hi)}"
            need = f"at least {c} cases" if task == "continuous" else f"a class with at least {c} cases"
            msg = (f"`{s.name}.{setting}` is {c}{'' if where else ' (the default)'}, but `{s.name}` is refit in {what} on cohort "
                   f"`{cohort}` ({size}), each of which holds {held}; its inner {c}-fold CV needs {need}")
            hint = (f"set `{setting}: {ok}` on `{s.name}`: every training set allows it, whatever the order of the cases" if ok >= 2 else
                    f"no inner CV fits: use fewer folds in `{name}`, or add cases")
            diags.append(Diagnostic("E652", msg, where or s.span, hint=hint))
