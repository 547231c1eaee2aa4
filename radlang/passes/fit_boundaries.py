"""Mark fit boundaries: the model chain of a validation stage (its `select` and `model` stages, all
fit on outcomes or data statistics) is (re)fit inside that validation's training folds only.
Fitted stages above the chain (a trained network, say) are fit once; the design check (E504)
makes sure they were not fit on the cohort being cross-validated."""

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
            if s.fit != "none" and registry.get(s.op).mode == "estimator" and v.name not in s.fit_within:
                s.fit_within = tuple(sorted(s.fit_within + (v.name,)))
    return study
