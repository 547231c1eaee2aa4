"""The operator registry. An operator is declared once, in one module under radlang/ops/:
its ports, its settings model, its output type, how it is fit, its implementation, and what the
renderer needs. The grammar never names operators; `radlang ops` and docs/language.md are
generated from this registry.

Implementation rule (it makes `radlang render` possible without writing logic twice): `impl`
and every function in `helpers` are self-contained. They use only their arguments, builtins,
other functions listed in `helpers`, and modules they import inside their own body (stdlib or
third-party, never radlang). The renderer inlines their source; the executor calls them.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

from radlang.types import RType
from radlang.values import Settings

Fit = Literal["none", "data", "outcome"]


@dataclass(frozen=True)
class Port:
    name: str
    kinds: tuple[str, ...]          # accepted RType kinds
    optional: bool = False
    doc: str = ""


@dataclass
class InferCtx:
    """What an operator's `infer` sees: its input types, its settings, and a way to complain."""

    stmt: Any
    inputs: dict[str, RType]
    settings: Any
    report: Callable[..., None]     # report(code, message, span=None, hint=None, setting=None)
    types: dict[str, RType]         # every stage type known so far, by name

    def error(self, code: str, message: str, *, setting: str | None = None, port: str | None = None, hint: str | None = None):
        self.report(code, message, setting=setting, port=port, hint=hint)


@dataclass(frozen=True)
class Operator:
    name: str
    kind: str                        # statement kind: cohort, segment, features, select, model, validate, ...
    doc: str
    settings: type[Settings]
    output: str                      # RType kind produced
    inputs: tuple[Port, ...] = ()
    positional: tuple[str, ...] = () # names (ports first, then settings) that positional arguments fill
    fit: Fit = "none"                # "data": fit on data statistics; "outcome": fit on outcomes
    mode: str = "table"              # how the executor runs it (see radlang/backends/modes)
    impl: Callable | None = None
    helpers: tuple[Callable, ...] = ()
    infer: Callable[[InferCtx], RType | None] | None = None
    version: str = "1"
    plan: Callable | None = None     # plan(stage, memory_budget_bytes) -> list of (severity, text) lines for `radlang plan`
    sink: bool = False               # its results are study outputs (files under <out>); sinks are never pruned
    render: dict = field(default_factory=dict)   # extra info for the renderer
    examples: tuple[str, ...] = ()

    @property
    def port_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.inputs)

    def port(self, name: str) -> Port | None:
        return next((p for p in self.inputs if p.name == name), None)


_REGISTRY: dict[str, Operator] = {}
_LOADED = False


def register(op: Operator) -> Operator:
    if op.name in _REGISTRY and _REGISTRY[op.name] is not op:
        raise ValueError(f"operator {op.name!r} is declared twice")
    _REGISTRY[op.name] = op
    return op


def operator(**kw):
    """Decorator form: the decorated function is the implementation."""

    def wrap(fn):
        register(Operator(impl=fn, **kw))
        return fn

    return wrap


def _load():
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    import radlang.ops as pkg

    for m in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if not m.name.startswith("_"):
            importlib.import_module(f"radlang.ops.{m.name}")


def get(name: str) -> Operator | None:
    _load()
    return _REGISTRY.get(name)


def all_ops() -> list[Operator]:
    _load()
    return [ _REGISTRY[k] for k in sorted(_REGISTRY) ]


def kinds() -> list[str]:
    """Statement kinds: those of the operators, plus `preset`."""
    return sorted({op.kind for op in all_ops()} | {"preset"})
