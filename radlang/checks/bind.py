"""Names, `like` inheritance, argument binding, port types and settings, statement by statement."""

from __future__ import annotations

from dataclasses import dataclass, field

from radlang import registry
from radlang.checks.settings import validate_settings
from radlang.compiled import InputRef
from radlang.diagnostics import Diagnostic, Related, did_you_mean
from radlang.ir.nodes import ArgV, CallV, Cast, Compare, ListV, Ref, Stmt
from radlang.registry import InferCtx
from radlang.types import COHORT_ATTRS, RType
from radlang.values import to_python


@dataclass
class Bound:
    stmt: Stmt
    op: registry.Operator
    ports: dict[str, Ref] = field(default_factory=dict)
    values: dict = field(default_factory=dict)        # setting name -> python value
    spans: dict = field(default_factory=dict)         # path -> span
    key_spans: dict = field(default_factory=dict)     # setting name -> span of its key
    refs: list[Ref] = field(default_factory=list)     # every stage reference inside settings
    inherited_from: str | None = None


def check_names(stmts: list[Stmt], diags: list, clashes: set | None = None) -> dict[str, Stmt]:
    """Duplicate names (E102), unknown kinds (E104), unknown operators (E103), kind/operator mismatch (E201).

    A preset and a stage with the same name (often a cohort named like a `use`d preset) are one E102: the name
    stays the preset's (so `like` finds it), and the name goes into `clashes` so that references to it report
    nothing more."""
    seen: dict[str, Stmt] = {}
    kinds = registry.kinds()
    ops = registry.names()
    for s in stmts:
        if s.name in seen:
            first = seen[s.name]
            if (first.kind == "preset") != (s.kind == "preset"):
                preset, stage = (first, s) if first.kind == "preset" else (s, first)
                where = "" if preset.span.file == stage.span.file else f" (from `{preset.span.file}`)"
                diags.append(Diagnostic("E102", f"`{s.name}` names both a preset{where} and the {stage.kind} `{s.name}`", stage.name_span,
                                        hint=f"rename the {stage.kind} (e.g. `{s.name}_{stage.kind}`): `like {s.name}` copies the preset's "
                                             "settings, and a stage is referred to by its own name",
                                        related=(Related(preset.name_span, "the preset is defined here"),)))
                seen[s.name] = preset
                if clashes is not None:
                    clashes.add(s.name)
                continue
            diags.append(Diagnostic("E102", f"`{s.name}` is defined twice", s.name_span,
                                    hint="give each stage its own name", related=(Related(first.name_span, "first defined here"),)))
            continue
        seen[s.name] = s
        if s.kind not in kinds:
            diags.append(Diagnostic("E104", f"unknown statement kind `{s.kind}`", s.kind_span,
                                    hint=did_you_mean(s.kind, kinds) or f"kinds: {', '.join(kinds)}"))
            continue
        op = registry.get(s.op.name)
        if op is None:
            same_kind = registry.names(s.kind)
            hint = did_you_mean(s.op.name, ops) or (f"`{s.kind}` operators: {', '.join(same_kind)}" if same_kind else None)
            diags.append(Diagnostic("E103", f"unknown operator `{s.op.name}`", s.op.name_span, hint=hint))
            continue
        if s.kind != "preset" and op.kind != s.kind:
            diags.append(Diagnostic("E201", f"`{op.name}` is a `{op.kind}` operator, not `{s.kind}`", s.kind_span,
                                    hint=f"write `{op.kind} {s.name} = {op.name}(...)`"))
    return seen


def _collect_refs(v, out: list):
    if isinstance(v, Ref):
        out.append(v)
    elif isinstance(v, ListV):
        for i in v.items:
            _collect_refs(i, out)
    elif isinstance(v, CallV):
        for a in v.args:
            _collect_refs(a.value, out)
    elif isinstance(v, Compare):
        _collect_refs(v.left, out)
        _collect_refs(v.right, out)
    elif isinstance(v, Cast):
        _collect_refs(v.value, out)


