"""`radlang graph`: the stage graph as DOT, Mermaid or JSON."""

from __future__ import annotations

import json


def _edges(study):
    out = []
    names = {s.name for s in study.stages}
    for s in study.stages:
        for p, r in sorted(s.inputs.items()):
            if r.stage in names:
                out.append((r.stage, s.name, p + (f" ({r.attr})" if r.attr else "")))
        for ref in s.extra.get("refs", []):
            head = ref.split(".")[0]
            if "." in ref and head in names and head not in {r.stage for r in s.inputs.values()}:
                out.append((head, s.name, ref))
    return out


def to_dot(study) -> str:
    lines = ["digraph study {", "  rankdir=LR;", "  node [shape=box, fontname=Helvetica];"]
    for s in study.stages:
        style = ', style="rounded,filled", fillcolor="#fde2c8"' if s.fit != "none" else ""
        lines.append(f'  "{s.name}" [label="{s.kind} {s.name}\\n{s.op}"{style}];')
    for a, b, label in _edges(study):
        lines.append(f'  "{a}" -> "{b}" [label="{label}"];')
    lines.append("}")
    return "\n".join(lines)


def to_mermaid(study) -> str:
    lines = ["flowchart LR"]
    for s in study.stages:
        lines.append(f'  {s.name}["{s.kind} {s.name}<br/>{s.op}"]')
    for a, b, label in _edges(study):
        lines.append(f"  {a} -->|{label}| {b}")
    return "\n".join(lines)


def to_json(study) -> str:
    return json.dumps({
        "nodes": [{"name": s.name, "kind": s.kind, "op": s.op, "fit": s.fit} for s in study.stages],
        "edges": [{"from": a, "to": b, "label": label} for a, b, label in _edges(study)],
    }, indent=2, sort_keys=True)
