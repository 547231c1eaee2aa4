"""Modes `estimator`, `dataset` and `tabular`.

`estimator`: a `select` or `model` stage fits nothing on its own. Its value is a recipe (operator,
plain settings, seed) that the `evaluate` mode assembles into a scikit-learn Pipeline and refits
inside every training fold.

`dataset`: a package-shipped tabular cohort (radlang/ops/datasets.py). `tabular`: a cohort's
clinical columns as a feature table. Both are glue around the operators' self-contained functions.
"""

from __future__ import annotations

from radlang.backends.cache import key
from radlang.backends.executor import RunError, mode
from radlang.diagnostics import Diagnostic


def _table_key(df) -> str:
    """A content hash of a table: its numeric block as bytes, the rest as CSV, the index, columns and attrs."""
    import hashlib
    import json

    import numpy as np

    h = hashlib.sha256()
    num = df.select_dtypes(include="number")
    h.update(np.ascontiguousarray(num.to_numpy(dtype=float)).tobytes())
    rest = df.drop(columns=num.columns)
    h.update(rest.to_csv(lineterminator="\n").encode())
    h.update(json.dumps([list(map(str, df.index)), list(map(str, df.columns)), df.attrs.get("radlang", {})],
                        sort_keys=True, default=str).encode())
    return h.hexdigest()


@mode("estimator")
def run_estimator(stage, ctx):
    from radlang import registry

    op = registry.get(stage.op)
    ctx.keys[stage.name] = ctx.stage_key(stage)
    return {"stage": stage.name, "op": stage.op, "kind": stage.kind, "params": stage.params, "seed": stage.seed,
            "version": op.version}


@mode("dataset")
def run_dataset(stage, ctx):
    from radlang import registry

    op = registry.get(stage.op)
    if stage.op == "table":
        from pathlib import Path

        path = Path(stage.params["path"])
        if not path.is_absolute():
            spec = Path(stage.span.file) if stage.span and stage.span.file and not stage.span.file.startswith("<") else None
            path = (spec.resolve().parent if spec is not None and spec.exists() else Path.cwd()) / path
        if path.exists():
            ctx.hash_input(path)
        df, problems = op.impl(stage.params, str(path), stage.name)
        if problems:
            diags = []
            for q in problems[:50]:
                where = ", ".join(x for x in (f"case `{q['case']}`" if q.get("case") else "", f"column `{q['column']}`" if q.get("column") else "",
                                               f"file `{q['file']}`" if q.get("file") else "") if x)
                diags.append(Diagnostic("E640", f"`{stage.name}`: {where}: {q['message']}", stage.span, hint=q.get("hint")))
            if len(problems) > 50:
                diags.append(Diagnostic("E640", f"`{stage.name}`: and {len(problems) - 50} more problems", stage.span))
            raise RunError(diags)
        ctx.keys[stage.name] = key("dataset", stage.op, op.version, _table_key(df))
        return df
    try:
        df = op.impl({**stage.params, "_stage": stage.name})
    except ImportError as e:
        raise RunError([Diagnostic("E640", f"`{stage.name}`: dataset `{stage.params['name']}` needs a package that is not installed: {e}",
                                   stage.span, hint="pip install 'radlang[science]'")])
    if df.empty:
        raise RunError([Diagnostic("E640", f"`{stage.name}`: rows {stage.params.get('start')}:{stage.params.get('stop')} of "
                                   f"`{stage.params['name']}` hold no cases", stage.span)])
    ctx.keys[stage.name] = key("dataset", stage.op, op.version, _table_key(df))
    return df


def tabular_table(ctx, stage, cohort_df):
    """The `tabular` stage's feature table for any cohort table (the stage's own, or an external one)."""
    from radlang import registry

    op = registry.get(stage.op)
    feats, problems = op.impl(cohort_df, stage.params)
    if problems:
        cohort = cohort_df.attrs.get("radlang", {}).get("name", "?")
        diags = []
        for case, col, msg in problems:
            where = f"case `{case}`, " if case else ""
            diags.append(Diagnostic("E641", f"`{stage.name}` on cohort `{cohort}`: {where}column `clinical.{col}`: {msg}", stage.span,
                                    hint="list only numeric clinical columns in `columns`"))
        raise RunError(diags)
    return feats


def tabular_for_cohort(ctx, stage, cohort_df, perturb=None):
    """The `tabular` table of another cohort; a perturbation (which re-extracts image features) does not apply."""
    if perturb:
        raise RunError([Diagnostic("E646", f"`{stage.name}` is a tabular feature table; it cannot be re-extracted under {perturb}",
                                   stage.span)])
    return tabular_table(ctx, stage, cohort_df)


@mode("tabular")
def run_tabular(stage, ctx):
    from radlang import registry

    op = registry.get(stage.op)
    cohort_df = ctx.results[stage.inputs["cohort"].stage]
    feats = tabular_table(ctx, stage, cohort_df)
    ctx.keys[stage.name] = key("tabular", op.version, stage.params, ctx.keys.get(stage.inputs["cohort"].stage), _table_key(feats))
    return feats