def _entries(stmt: Stmt, by_name: dict[str, Stmt], diags: list, exclusive=(), _seen=()) -> tuple[list[ArgV], list, str | None]:
    """Positional args, keyword entries (ArgV or Setting), following `like` chains; own entries win, and an own
    entry also replaces the inherited entries of its `exclusive` group (e.g. `bin_count` replaces `bin_width`)."""
    pos = [a for a in stmt.op.args if a.name is None]
    kw: list = [a for a in stmt.op.args if a.name is not None] + list(stmt.settings)
    if not stmt.like:
        return pos, kw, None
    base = by_name.get(stmt.like)
    if base is None:
        diags.append(Diagnostic("E101", f"`like {stmt.like}`: no statement or preset named `{stmt.like}`", stmt.like_span,
                                hint=did_you_mean(stmt.like, by_name)))
        return pos, kw, None
    if stmt.name in _seen or base.name in _seen:
        diags.append(Diagnostic("E401", f"`like` chain loops through `{base.name}`", stmt.like_span))
        return pos, kw, None
    if base.op.name != stmt.op.name:
        diags.append(Diagnostic("E204", f"`{stmt.name}` uses `{stmt.op.name}` but is `like {base.name}`, which uses `{base.op.name}`",
                                stmt.like_span, related=(Related(base.span, f"`{base.name}` defined here"),),
                                hint="`like` copies settings between statements of the same operator"))
        return pos, kw, None
    bpos, bkw, _ = _entries(base, by_name, diags, exclusive, _seen + (stmt.name,))
    own = {(e.name if isinstance(e, ArgV) else e.key) for e in kw}
    own |= {k for group in exclusive if own & set(group) for k in group}
    merged_kw = [e for e in bkw if (e.name if isinstance(e, ArgV) else e.key) not in own] + kw
    merged_pos = pos if pos else bpos
    return merged_pos, merged_kw, base.name


def bind(stmt: Stmt, by_name: dict[str, Stmt], diags: list) -> Bound | None:
    op = registry.get(stmt.op.name)
    if op is None:
        return None
    pos, kw, inherited = _entries(stmt, by_name, diags, op.settings.exclusive)
    b = Bound(stmt=stmt, op=op, inherited_from=inherited)
    names = list(op.positional)
    if len(pos) > len(names):
        extra = pos[len(names)]
        diags.append(Diagnostic("E206", f"`{op.name}` takes {len(names)} positional argument(s), got {len(pos)}", extra.span,
                                hint=(f"positional order: {', '.join(names)}; name the others" if names else "pass settings by name: `key: value`")))
        pos = pos[: len(names)]
    entries = [(names[i], a.value, a.span, a.span) for i, a in enumerate(pos)]
    for e in kw:
        if isinstance(e, ArgV):
            entries.append((e.name, e.value, e.span, e.span))
        else:
            entries.append((e.key, e.value, e.span, e.key_span))
    seen: dict[str, object] = {}
    for key, value, span, key_span in entries:
        if key in seen:
            diags.append(Diagnostic("E307", f"`{key}` is set twice", key_span, related=(Related(seen[key], "first set here"),)))
            continue
        seen[key] = key_span
        if key in op.port_names:
            if not isinstance(value, Ref):
                diags.append(Diagnostic("E202", f"input `{key}` of `{op.name}` must name a stage, like `train` or `train.image`", value.span))
                continue
            b.ports[key] = value
        else:
            b.values[key] = to_python(value, (key,), b.spans)
            b.key_spans[key] = key_span
            _collect_refs(value, b.refs)
    return b


def port_type(ref: Ref, types: dict[str, RType], stmts: dict[str, Stmt], diags: list, clashes=frozenset()) -> RType | None:
    head = ref.parts[0]
    if head not in stmts:
        diags.append(Diagnostic("E101", f"`{head}` is not defined", ref.span, hint=did_you_mean(head, stmts)))
        return None
    if head in clashes:
        return None   # the name is both a preset and a stage: reported once, by check_names
    if stmts[head].kind == "preset":
        diags.append(Diagnostic("E202", f"`{head}` is a preset (settings to copy with `like {head}`), not a stage", ref.span,
                                related=(Related(stmts[head].span, f"`{head}` defined here"),)))
        return None
    t = types.get(head)
    if t is None:
        return None   # the source stage failed its own checks; don't cascade
    if len(ref.parts) == 1:
        return t
    attr = ref.parts[1]
    if len(ref.parts) > 2:
        diags.append(Diagnostic("E202", f"`{ref.dotted}`: only one attribute level exists", ref.span))
        return None
    if t.kind != "Cohort":
        diags.append(Diagnostic("E202", f"`{head}` is a {t.describe()}; it has no attribute `{attr}`", ref.span,
                                hint=f"refer to the stage itself: `{head}`"))
        return None
    kind = COHORT_ATTRS.get(attr)
    if kind is None:
        diags.append(Diagnostic("E202", f"a cohort has no attribute `{attr}`", ref.span,
                                hint=did_you_mean(attr, COHORT_ATTRS) or f"cohort attributes: {', '.join(COHORT_ATTRS)}"))
        return None
    if attr == "site" and not t.has_site:
        diags.append(Diagnostic("E203", f"cohort `{head}` has no site column", ref.span,
                                hint=f"add `site: <column>` to cohort `{head}`", related=(Related(stmts[head].span, f"`{head}` defined here"),)))
        return None
    if attr == "mask" and not t.has_mask:
        diags.append(Diagnostic("E203", f"cohort `{head}` has no mask column", ref.span,
                                hint=f"add `mask: <column>` to cohort `{head}`, or segment one (e.g. `otsu({head}.image)`)",
                                related=(Related(stmts[head].span, f"`{head}` defined here"),)))
        return None
    if attr == "outcome" and not t.outcome:
        diags.append(Diagnostic("E203", f"cohort `{head}` has no outcome", ref.span, hint=f"add `outcome: <column> as binary` to `{head}`"))
        return None
    return RType(kind, cohort=t.cohort or head, outcome=t.outcome if attr == "outcome" else None,
                 dims=t.dims if attr in ("image", "mask") else None,
                 channels=t.channels if attr == "image" else (1 if attr == "mask" else None),
                 has_site=t.has_site, has_mask=t.has_mask, detail=f"{head}.{attr}")


