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


@dataclass(frozen=True)
class RefitGraph:
    """What one validation stage refits inside each of its training folds (the `fit_boundaries` pass builds it;
    evaluation, the design checks, `plan` and `render` read it).

    `sources` are the feature tables computed before the folds: their columns are the fold's input. `nodes` are
    the stages between them and the model, in execution order, the model last: every one is fitted, or combines
    the outputs of fitted stages (a join). `edges` are (producer, consumer, consumer's port) among them."""

    validation: str
    model: str
    sources: tuple[str, ...]
    nodes: tuple[str, ...]
    edges: tuple[tuple[str, str, str], ...]

    def inputs_of(self, node: str) -> list[str]:
        """The producers feeding `node`, in the order of its ports' names."""
        return [a for a, b, _ in sorted(self.edges, key=lambda e: e[2]) if b == node]

    def to_plain(self) -> dict:
        return {"model": self.model, "sources": list(self.sources), "nodes": list(self.nodes),
                "edges": [list(e) for e in self.edges]}


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
    refit: dict[str, RefitGraph] = field(default_factory=dict)   # validation stage -> what its training folds refit

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)

    def by_name(self) -> dict[str, Stage]:
        return {s.name: s for s in self.stages}
