"""Generic run-time glue that operators' `run` functions call (radlang/registry.py): where a spec's
relative paths point, content keys of tables, problem dicts -> E6xx diagnostics, and `on_error: skip`.

Nothing here knows an operator; `radlang render` inlines what a run function reaches, verbatim."""

from __future__ import annotations

import json
from pathlib import Path

from radlang.backends.executor import RunError
from radlang.diagnostics import Diagnostic


def spec_dir(stage, ctx) -> Path:
    """The folder of the spec file that declared the stage (relative paths in settings start there)."""
    f = Path(stage.span.file) if stage.span and stage.span.file and not stage.span.file.startswith("<") else None
    if f is not None and f.exists():
        return f.resolve().parent
    sf = Path(ctx.study.file)
    return sf.resolve().parent if sf.exists() else Path.cwd()


def problem_diagnostics(problems, stage) -> list[Diagnostic]:
    """Problem dicts {case, column, file, message, code, hint} -> diagnostics naming the case, the column and the file."""
    out = []
    for p in problems:
        bits = []
        if p.get("case"):
            bits.append(f"case `{p['case']}`")
        if p.get("column"):
            bits.append(f"column `{p['column']}`")
        if p.get("file"):
            bits.append(f"file `{p['file']}`")
        where = ", ".join(bits)
        out.append(Diagnostic(p.get("code", "E601"), f"`{stage.name}`: {where}: {p['message']}", stage.span, hint=p.get("hint")))
    return out


def upstream_on_cohort(ctx, name, cohort_df):
    """`cohort_df` (another cohort's table: external cases, new cases) through the image stages between the cohort and
    stage `name`: when `name` is not itself a cohort but derives one case by case (its operator's `on_cohort`, e.g. an
    image preprocessing stage), its `on_cohort` result; otherwise `cohort_df` as it is."""
    from radlang import registry

    stage = ctx.study.by_name()[name]
    op = registry.get(stage.op)
    if stage.kind == "cohort" or stage.type.kind != "Cohort" or op.on_cohort is None:
        return cohort_df
    return op.on_cohort(ctx, stage, cohort_df, None)


def cohort_key(df) -> str:
    """A content hash of a cohort table: its CSV text and its radlang attrs."""
    import hashlib

    h = hashlib.sha256(df.to_csv(index=False, lineterminator="\n").encode())
    h.update(json.dumps(df.attrs.get("radlang", {}), sort_keys=True, default=str).encode())
    return h.hexdigest()


def table_key(df) -> str:
    """A content hash of a table: its numeric block as bytes, the rest as CSV, the index, columns and attrs."""
    import hashlib

    import numpy as np

    h = hashlib.sha256()
    num = df.select_dtypes(include="number")
    h.update(np.ascontiguousarray(num.to_numpy(dtype=float)).tobytes())
    rest = df.drop(columns=num.columns)
    h.update(rest.to_csv(lineterminator="\n").encode())
    h.update(json.dumps([list(map(str, df.index)), list(map(str, df.columns)), df.attrs.get("radlang", {})],
                        sort_keys=True, default=str).encode())
    return h.hexdigest()


def finish_cohort(stage, ctx, df, problems):
    """Fail with every problem at once, or (on_error: skip) drop the bad cases and record them."""
    if df is None or any(p.get("fatal") or not p.get("case") for p in problems):
        raise RunError(problem_diagnostics(problems, stage))
    if not problems:
        return df
    if ctx.on_error != "skip":
        raise RunError(problem_diagnostics(problems, stage))
    bad: dict[str, list[str]] = {}
    for p in problems:
        bad.setdefault(p["case"], []).append(f"{p.get('column') or ''}: {p['message']}".strip(": "))
    dup_only = {c for c, msgs in bad.items() if all("duplicate case id" in m for m in msgs)}
    drop = df["case_id"].isin([c for c in bad if c not in dup_only]) | (df["case_id"] == "")
    drop |= df["case_id"].duplicated(keep="first")      # duplicate ids: keep the first row only
    attrs = df.attrs
    df = df[~drop].reset_index(drop=True)
    df.attrs = attrs
    for c, msgs in bad.items():
        ctx.excluded.append({"stage": stage.name, "case": c, "reason": "; ".join(msgs)})
    return df


def file_stat(path):
    """[mtime_ns, size] of a file, or None when it cannot be read."""
    import os

    try:
        st = os.stat(path)
        return [st.st_mtime_ns, st.st_size]
    except OSError:
        return None