def check_stage(b: Bound, types: dict[str, RType], stmts: dict[str, Stmt], diags: list, clashes=frozenset(), externals=None):
    """Port types, settings, and the operator's own inference. Returns (settings, RType, inputs) or None."""
    op, stmt = b.op, b.stmt
    ok = True
    in_types: dict[str, RType] = {}
    inputs: dict[str, InputRef] = {}
    is_preset = stmt.kind == "preset"
    for port in op.inputs:
        ref = b.ports.get(port.name)
        if ref is None:
            if not port.optional and not is_preset:
                diags.append(Diagnostic("E205", f"`{op.name}` needs its input `{port.name}` ({' or '.join(port.kinds)})",
                                        stmt.op.span, hint=f"signature: {signature(op)}"))
                ok = False
            continue
        t = port_type(ref, types, stmts, diags, clashes)
        if t is None:
            ok = False
            continue
        if t.kind not in port.kinds:
            diags.append(Diagnostic("E201", f"input `{port.name}` of `{op.name}` takes {' or '.join(port.kinds)}, but `{ref.dotted}` is {t.describe()}",
                                    ref.span, hint=port.doc or None))
            ok = False
            continue
        in_types[port.name] = t
        inputs[port.name] = InputRef(ref.parts[0], ref.parts[1] if len(ref.parts) > 1 else None)
    for r in b.refs:
        head = r.parts[0]
        if len(r.parts) > 1 and head not in stmts:
            diags.append(Diagnostic("E101", f"`{head}` is not defined", r.span, hint=did_you_mean(head, stmts)))
            ok = False
        elif head in stmts and len(r.parts) > 1:
            if port_type(r, types, stmts, diags, clashes) is None:
                ok = False
    values = dict(b.values)
    settings = validate_settings(op, values, b.spans, b.key_spans, stmt.op.span, diags)
    if settings is None:
        return None
    if not ok:
        return None
    n_before = len(diags)

    def report(code, message, setting=None, port=None, hint=None, span=None):
        sp = span
        if sp is None and setting is not None:
            sp = b.spans.get((setting,)) or b.key_spans.get(setting)
        if sp is None and port is not None and port in b.ports:
            sp = b.ports[port].span
        diags.append(Diagnostic(code, message, sp or stmt.op.span, hint=hint))

    ctx = InferCtx(stmt=stmt, inputs=in_types, settings=settings, report=report, types=types, externals=externals or {})
    # a preset only carries settings: it has no inputs, so the operator's own type rules do not apply to it
    out = op.infer(ctx) if op.infer and not is_preset else None
    if len(diags) > n_before and any(d.is_error for d in diags[n_before:]):
        return None
    if out is None:
        first = next(iter(in_types.values()), None)
        out = RType(op.output, cohort=first.cohort if first else None, outcome=first.outcome if first else None,
                    dims=first.dims if first else None, detail=op.name)
    return settings, out, inputs


def signature(op) -> str:
    ports = ", ".join(f"{p.name}{'?' if p.optional else ''}: {'|'.join(p.kinds)}" for p in op.inputs)
    return f"{op.name}({ports}) -> {op.output}"
