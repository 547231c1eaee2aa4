"""The IR as a NetworkX DAG: cycles (E401), unused stages (W402), and the deterministic order."""

from __future__ import annotations

import networkx as nx

from radlang.diagnostics import Diagnostic, Related


def build_graph(bounds: dict) -> nx.DiGraph:
    g = nx.DiGraph()
    for name in sorted(bounds):
        g.add_node(name)
    for name in sorted(bounds):
        b = bounds[name]
        heads = {r.parts[0] for r in b.ports.values()} | {r.parts[0] for r in b.refs if r.parts[0] in bounds}
        for h in sorted(heads):
            if h in bounds:
                g.add_edge(h, name)
    return g


def check_cycles(g: nx.DiGraph, bounds: dict, diags: list) -> bool:
    cycles = list(nx.simple_cycles(g))
    for cyc in sorted(cycles, key=lambda c: sorted(c)):
        first = sorted(cyc)[0]
        i = cyc.index(first)
        cyc = cyc[i:] + cyc[:i]
        path = " -> ".join(cyc + [cyc[0]])
        rel = tuple(Related(bounds[n].stmt.span, f"`{n}` is part of the cycle") for n in cyc[1:])
        diags.append(Diagnostic("E401", f"stages depend on each other in a cycle: {path}", bounds[first].stmt.name_span, related=rel,
                                hint="a stage can only use stages that do not, in turn, use it"))
    return not cycles


def order(g: nx.DiGraph) -> list[str]:
    """Deterministic: the lexicographically smallest topological order."""
    return list(nx.lexicographical_topological_sort(g))


def check_unused(g: nx.DiGraph, stages: dict, diags: list):
    for name in sorted(g.nodes):
        st = stages.get(name)
        if st is None:
            continue
        if g.out_degree(name) == 0 and not st["sink"]:
            diags.append(Diagnostic("W402", f"stage `{name}` is never used; it will not run", st["span"],
                                    hint="use it in another stage, or delete it"))
