"""The output of the compiler: an ordered, checked stage graph that backends consume."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from radlang.diagnostics import Span
from radlang.types import RType


@dataclass(frozen=True)
class InputRef:
    """A port's source: a stage, optionally one of its attributes (`train.outcome`)."""

    stage: str
    attr: str | None = None

    def __str__(self):
        return self.stage + (f".{self.attr}" if self.attr else "")


@dataclass
class Stage:
    name: str
    kind: str                      # statement kind
    op: str                        # operator name
    settings: Any                  # the validated pydantic settings model
    params: dict                   # settings as plain JSON-able data (cache keys, plans, rendered literals)
    inputs: dict[str, InputRef]    # port -> source
    type: RType
    span: Span
    seed: int = 0
    fit: str = "none"              # none | data | outcome
    fit_within: tuple[str, ...] = ()  # validate stages in whose training folds this stage is (re)fit
    merged_into: str | None = None # set by the merge pass when an identical stage replaces this one
    comments: tuple[str, ...] = ()
    extra: dict = field(default_factory=dict)  # what passes add (e.g. feature-merge groups)

    @property
    def deps(self) -> list[str]:
        return sorted({r.stage for r in self.inputs.values()})


@dataclass
class Study:
    title: str
    seed: int
    out: str
    file: str
    source: str
    stages: list[Stage]            # in execution order (lexicographic topological sort)
    graph: Any = None              # networkx.DiGraph
    notes: list[str] = field(default_factory=list)
    config: dict = field(default_factory=dict)   # study block: seed, out, workers, on_error

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)

    def by_name(self) -> dict[str, Stage]:
        return {s.name: s for s in self.stages}
