"""The typed IR: frozen Pydantic models, each carrying its source span."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

from radlang.diagnostics import Span as _Span

# a span serialises with its field names (`radlang parse --format json`), not as a bare tuple
Span = Annotated[_Span, PlainSerializer(lambda s: s._asdict(), return_type=dict)]


class Node(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True, defer_build=True)
    span: Span


class Num(Node):
    t: Literal["num"] = "num"
    value: float | int
    unit: str | None = None


class Str(Node):
    t: Literal["str"] = "str"
    value: str


class Bool(Node):
    t: Literal["bool"] = "bool"
    value: bool


class NoneV(Node):
    t: Literal["none"] = "none"


class Ref(Node):
    """A (possibly dotted) name: ``train`` or ``train.outcome``."""

    t: Literal["ref"] = "ref"
    parts: tuple[str, ...]

    @property
    def dotted(self) -> str:
        return ".".join(self.parts)


class ListV(Node):
    t: Literal["list"] = "list"
    items: tuple[Value, ...]


class ArgV(Node):
    name: str | None
    value: Value


class CallV(Node):
    t: Literal["call"] = "call"
    name: str
    name_span: Span
    args: tuple[ArgV, ...]

    @property
    def positional(self) -> tuple[Value, ...]:
        return tuple(a.value for a in self.args if a.name is None)

    @property
    def keywords(self) -> tuple[ArgV, ...]:
        return tuple(a for a in self.args if a.name is not None)


class Compare(Node):
    """A rule such as ``sensitivity >= 0.9``."""

    t: Literal["cmp"] = "cmp"
    op: str
    left: Value
    right: Value


class Cast(Node):
    """``malignant as binary``."""

    t: Literal["cast"] = "cast"
    value: Value
    kind: Value


Value = Annotated[Num | Str | Bool | NoneV | Ref | ListV | CallV | Compare | Cast, Field(discriminator="t")]


class Setting(Node):
    key: str
    key_span: Span
    value: Value


class Stmt(Node):
    """``kind name = op(args) like other { settings; nested statements }``."""

    kind: str
    kind_span: Span
    name: str
    name_span: Span
    op: CallV
    like: str | None = None
    like_span: Span | None = None
    settings: tuple[Setting, ...] = ()
    children: tuple[Stmt, ...] = ()
    comments: tuple[str, ...] = ()


class Study(Node):
    title: str
    settings: tuple[Setting, ...] = ()


class Use(Node):
    path: str


class Module(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True, defer_build=True)
    file: str
    study: Study | None = None
    uses: tuple[Use, ...] = ()
    stmts: tuple[Stmt, ...] = ()


# Schemas are built on first validation (defer_build): the parser builds nodes directly, so
# `radlang check` never pays for them. Forward references ("Value", "Stmt") resolve then.
