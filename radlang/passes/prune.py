"""Prune stages that feed no output (no sink downstream)."""

from __future__ import annotations

import networkx as nx

from radlang import registry
from radlang.checks.graph import induced


def prune(study):
    g = study.graph
    sinks = {s.name for s in study.stages if registry.get(s.op).sink}
    keep = set(sinks)
    for s in sinks:
        keep |= nx.ancestors(g, s)
    dropped = [s.name for s in study.stages if s.name not in keep]
    if dropped:
        study.notes.append(f"pruned (feed no output): {', '.join(dropped)}")
    study.stages = [s for s in study.stages if s.name in keep]
    study.graph = induced(g, [s.name for s in study.stages])
    return study
