"""Mode `cohort`: build the cohort table of a cohort stage (manifest, phantom).

Glue only: where files live, caching, turning problems into E6xx diagnostics, `on_error: skip`.
The table itself comes from the operators' self-contained functions in radlang/ops/cohorts.py."""

from __future__ import annotations

import json
import os
from pathlib import Path

from radlang.backends.cache import atomic_write_text, key
from radlang.backends.executor import RunError, mode
from radlang.diagnostics import Diagnostic


def spec_dir(stage, ctx) -> Path:
    f = Path(stage.span.file) if stage.span and stage.span.file and not stage.span.file.startswith("<") else None
    if f is not None and f.exists():
        return f.resolve().parent
    sf = Path(ctx.study.file)
    return sf.resolve().parent if sf.exists() else Path.cwd()


def problem_diagnostics(problems, stage) -> list[Diagnostic]:
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


def table_key(df) -> str:
    import hashlib

    h = hashlib.sha256(df.to_csv(index=False, lineterminator="\n").encode())
    h.update(json.dumps(df.attrs.get("radlang", {}), sort_keys=True, default=str).encode())
    return h.hexdigest()


def _finish(stage, ctx, df, problems):
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


def _stat(path):
    try:
        st = os.stat(path)
        return [st.st_mtime_ns, st.st_size]
    except OSError:
        return None


def _cached_manifest(ctx, op, params, path, name):
    """load_manifest, reused when the manifest's content and every file it names (by mtime and size) are unchanged:
    a warm re-run then skips reading every image header again."""
    if not path.exists():
        return op.impl(params, str(path), name)
    mhash = ctx.hash_input(path)
    cache = ctx.cache.uncounted()          # its own counters: the run manifest's hits/misses count case entries
    k = key("manifest-table", op.version, params, str(path), mhash)
    hit = cache.get(k)
    if hit is not None and all(_stat(f) == s for f, s in hit["stats"].items()):
        return hit["table"], hit["problems"]
    df, problems = op.impl(params, str(path), name)
    if df is not None:
        files = [f for c in df.columns if c in ("image", "mask") or c.startswith("image.") for f in df[c] if f]
        files += [p["file"] for p in problems if p.get("file")]      # e.g. an external data file found incomplete
        cache.put(k, {"table": df, "problems": problems, "stats": {f: _stat(f) for f in files}})
    return df, problems


@mode("cohort")
def run_cohort(stage, ctx):
    from radlang import registry

    op = registry.get(stage.op)
    p = stage.params
    if stage.op == "manifest":
        path = Path(p["path"])
        if not path.is_absolute():
            path = spec_dir(stage, ctx) / path
        df, problems = _cached_manifest(ctx, op, p, path, stage.name)
        df = _finish(stage, ctx, df, problems)
    elif stage.op == "phantom":
        seed = p["seed"] if p.get("seed") is not None else stage.seed
        prefix = p.get("prefix") or stage.name
        want = {"params": p, "seed": seed, "prefix": prefix, "version": op.version}
        out_dir = ctx.out / "data" / f"{stage.name}-{key(want)[:16]}"     # named by content: other settings, other folder
        stamp = out_dir / "phantom.json"
        manifest = out_dir / "manifest.csv"
        try:
            have = json.loads(stamp.read_text())
        except (OSError, ValueError):
            have = None
        if have != want or not manifest.exists():
            if stamp.exists():
                stamp.unlink()
            op.impl(p, seed, str(out_dir), prefix)
            atomic_write_text(stamp, json.dumps(want, sort_keys=True, indent=1) + "\n")
        mparams = op.helpers[0](p)
        df, problems = op.helpers[1](mparams, str(manifest), stage.name)
        df = _finish(stage, ctx, df, problems)
    else:
        raise ValueError(f"no cohort loader for the operator `{stage.op}`")   # a cohort operator not wired here: a bug
    ctx.keys[stage.name] = key("cohort", stage.op, op.version, table_key(df))
    return df
