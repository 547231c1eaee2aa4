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
        # ports name stages; inside settings only a dotted reference (`groups: train.id`) does. A bare name in a
        # setting is a symbol (a column, a feature class, an option), even when a stage has the same name.
        heads = {r.parts[0] for r in b.ports.values()} | {r.parts[0] for r in b.refs if len(r.parts) > 1 and r.parts[0] in bounds}
        for h in sorted(heads):
            if h in bounds:
                g.add_edge(h, name)
    return g


def induced(g: nx.DiGraph, keep) -> nx.DiGraph:
    """The subgraph on `keep`, as a real graph (a NetworkX subgraph view makes every later traversal slow)."""
    keep = set(keep)
    if keep >= set(g.nodes):
        return g
    h = nx.DiGraph()
    h.add_nodes_from(n for n in g.nodes if n in keep)
    h.add_edges_from((a, b) for a, b in g.edges if a in keep and b in keep)
    return h


def check_cycles(g: nx.DiGraph, bounds: dict, diags: list) -> bool:
    if nx.is_directed_acyclic_graph(g):   # one linear pass; the cycles are listed only when there are some
        return True
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
