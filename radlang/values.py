"""IR values -> plain Python values that settings models validate.

Numbers stay numbers, `2mm` becomes a Quantity, bare names and dotted references become
`Sym` (a str that remembers it was a name), nested calls become `CallValue`, rules such as
`sensitivity >= 0.9` become `Rule`. A path -> span map lets pydantic errors point at source.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, model_validator
from pydantic_core import PydanticCustomError

from radlang.diagnostics import Span, did_you_mean
from radlang.ir.nodes import Bool, CallV, Cast, Compare, ListV, NoneV, Num, Ref, Str
from radlang.units import Quantity


class Sym(str):
    """A bare name or dotted reference written in the spec (not a quoted string)."""

    @property
    def parts(self) -> tuple[str, ...]:
        return tuple(self.split("."))


@dataclass(frozen=True)
class CallValue:
    name: str
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)

    def __hash__(self):
        return hash((self.name, self.args, tuple(sorted(self.kwargs))))


@dataclass(frozen=True)
class Rule:
    """`metric op value`, e.g. sensitivity >= 0.9."""

    left: Any
    op: str
    right: Any


@dataclass(frozen=True)
class CastValue:
    value: Any
    kind: Any


def to_python(v, path: tuple = (), spans: dict | None = None):
    """Convert an IR value; record the span of every sub-value under its path."""
    if spans is not None:
        spans[path] = v.span
    if isinstance(v, Num):
        return Quantity(v.value, v.unit) if v.unit else v.value
    if isinstance(v, Str):
        return v.value
    if isinstance(v, Bool):
        return v.value
    if isinstance(v, NoneV):
        return None
    if isinstance(v, Ref):
        return Sym(v.dotted)
    if isinstance(v, ListV):
        return [to_python(x, path + (i,), spans) for i, x in enumerate(v.items)]
    if isinstance(v, CallV):
        args, kwargs = [], {}
        for i, a in enumerate(v.args):
            if a.name is None:
                args.append(to_python(a.value, path + (i,), spans))
            else:
                kwargs[a.name] = to_python(a.value, path + (a.name,), spans)
        return CallValue(v.name, tuple(args), kwargs)
    if isinstance(v, Compare):
        return Rule(to_python(v.left, path + ("left",), spans), v.op, to_python(v.right, path + ("right",), spans))
    if isinstance(v, Cast):
        return CastValue(to_python(v.value, path + ("value",), spans), to_python(v.kind, path + ("kind",), spans))
    raise TypeError(type(v))


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(cls) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(cls.model_fields)
    return names


_SCALARS = frozenset({int, float, str, bool, type(None)})


def to_plain(v):
    """Settings -> JSON-able plain data (for cache keys, plans and rendered literals)."""
    if type(v) in _SCALARS:   # most values (exact types: a Sym is a str subclass and is handled below)
        return v
    if isinstance(v, BaseModel):
        d = {k: to_plain(getattr(v, k)) for k in _field_names(type(v))}
        call = getattr(type(v), "call_name", None)
        if call:
            d = {"kind": call, **d}
        return d
    if isinstance(v, Quantity):
        return {"value": v.value, "unit": v.unit}
    if isinstance(v, CallValue):
        return {"call": v.name, "args": [to_plain(a) for a in v.args], "kwargs": {k: to_plain(x) for k, x in sorted(v.kwargs.items())}}
    if isinstance(v, Rule):
        return {"left": to_plain(v.left), "op": v.op, "right": to_plain(v.right)}
    if isinstance(v, CastValue):
        return {"value": to_plain(v.value), "as": to_plain(v.kind)}
    if isinstance(v, (list, tuple)):
        return [to_plain(x) for x in v]
    if isinstance(v, dict):
        return {str(k): to_plain(x) for k, x in sorted(v.items())}
    if isinstance(v, Sym):
        return str(v)
    return v


def out_of_range(message: str) -> PydanticCustomError:
    """A validator's error for a value outside its allowed range (E302)."""
    return PydanticCustomError("range", message)


def contradiction(message: str) -> PydanticCustomError:
    """A validator's error for settings that contradict each other (E306)."""
    return PydanticCustomError("contradiction", message)


def outside_out(message: str) -> PydanticCustomError:
    """A validator's error for a setting that would make a run write outside its out folder (E308)."""
    return PydanticCustomError("outside_out", message)


class Settings(BaseModel):
    """Base class of every operator's settings model: strict about unknown keys, immutable.

    `exclusive` lists groups of settings that exclude each other: at most one setting of a group may be
    given (E306), and under `like` a statement's own setting replaces the inherited settings of its group."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)  # schemas build on first use: `radlang check` starts fast
    exclusive: ClassVar[tuple[tuple[str, ...], ...]] = ()

    @model_validator(mode="after")
    def _one_of_each_exclusive_group(self):
        for group in type(self).exclusive:
            given = [k for k in group if getattr(self, k) is not None]
            if len(given) > 1:
                raise contradiction(f"set {' or '.join(f'`{k}`' for k in group)}, not {'both' if len(group) == 2 else 'several'}")
        return self


class Variant(Settings):
    """A settings sub-model written as a call, e.g. `stratified_kfold(5, repeats: 3)`.

    Subclasses set `call_name` and `positional` (names that positional arguments fill)."""

    call_name: ClassVar[str] = ""
    positional: ClassVar[tuple[str, ...]] = ()


def variants(*classes: type[Variant]):
    """A validator that accepts `name(...)`, a bare `name`, or a dict, and builds the right Variant."""
    table = {c.call_name: c for c in classes}

    def build(v):
        if isinstance(v, Variant):
            return v
        if isinstance(v, Sym):
            v = CallValue(str(v))
        if isinstance(v, str) and not isinstance(v, Sym):
            v = CallValue(v)
        if isinstance(v, CallValue):
            cls = table.get(v.name)
            if cls is None:
                hint = did_you_mean(v.name, table) or ""
                raise PydanticCustomError("variant", "unknown `{name}`; expected one of {allowed}. {hint}",
                                          {"name": v.name, "allowed": ", ".join(sorted(table)), "hint": hint})
            if len(v.args) > len(cls.positional):
                raise PydanticCustomError("variant", "`{name}` takes at most {n} positional argument(s)",
                                          {"name": v.name, "n": len(cls.positional)})
            data = dict(zip(cls.positional, v.args))
            data.update(v.kwargs)
            return cls.model_validate(data)
        if isinstance(v, dict) and "kind" in v:
            d = dict(v)
            cls = table[d.pop("kind")]
            return cls.model_validate(d)
        raise PydanticCustomError("variant", "expected one of {allowed}", {"allowed": ", ".join(sorted(table))})

    return BeforeValidator(build)


def closest_span(spans: dict, loc: tuple) -> Span | None:
    """The span of the longest prefix of a pydantic error location that the source knows."""
    loc = tuple(loc)
    for n in range(len(loc), 0, -1):
        key = tuple(x for x in loc[:n])
        if key in spans:
            return spans[key]
        # pydantic inserts union/validator tags into locations; try skipping non-matching strings
        filtered = tuple(x for x in key if (x in spans.get("__keys__", ())) or isinstance(x, int))
        if filtered in spans:
            return spans[filtered]
    return None
