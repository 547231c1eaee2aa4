"""Merge identical stages: same operator, same settings, same inputs -> one stage, consumers rewired."""

from __future__ import annotations

import json

from radlang.compiled import InputRef


def _key(stage, alias):
    ins = {p: str(InputRef(alias.get(r.stage, r.stage), r.attr)) for p, r in sorted(stage.inputs.items())}
    return json.dumps([stage.op, stage.params, ins], sort_keys=True, default=str)


def merge_identical(study):
    alias: dict[str, str] = {}
    seen: dict[str, str] = {}
    kept = []
    for s in study.stages:  # topological order: inputs are already aliased
        if s.kind == "cohort" or _has_sink(s):
            s.inputs = {p: InputRef(alias.get(r.stage, r.stage), r.attr) for p, r in s.inputs.items()}
            kept.append(s)
            continue
        s.inputs = {p: InputRef(alias.get(r.stage, r.stage), r.attr) for p, r in s.inputs.items()}
        k = _key(s, alias)
        if k in seen:
            alias[s.name] = seen[k]
            s.merged_into = seen[k]
            study.notes.append(f"merged `{s.name}` into identical stage `{seen[k]}`")
            continue
        seen[k] = s.name
        kept.append(s)
    if alias:
        g = study.graph
        for old, new in alias.items():
            for succ in list(g.successors(old)):
                g.add_edge(new, succ)
            g.remove_node(old)
    study.stages = kept
    return study


def _has_sink(stage):
    from radlang import registry

    return registry.get(stage.op).sink
