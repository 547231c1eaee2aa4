"""A canonical, deterministic text form of the IR, for golden tests and `radlang parse`."""

from __future__ import annotations

import json

from radlang.ir.nodes import ArgV, Bool, CallV, Cast, Compare, ListV, Module, NoneV, Num, Ref, Setting, Stmt, Str


def value_text(v) -> str:
    if isinstance(v, Num):
        num = repr(v.value) if isinstance(v.value, float) else str(v.value)
        return num + (v.unit or "")
    if isinstance(v, Str):
        return json.dumps(v.value, ensure_ascii=False)
    if isinstance(v, Bool):
        return "true" if v.value else "false"
    if isinstance(v, NoneV):
        return "none"
    if isinstance(v, Ref):
        return v.dotted
    if isinstance(v, ListV):
        return "[" + ", ".join(value_text(i) for i in v.items) + "]"
    if isinstance(v, CallV):
        return v.name + "(" + ", ".join(arg_text(a) for a in v.args) + ")"
    if isinstance(v, Compare):
        return f"({value_text(v.left)} {v.op} {value_text(v.right)})"
    if isinstance(v, Cast):
        return f"({value_text(v.value)} as {value_text(v.kind)})"
    raise TypeError(type(v))


def arg_text(a: ArgV) -> str:
    return (f"{a.name}: " if a.name else "") + value_text(a.value)


def _settings(settings: tuple[Setting, ...], indent: str) -> list[str]:
    return [f"{indent}{s.key}: {value_text(s.value)}  @{s.span.line}:{s.span.col}" for s in settings]


def _stmt(s: Stmt, indent: str) -> list[str]:
    like = f" like {s.like}" if s.like else ""
    lines = [f"{indent}{s.kind} {s.name} = {value_text(s.op)}{like}  @{s.span.line}:{s.span.col}"]
    for c in s.comments:
        lines.append(f"{indent}  # {c}")
    lines += _settings(s.settings, indent + "  ")
    for c in s.children:
        lines += _stmt(c, indent + "  ")
    return lines


def dump(m: Module) -> str:
    lines = [f"module {json.dumps(m.file)}"]
    if m.study:
        lines.append(f"study {json.dumps(m.study.title, ensure_ascii=False)}  @{m.study.span.line}:{m.study.span.col}")
        lines += _settings(m.study.settings, "  ")
    for u in m.uses:
        lines.append(f"use {json.dumps(u.path)}  @{u.span.line}:{u.span.col}")
    for s in m.stmts:
        lines += _stmt(s, "")
    return "\n".join(lines) + "\n"
