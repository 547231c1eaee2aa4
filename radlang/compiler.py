"""The compiler driver: parse -> uses -> names -> binding/types/settings -> graph -> design -> passes."""

from __future__ import annotations

import gc
from dataclasses import dataclass, field
from pathlib import Path

from radlang import registry
from radlang.checks.bind import bind, check_names, check_stage
from radlang.checks.design import check_design
from radlang.checks.graph import build_graph, check_cycles, check_unused, induced, order
from radlang.checks.privacy import check_privacy
from radlang.checks.uses import resolve_uses
from radlang.compiled import Stage, Study
from radlang.diagnostics import Diagnostic, Span
from radlang.passes import run_passes
from radlang.syntax.parser import SourceError, parse
from radlang.values import to_plain

STUDY_SETTINGS = {"seed": int, "out": str, "workers": int, "on_error": str}


@dataclass
class Result:
    study: Study | None
    diagnostics: list[Diagnostic]
    sources: dict[str, str] = field(default_factory=dict)
    module: object = None

    @property
    def ok(self) -> bool:
        return self.study is not None and not any(d.is_error for d in self.diagnostics)


def compile_file(path, passes=True, data=False) -> Result:
    """`data`: also check the data the spec names, reading only what is cheap (radlang/checks/data.py)."""
    p = Path(path)
    try:
        text = p.read_bytes()
    except OSError as e:
        return Result(None, [Diagnostic("E701", f"cannot read `{path}`: {e.strerror or e}", None)])
    return compile_source(text, str(path), passes=passes, data=data)


def _study_settings(module, diags) -> dict:
    out = {"seed": 0, "out": "runs/" + Path(module.file).stem, "workers": 0, "on_error": "fail"}
    if module.study is None:
        return out
    for s in module.study.settings:
        from radlang.diagnostics import did_you_mean
        from radlang.values import to_python

        if s.key not in STUDY_SETTINGS:
            diags.append(Diagnostic("E301", f"`study` has no setting `{s.key}`", s.key_span,
                                    hint=did_you_mean(s.key, STUDY_SETTINGS) or f"study settings: {', '.join(STUDY_SETTINGS)}"))
            continue
        v = to_python(s.value)
        want = STUDY_SETTINGS[s.key]
        if want is int and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
            diags.append(Diagnostic("E304", f"`{s.key}` must be a whole number ≥ 0", s.value.span))
            continue
        if want is str and not isinstance(v, str):
            diags.append(Diagnostic("E304", f"`{s.key}` must be a string", s.value.span))
            continue
        if s.key == "on_error" and v not in ("fail", "skip"):
            diags.append(Diagnostic("E304", "`on_error` is `\"fail\"` or `\"skip\"`", s.value.span))
            continue
        out[s.key] = v
    return out


def compile_source(text, file: str = "<input>", passes=True, data=False) -> Result:
    """Compile a spec (str or bytes). Never raises on bad input: problems come back as diagnostics."""
    # The compiler allocates many small, long-lived objects and frees nothing cyclic: pausing the cyclic
    # garbage collector while it runs saves ~15% (it is switched back on, whatever happens).
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _compile_source(text, file, passes, data)
    finally:
        if was_enabled:
            gc.enable()


def _compile_source(text, file: str, passes, data=False) -> Result:
    sources: dict[str, str] = {}
    if isinstance(text, bytes):
        sources[file] = text.decode("utf-8", "replace")
    else:
        sources[file] = text
    try:
        module = parse(text, file=file)
    except SourceError as e:
        return Result(None, sorted(e.diagnostics, key=Diagnostic.sort_key), sources)

    diags: list[Diagnostic] = []
    presets = resolve_uses(module, sources, diags)
    preset_stmts = []
    for pm in presets:
        for s in pm.stmts:
            if s.kind != "preset":
                diags.append(Diagnostic("E107", f"a preset file may only hold `preset` statements, not `{s.kind}`", s.kind_span))
            else:
                preset_stmts.append(s)
    stmts = preset_stmts + list(module.stmts)
    for s in stmts:
        for c in s.children:
            diags.append(Diagnostic("E208", f"`{s.op.name}` takes no nested statements", c.span,
                                    hint="nested statements are reserved for multi-task heads"))
    clashes: set[str] = set()
    by_name = check_names(stmts, diags, clashes)
    study_cfg = _study_settings(module, diags)

    bounds = {}
    kinds = set(registry.kinds())
    for name, s in by_name.items():
        if registry.get(s.op.name) is None or (s.kind != "preset" and s.kind not in kinds):
            continue
        b = bind(s, by_name, diags)
        if b is not None:
            bounds[name] = b

    g = build_graph(bounds)
    externals = {b.ports["external"].parts[0]: name for name, b in sorted(bounds.items()) if "external" in b.ports}
    types: dict = {}
    checked: dict[str, Stage] = {}
    sub = g
    if check_cycles(g, bounds, diags):
        for name in order(g):
            b = bounds[name]
            res = check_stage(b, types, by_name, diags, clashes, externals)
            if res is None:
                continue
            settings, rtype, inputs = res
            types[name] = rtype
            if b.stmt.kind == "preset":
                continue
            checked[name] = Stage(
                name=name, kind=b.stmt.kind, op=b.op.name, settings=settings, params=to_plain(settings),
                inputs=inputs, type=rtype, span=b.stmt.span, fit=b.op.fit, comments=b.stmt.comments,
                extra={"refs": sorted({r.dotted for r in b.refs})},
            )
        real = {n: {"sink": registry.get(st.op).sink, "span": st.span} for n, st in checked.items()}
        sub = induced(g, checked)
        check_unused(g, real, diags)   # on the whole graph: a consumer that failed its own checks still counts as a use
        check_design(sub, checked, diags)
        check_privacy(sub, checked, diags)
        if data:
            import networkx as nx

            from radlang.checks.data import check_data
            from radlang.checks.folds import check_folds

            # only the data of stages that will run (a sink is reachable from them; the others are W402)
            live = {n for n, meta in real.items() if meta["sink"]}
            for n in list(live):
                live |= nx.ancestors(sub, n)
            running = {n: st for n, st in checked.items() if n in live}
            from radlang.checks.horizons import check_horizons

            facts = check_data(running, bounds, diags)
            check_folds(running, bounds, facts, diags)
            check_horizons(running, bounds, facts, diags)

    diags = sorted(set(diags), key=Diagnostic.sort_key)
    if any(d.is_error for d in diags):
        return Result(None, diags, sources, module)
    if not checked:
        span = module.study.span if module.study else Span(file, 1, 1, 1, 1)
        diags.append(Diagnostic("W403", "the spec defines no stages", span, hint="add a `cohort` statement"))
    stages = [checked[n] for n in order(sub)]
    study = Study(
        title=module.study.title if module.study else Path(file).stem, seed=study_cfg["seed"], out=study_cfg["out"],
        file=file, source=sources[file], stages=stages, graph=sub, config=study_cfg,
    )
    if passes:
        study = run_passes(study)
    return Result(study, diags, sources, module)
