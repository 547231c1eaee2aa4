"""Merge feature stages that read the same images through the same preprocessing into one PyRadiomics pass.

Two `pyradiomics` stages with the same image and mask inputs and the same settings apart from `filters`
and `classes` are extracted once per case with the union of their filters and classes: each filtered image
(LoG, wavelet, ...) is computed once, and the result is split back into the two tables (see
`member_columns` in radlang/ops/features.py). Both members key the per-case cache by the union, so the
second member reads what the first computed. `radlang plan` shows the merge in each member's notes."""

from __future__ import annotations

import json

SELECTION = ("filters", "classes")
ALL_CLASSES = ("firstorder", "shape", "glcm", "glrlm", "glszm", "gldm", "ngtdm")


def _group_key(stage) -> str:
    base = {k: v for k, v in stage.params.items() if k not in SELECTION}
    ins = {p: str(r) for p, r in sorted(stage.inputs.items())}
    return json.dumps([stage.op, ins, base], sort_keys=True, default=str)


def union_filters(lists):
    """Union of filter lists; LoG sigmas are merged. None if two members set one filter differently."""
    out: dict[str, dict] = {}
    for filters in lists:
        for f in filters or [{"kind": "original"}]:
            k = f["kind"]
            if k not in out:
                out[k] = dict(f)
            elif k == "log":
                out[k]["sigma"] = sorted(set(out[k]["sigma"]) | set(f["sigma"]))
            elif out[k] != f:
                return None
    return list(out.values())


def union_classes(lists):
    out: dict[str, list | None] = {}
    for classes in lists:
        for c in classes or [{"name": n, "features": []} for n in ALL_CLASSES]:
            have = out.get(c["name"], "absent")
            if have == "absent":
                out[c["name"]] = list(c["features"])
            elif have and c["features"]:
                out[c["name"]] = have + [f for f in c["features"] if f not in have]
            else:
                out[c["name"]] = []          # one member wants the whole class
    return [{"name": n, "features": f} for n, f in out.items()]


def merge_features(study):
    groups: dict[str, list] = {}
    for s in study.stages:
        if s.op != "pyradiomics" or s.params.get("params"):
            continue
        groups.setdefault(_group_key(s), []).append(s)
    for members in groups.values():
        if len(members) < 2:
            continue
        filters = union_filters([m.params.get("filters") for m in members])
        if filters is None:
            continue
        classes = union_classes([m.params.get("classes") for m in members])
        union = dict(members[0].params, filters=filters, classes=classes)
        names = [m.name for m in members]
        kinds = ", ".join(f["kind"] + (f"(sigma: {f['sigma']})" if f["kind"] == "log" else "") for f in filters)
        for m in members:
            others = ", ".join(f"`{n}`" for n in names if n != m.name)
            m.extra["merge"] = {"group": names, "params": union}
            m.extra.setdefault("plan_notes", []).append(
                f"merged with {others} into one PyRadiomics pass per case (filters computed once: {kinds}); the result is split back")
        study.notes.append(f"feature stages {', '.join(f'`{n}`' for n in names)} share one PyRadiomics pass")
    return study
