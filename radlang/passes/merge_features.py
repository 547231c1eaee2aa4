"""Merge stages that read the same inputs with compatible settings into one pass, as their operator declares.

An operator that declares `merge` (a settings-merging function) and `merge_settings` (the settings that may
differ between members) has its stages grouped by operator, inputs and every other setting. Each group of two
or more whose settings merge (`merge` returns the union, or None when they cannot) runs once per case with the
union, and each member keeps its own part of the result. PyRadiomics stages that differ only in `filters` and
`classes` are the case today: each filtered image (LoG, wavelet, ...) is computed once (see radlang/ops/features.py).
Both members key the per-case cache by the union, so the second member reads what the first computed.
`radlang plan` shows the merge in each member's notes."""

from __future__ import annotations

import json

from radlang import registry


def _group_key(stage, differing) -> str:
    base = {k: v for k, v in stage.params.items() if k not in differing}
    ins = {p: str(r) for p, r in sorted(stage.inputs.items())}
    return json.dumps([stage.op, ins, base], sort_keys=True, default=str)


def merge_features(study):
    groups: dict[str, list] = {}
    for s in study.stages:
        op = registry.get(s.op)
        if op.merge is None:
            continue
        groups.setdefault(_group_key(s, op.merge_settings), []).append(s)
    for members in groups.values():
        if len(members) < 2:
            continue
        merged = registry.get(members[0].op).merge([m.params for m in members])
        if merged is None:
            continue
        union, summary = merged
        names = [m.name for m in members]
        for m in members:
            others = ", ".join(f"`{n}`" for n in names if n != m.name)
            m.extra["merge"] = {"group": names, "params": union}
            m.extra.setdefault("plan_notes", []).append(f"merged with {others} into {summary}; the result is split back")
        study.notes.append(f"stages {', '.join(f'`{n}`' for n in names)} share {summary}")
    return study
