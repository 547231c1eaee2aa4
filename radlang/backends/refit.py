"""What a validation stage refits in its training folds, made concrete at run time.

The `fit_boundaries` pass leaves each validation stage its refit graph (`stage.extra["refit"]`: the model, the
source feature tables, the nodes between them, the edges). From it this module builds:

- the fold input X: the source tables side by side, one row per case (a single source as it is; several
  sources matched like a join, their columns named `<source>.<column>`);
- the same table on another cohort (an external cohort, a perturbed re-extraction, a retest cohort), through
  each source operator's own `on_cohort`;
- the recipe of the fitted graph as plain data (`{"source": ...}`, `{"step": ...}`, `{"concat": ...}` nodes), which
  the model operator's self-contained `pipeline_source` writes as one scikit-learn estimator's code, run inside each
  fold. No operator is named here: a fitted node is a step built by its operator's factory (`impl`), a node
  that is not fitted combines its inputs' columns (a join).
"""

from __future__ import annotations

from radlang.backends.executor import RunError
from radlang.diagnostics import Diagnostic


def refit_of(stage) -> dict:
    return stage.extra["refit"]


def inputs_of(refit: dict, node: str) -> list[str]:
    """The producers feeding `node` in the refit graph, in the order of its ports' names."""
    return [a for a, b, _ in sorted(refit["edges"], key=lambda e: e[2]) if b == node]


def features_for(ctx, feature_stage, cohort_df, perturb=None):
    """The feature table of `feature_stage` computed on another cohort table (external, retest, perturbed):
    the operator's own `on_cohort`."""
    from radlang import registry

    fn = registry.get(feature_stage.op).on_cohort
    if fn is None:
        raise RunError([Diagnostic("E646", f"`{feature_stage.name}` ({feature_stage.op}) cannot be computed on another cohort",
                                   feature_stage.span)])
    return fn(ctx, feature_stage, cohort_df, perturb)


def match_by(ctx, refit: dict) -> str:
    """How several sources are matched: the `by` of the joins in the refit graph (case id unless they say patient)."""
    by = ctx.study.by_name()
    return next((by[n].params["by"] for n in refit["nodes"] if "by" in by[n].params), "case")


def source_order(ctx, refit: dict, cohort_name: str) -> list[str]:
    """The sources, those of the validated cohort first: the first one decides the rows."""
    by = ctx.study.by_name()
    return sorted(refit["sources"], key=lambda s: (by[s].type.cohort != cohort_name, s))


def assemble(ctx, stage, refit, cohort_name, cohort_df=None, perturb=None):
    """The fold input on `cohort_df` (None: the validated cohort as it ran). Sources of the validated cohort are
    computed on `cohort_df`; sources of an attribute table are its table as it ran."""
    from radlang import registry

    by = ctx.study.by_name()
    names = source_order(ctx, refit, cohort_name)
    tables, keys = [], []
    match = match_by(ctx, refit)
    for name in names:
        src = by[name]
        own = src.type.cohort == cohort_name
        t = features_for(ctx, src, cohort_df, perturb) if (own and (cohort_df is not None or perturb)) else ctx.results[name]
        t = t.set_axis(t.index.astype(str), axis=0)
        ids = list(t.index)
        rows = (cohort_df if (own and cohort_df is not None) else ctx.results[src.type.cohort])
        patients = dict(zip(rows["case_id"].astype(str), rows["patient_id"].astype(str))) if match == "patient" else {}
        keys.append({c: patients.get(c, c) for c in ids} if match == "patient" else {c: c for c in ids})
        tables.append((name, t))
    if len(tables) == 1:
        return tables[0][1]
    combine = next((by[n].op for n in refit["nodes"] if by[n].fit == "none"), None)
    if combine is None:   # no join combines them (models stacked side by side): the sources' columns on the first one's rows
        return side_by_side(stage, tables)
    out, problems = registry.get(combine).impl(tables, keys, match, True)
    if problems:
        raise join_error(stage, problems)
    return out


def side_by_side(stage, tables):
    """Tables that no join combines (the branches of stacked models), each column named `<source>.<column>`, on the
    first table's rows; a case of the first table missing from another is an error (E660), as in a join."""
    import pandas as pd

    first = tables[0][1]
    for name, t in tables[1:]:
        missing = [c for c in first.index if c not in set(t.index)]
        if missing:
            raise join_error(stage, [{"code": "E660", "ids": missing, "message": f"`{name}` has no rows for these cases of `{tables[0][0]}`"}])
    return pd.concat([t.reindex(first.index).add_prefix(f"{name}.") for name, t in tables], axis=1)


def join_error(stage, problems) -> RunError:
    """A join's problems (duplicate ids, ids missing from a table, columns in two tables) as diagnostics."""
    diags = []
    for q in problems:
        items = q.get("ids") or q.get("columns") or []
        shown = ", ".join(f"`{x}`" for x in items[:8]) + (f" and {len(items) - 8} more" if len(items) > 8 else "")
        hint = {"E662": "set `prefix: true` on the join to name each column `<table>.<column>`",
                "E661": "a table joined to another must hold one row per id",
                "E660": "join tables that describe the same cases (or patients, with `by: patient`)"}[q["code"]]
        diags.append(Diagnostic(q["code"], f"`{stage.name}`: {q['message']}: {shown}", stage.span, hint=hint))
    return RunError(diags)


def recipe(study, refit, columns, fold_inputs):
    """The fitted graph feeding the model, as plain data for the model operator's `pipeline_source`.
    columns: source -> its columns in X; fold_inputs: node -> what its factory gets besides settings and seed."""
    from radlang import registry

    by = study.by_name()

    def node(name):
        if name in refit["sources"]:
            return {"source": name, "columns": columns.get(name, [])}
        s = by[name]
        ins = inputs_of(refit, name)
        if s.fit != "none":
            return {"step": [s.name, registry.get(s.op).impl, s.params, s.seed, fold_inputs.get(s.name, {})], "input": node(ins[0])}
        return {"concat": s.name, "prefix": bool(s.params.get("prefix")), "inputs": [node(u) for u in ins], "names": ins}

    return node(inputs_of(refit, refit["model"])[0])


def source_columns(refit, X, order) -> dict[str, list[str]]:
    """source -> its columns in the fold input X (named `<source>.<column>` when there are several sources)."""
    if len(order) == 1:
        return {order[0]: [str(c) for c in X.columns]}
    return {s: [str(c) for c in X.columns if str(c).startswith(f"{s}.")] for s in order}


def sources_under(refit, name) -> list[str]:
    """The sources that feed `name` (directly or through other nodes)."""
    if name in refit["sources"]:
        return [name]
    out = []
    for u in inputs_of(refit, name):
        out += [s for s in sources_under(refit, u) if s not in out]
    return out
