"""`radlang plan`: the ordered stages, fit boundaries, what each consumes and produces, and estimates."""

from __future__ import annotations

import re

from radlang import registry


def parse_memory(text: str | None) -> int | None:
    if not text:
        return None
    m = re.fullmatch(r"\s*([\d.]+)\s*([KMGT]?i?B?)?\s*", text, re.I)
    if not m:
        raise ValueError(f"cannot read memory budget {text!r}; write e.g. 8GB")
    unit = (m.group(2) or "B").upper().replace("IB", "B")
    mult = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}[unit]
    return int(float(m.group(1)) * mult)


def _stage_info(study, s, memory):
    op = registry.get(s.op)
    extra = []
    if op.plan is not None:
        import inspect

        # plan(stage, memory) or plan(stage, memory, study): the study lets a stage read its inputs' settings
        args = (s, memory, study) if len(inspect.signature(op.plan).parameters) >= 3 else (s, memory)
        try:
            extra = [{"severity": sev, "text": t} for sev, t in op.plan(*args)]
        except Exception as e:  # an estimate must never take `radlang plan` down; say so in the plan instead
            extra = [{"severity": "warning", "text": f"no estimate: `{op.name}`'s plan failed ({type(e).__name__}: {e})"}]
    for n in s.extra.get("plan_notes", []):
        extra.append({"severity": "info", "text": n})
    return {
        "name": s.name, "kind": s.kind, "op": s.op, "behaviour": op.behaviour,
        "consumes": {p: str(r) for p, r in sorted(s.inputs.items())},
        "produces": s.type.describe(),
        "fit": s.fit, "fit_within": list(s.fit_within),
        # the seed the stage runs with: its own (from the study seed and its name), or the one its settings give
        "seed": s.params["seed"] if isinstance(s.params.get("seed"), int) else s.seed,
        "settings": s.params, "notes": extra,
        **({"refit": {**study.refit[s.name].to_plain(), "edges": [f"{a} -> {b}.{port}" for a, b, port in study.refit[s.name].edges]}}
           if s.name in study.refit else {}),
    }


def plan_json(study, memory=None) -> dict:
    mem = parse_memory(memory)
    return {
        "study": study.title, "seed": study.seed, "out": study.out,
        "stages": [_stage_info(study, s, mem) for s in study.stages],
        "notes": list(study.notes),
    }


def plan_text(study, memory=None) -> str:
    pj = plan_json(study, memory)
    lines = [f"study \"{pj['study']}\"  seed {pj['seed']}  out {pj['out']}", ""]
    for i, s in enumerate(pj["stages"], 1):
        cons = ", ".join(f"{p}={r}" for p, r in s["consumes"].items()) or "-"
        lines.append(f"{i:>3}. {s['kind']} {s['name']} = {s['op']}   [{s['behaviour']}]   seed {s['seed']}")
        lines.append(f"       consumes: {cons}")
        lines.append(f"       produces: {s['produces']}")
        if s["fit"] != "none" and "refit" not in s:
            where = ", ".join(s["fit_within"])
            how = "outcomes" if s["fit"] == "outcome" else "data statistics"
            lines.append(f"       fit on {how}: " + (f"inside the training folds of {where}" if where else "on the whole training cohort (no validation uses it)"))
        for n in s["notes"]:
            mark = {"warning": "warning: ", "error": "error: "}.get(n["severity"], "")
            lines.append(f"       {mark}{n['text']}")
    if pj["notes"]:
        lines.append("")
        lines.extend(f"note: {n}" for n in pj["notes"])
    return "\n".join(lines)
