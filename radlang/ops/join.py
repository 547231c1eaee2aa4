"""`join`: several feature tables side by side, as one model input, matched by case or by patient.

    features rad  = pyradiomics(train.image, train.mask)
    features clin = tabular(records)                   # records = table("clinical.csv") { id: patient_id }
    features both = join(rad, clin) { by: patient }    # each case gets its patient's clinical row
    model clf = logistic(both, target: train.outcome)

The first table decides the rows (its cohort's cases, in its order). Every other table must hold one row per
key (case id, or patient id with `by: patient`) and a row for every key of the first. Tables from another
cohort are allowed only when that cohort is an attribute table (a `table` with no outcome): two cohorts that
each carry outcomes are two sets of cases, and joining them is a mistake (E250); so is any branch of another cohort
of cases (one with images or an outcome), an image branch above all, or a table of cases joined to the rows of an
attribute table (E360: the branches of one fused model describe the same cases). `radlang check` reads the ids of
an attribute table and of the rows' manifest (or table): a table none of whose ids is a case (or, `by: patient`, a
patient) of the rows is keyed by something else (E361, with a hint toward `by:` or `id:`); one that lacks some is E660. Columns that occur in two
tables are refused (E662) unless `prefix: true` names every column `<table>.<column>`.

A join of tables that nothing fitted feeds runs once, before validation, like any feature table. A join of
tables that are fit inside the folds (`join(sig, clin)` where `sig = lasso(...)`) is part of the validation's
refit graph (radlang/passes/fit_boundaries.py): it is refit in every training fold, with the same matching.
`join_tables` is self-contained: the renderer inlines it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from radlang.registry import Operator, Port, register
from radlang.types import RType
from radlang.values import Settings, Sym

# ----------------------------------------------------------------------------------------------
# self-contained implementation


def join_tables(tables, keys, by, prefix):
    """tables: [(name, DataFrame indexed by case id)]; keys: for each table, {case id: its key} (the case id, or the
    patient id with by == "patient"). The first table decides the rows.

    Returns (joined DataFrame indexed by the first table's case ids, problems): problems are dicts with `code`,
    `table`, `ids` or `columns`, and `message`; a non-empty list means the join is refused."""
    import pandas as pd

    problems = []
    what = "patient" if by == "patient" else "case"
    first_name, first = tables[0]
    if by != "patient" and first.index.has_duplicates:
        dup = sorted(set(map(str, first.index[first.index.duplicated()])))
        problems.append({"code": "E661", "table": first_name, "ids": dup, "message": f"duplicate case ids in `{first_name}`"})
    rows_key = [keys[0][str(c)] for c in first.index]
    parts = []
    for (name, t), key in zip(tables, keys):
        cols = [f"{name}.{c}" for c in t.columns] if prefix else [str(c) for c in t.columns]
        block = t.set_axis(cols, axis=1)
        if len(parts) == 0:
            parts.append(block.set_axis(first.index.astype(str), axis=0))
            continue
        k = pd.Index([key[str(c)] for c in t.index])
        if k.has_duplicates:
            dup = sorted(set(map(str, k[k.duplicated()])))
            problems.append({"code": "E661", "table": name, "ids": dup, "message": f"duplicate {what} ids in `{name}`"})
            continue
        missing = [str(c) for c, kk in zip(first.index, rows_key) if kk not in set(k)]
        if missing:
            problems.append({"code": "E660", "table": name, "ids": missing,
                             "message": f"{len(missing)} case(s) of `{first_name}` have no row in `{name}` (matched by {what} id)"})
            continue
        aligned = block.set_axis(k, axis=0).loc[rows_key]
        parts.append(aligned.set_axis(first.index.astype(str), axis=0))
    seen = {}
    for (name, _), part in zip(tables, parts):
        for c in part.columns:
            seen.setdefault(c, []).append(name)
    clash = sorted(c for c, owners in seen.items() if len(owners) > 1)
    if clash:
        owners = sorted({o for c in clash for o in seen[c]})
        problems.append({"code": "E662", "table": ", ".join(owners), "columns": clash,
                         "message": f"column(s) in more than one of `{'`, `'.join(owners)}`"})
    if problems:
        return None, problems
    out = pd.concat(parts, axis=1)
    out.index.name = "case_id"
    return out, []


# ----------------------------------------------------------------------------------------------
# run time: the glue that finds each table's cohort and turns problems into diagnostics


def cohort_keys(table, rows, by):
    """{case id: key} for a feature table whose cases are rows of the cohort table `rows`."""
    ids = [str(c) for c in table.index]
    if by != "patient":
        return {c: c for c in ids}
    patients = dict(zip(rows["case_id"].astype(str), rows["patient_id"].astype(str)))
    return {c: patients.get(c, c) for c in ids}


def join_on(ctx, stage, cohort_df=None, perturb=None):
    """The join of `stage`'s tables; with `cohort_df`, on that cohort: tables of the join's own cohort are computed
    there (an external cohort, a re-extraction), tables of an attribute cohort are used as they ran."""
    from radlang.backends.refit import features_for, join_error

    by = ctx.study.by_name()
    p = stage.params
    tables, keys = [], []
    for port in sorted(stage.inputs):
        up = by[stage.inputs[port].stage]
        own = up.type.cohort == stage.type.cohort and (cohort_df is not None or perturb)
        t = features_for(ctx, up, cohort_df, perturb) if own else ctx.results[up.name]
        tables.append((up.name, t))
        keys.append(cohort_keys(t, cohort_df if own else ctx.results[up.type.cohort], p["by"]))
    out, problems = join_tables(tables, keys, p["by"], p["prefix"])
    if problems:
        raise join_error(stage, problems)
    return out


def run_join(stage, ctx):
    from radlang.backends.cache import key
    from radlang.backends.glue import table_key

    if stage.fit_within:        # fed by fitted stages: joined inside the training folds of these validations
        ctx.keys[stage.name] = ctx.stage_key(stage)
        return None
    out = join_on(ctx, stage)
    ctx.keys[stage.name] = key("join", stage.params, [ctx.keys.get(r.stage) for _, r in sorted(stage.inputs.items())], table_key(out))
    return out


def join_for_cohort(ctx, stage, cohort_df, perturb=None):
    return join_on(ctx, stage, cohort_df, perturb)


def join_check_facts(st, bound, stages, facts, diags):
    """`radlang check`: a table of an attribute cohort (a `table` whose ids `check` has read) holds a row for every
    key of the join's rows (their cases' ids, or patient ids with `by: patient`, from the manifest or table): none is
    a table keyed by other ids (E361), some missing are the run's E660, found before anything runs."""
    from radlang.diagnostics import Diagnostic

    ports = sorted(st.inputs)
    rows_cohort = stages[st.inputs[ports[0]].stage].type.cohort
    rows = facts.get(rows_cohort)
    if not rows or "ids" not in rows:
        return
    by = st.params["by"]
    keys = rows["patients"] if by == "patient" else rows["ids"]
    what = "patient" if by == "patient" else "case"
    for port in ports[1:]:
        up = stages[st.inputs[port].stage]
        table = facts.get(up.type.cohort)
        if up.type.cohort == rows_cohort or not table or "ids" not in table:
            continue
        have = set(table["ids"])
        missing = [k for k in dict.fromkeys(keys) if k not in have]
        if not missing:
            continue
        shown = ", ".join(f"`{k}`" for k in missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        where = f"`{up.name}` (cohort `{up.type.cohort}`, file `{table['file']}`)"
        if len(missing) < len(dict.fromkeys(keys)):
            diags.append(Diagnostic("E660", f"`{st.name}`: {len(missing)} {what} id(s) of `{rows_cohort}` have no row in {where}: {shown}",
                                    st.span, hint=f"give every {what} a row in the table (a missing value may stay blank)"))
            continue
        other = "patient" if by != "patient" and set(rows["patients"]) & have else "case" if by == "patient" and set(rows["ids"]) & have else None
        diags.append(Diagnostic("E361", f"`{st.name}`: the tabular branch {where} has no {what} ids of `{rows_cohort}`: none of its ids "
                                f"(e.g. `{table['ids'][0] if table['ids'] else ''}`) is one of the {len(dict.fromkeys(keys))} {what}s "
                                f"(e.g. `{keys[0]}`), so no case would find its row", st.span,
                                hint=(f"its ids are {other} ids: join with `by: {other}`" if other else
                                      f"name the table's column with the {what} ids: `id: <column>` on `{up.type.cohort}`")))


# ----------------------------------------------------------------------------------------------
# declaration


class JoinSettings(Settings):
    by: Literal["case", "patient"] = Field("case", description="match rows by case id, or by patient id (one row per patient in "
                                                               "every table but the first)")
    prefix: bool = Field(False, description="name every column `<table>.<column>`")

    _b = field_validator("by", mode="before")(lambda cls, v: str(v) if isinstance(v, Sym) else v)


def _written(ctx, port) -> str:
    """The reference written for `port` in the statement (`rad`), for messages."""
    pos = [a for a in ctx.stmt.op.args if a.name is None]
    named = {a.name: a for a in ctx.stmt.op.args if a.name is not None}
    names = ("table1", "table2", "table3", "table4")
    arg = named.get(port) or (pos[names.index(port)] if names.index(port) < len(pos) else None)
    return getattr(arg.value, "dotted", port) if arg is not None else port


def _join_type(ctx) -> RType:
    ins = [ctx.inputs[p] for p in sorted(ctx.inputs)]
    first = ins[0]
    rows = ctx.types.get(first.cohort)

    def cases(c):   # a cohort of cases (an outcome, or images), not an attribute table (a `table` with neither)
        return c is not None and bool(c.outcome or c.channels)

    for port in sorted(ctx.inputs)[1:]:
        t = ctx.inputs[port]
        if t.cohort == first.cohort:
            continue
        other = ctx.types.get(t.cohort)
        if other is not None and other.outcome and rows is not None and rows.outcome:
            ctx.error("E250", f"`{_written(ctx, port)}` comes from cohort `{t.cohort}`, the first table from cohort `{first.cohort}`; "
                      f"both carry outcomes, so they are different cases", port=port,
                      hint=f"join tables of `{first.cohort}`, or an attribute table (a `table` cohort without an outcome) keyed by its ids")
        elif (t.patch is not None or cases(other)) and cases(rows):
            what = "an image branch" if t.patch is not None else "a table"
            own = "its images" if other is not None and other.channels else "its outcome"
            ctx.error("E360", f"`{_written(ctx, port)}` is {what} of cohort `{t.cohort}` (a cohort of cases: {own}), but the join's rows are "
                      f"the cases of `{first.cohort}`: branches of one model must describe the same cases", port=port,
                      hint=f"fuse branches of `{first.cohort}` (image patches, radiomics, clinical values of its cases); another cohort "
                           "joins only as an attribute table (a `table` without an outcome, keyed by case or patient ids)")
        elif t.patch is not None or cases(other):
            ctx.error("E360", f"the join's rows are the ids of the attribute table `{first.cohort}`, not the cases of `{_written(ctx, port)}` "
                      f"(cohort `{t.cohort}`)", port=port,
                      hint=f"put `{_written(ctx, port)}` first: the first table decides the rows, and an attribute table joins its cases")
    images = [(port, ctx.inputs[port]) for port in sorted(ctx.inputs) if ctx.inputs[port].patch is not None]
    for port, t in images[1:]:
        if t.dims != images[0][1].dims:
            ctx.error("E253", f"`{_written(ctx, port)}` is a {t.dims}D image branch, `{_written(ctx, images[0][0])}` a "
                      f"{images[0][1].dims}D one, fused without a stated reduction: a network model reads one patch shape", port=port,
                      hint="reduce the 3D branch to a slice: `patches(...) { dims: 2, slices: center }` (or `max_area`, `mip`)")
        elif t.patch != images[0][1].patch:
            ctx.error("E351", f"`{_written(ctx, port)}` holds {'x'.join(map(str, t.patch))} patches, `{_written(ctx, images[0][0])}` "
                      f"{'x'.join(map(str, images[0][1].patch))}: joined image branches are stacked as channels of one patch", port=port,
                      hint="cut every image branch with the same `patch` size")
    if len(images) > 1:
        for port, t in images:
            if t.reduction == "unstated":
                ctx.error("E350", f"`{_written(ctx, port)}` is a 2D slice of a 3D volume without a stated reduction, fused with another "
                          "image branch", port=port, hint="state how the volume becomes a slice: `slices: center`, `max_area` or `mip`")
    if images:   # the image branches travel with the table, stacked as channels: a network model reads their patch shape
        img = images[0][1]
        channels = sum(int(t.channels or 1) for _, t in images)
        detail = img.detail if len(images) == 1 else f"{len(images)} image branches stacked as {channels} channel(s) of {img.dims}D patches"
        return RType("Features", cohort=first.cohort, outcome=first.outcome, dims=img.dims, channels=channels, patch=img.patch,
                     has_mask=any(t.has_mask for _, t in images), detail=f"joined table with {detail}")
    return RType("Features", cohort=first.cohort, outcome=first.outcome, detail="joined table")


TABLE_DOC = "a feature table (a `features` or `select` stage)"
register(Operator(
    name="join", kind="features", output="Features", settings=JoinSettings,
    inputs=(Port("table1", ("Features",), doc=TABLE_DOC + "; its cases are the rows"),
            Port("table2", ("Features",), doc=TABLE_DOC),
            Port("table3", ("Features",), optional=True, doc=TABLE_DOC),
            Port("table4", ("Features",), optional=True, doc=TABLE_DOC)),
    positional=("table1", "table2", "table3", "table4"),
    behaviour="stateless", run=run_join, on_cohort=join_for_cohort, impl=join_tables, infer=_join_type, check_facts=join_check_facts,
    doc="Feature tables side by side (up to four), matched by case id or patient id; refit inside the folds when a fitted "
        "stage feeds it.",
    examples=("features both = join(rad, clin)", "features both = join(rad, clin) { by: patient, prefix: true }"),
))
