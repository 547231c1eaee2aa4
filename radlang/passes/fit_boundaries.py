"""Mark fit boundaries: every stage fit on outcomes or data statistics that feeds a validation
stage is (re)fit inside that validation's training folds only."""

from __future__ import annotations

import networkx as nx

from radlang import registry


def fit_boundaries(study):
    g = study.graph
    by = study.by_name()
    for v in study.stages:
        if registry.get(v.op).mode != "evaluate":
            continue
        for a in sorted(nx.ancestors(g, v.name)):
            s = by[a]
            if s.fit != "none" and v.name not in s.fit_within:
                s.fit_within = tuple(sorted(s.fit_within + (v.name,)))
    return study
