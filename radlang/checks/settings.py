"""Validate a statement's settings against its operator's Pydantic model; map errors to source spans."""

from __future__ import annotations

from pydantic import ValidationError

from radlang.diagnostics import Diagnostic, did_you_mean

_RANGE = {"greater_than", "greater_than_equal", "less_than", "less_than_equal", "too_short", "too_long",
          "multiple_of"}


def code_for(err_type: str) -> str:
    if err_type == "extra_forbidden":
        return "E301"
    if err_type in _RANGE or err_type == "range":
        return "E302"
    if err_type == "unit":
        return "E303"
    if err_type == "missing":
        return "E305"
    if err_type == "contradiction":
        return "E306"
    if err_type == "outside_out":
        return "E308"
    return "E304"


def validate_settings(op, values: dict, spans: dict, key_spans: dict, stmt_span, diags: list):
    """Return the settings model instance, or None after appending diagnostics."""
    try:
        return op.settings.model_validate(values)
    except ValidationError as ve:
        fields = list(op.settings.model_fields)
        for err in ve.errors(include_url=False):
            loc = tuple(err.get("loc", ()))
            key = loc[0] if loc else None
            etype = err["type"]
            code = code_for(etype)
            hint = None
            path = tuple(x for x in loc if not _is_tag(x))
            if code == "E301" and len(path) > 1:
                # an unknown keyword inside a nested call, e.g. `cv: stratified_kfold(5, repeets: 2)`
                span = _span_for(path, spans) or key_spans.get(key, stmt_span)
                inner = values.get(key)
                where = f"`{getattr(inner, 'name', key)}`" if not isinstance(inner, (list, dict)) else f"`{'.'.join(map(str, path[:-1]))}`"
                msg = f"{'.'.join(map(str, path[:-1]))}: {where} has no setting `{path[-1]}`"
                names = _sub_fields(op.settings, path[:-1])
                hint = (did_you_mean(str(path[-1]), names) or f"its settings are: {', '.join(names)}") if names else None
            elif code == "E301":
                span = key_spans.get(key, stmt_span)
                msg = f"`{op.name}` has no setting `{key}`"
                hint = did_you_mean(str(key), fields) or (f"its settings are: {', '.join(fields)}" if fields else "it takes no settings")
            elif code == "E305":
                span = stmt_span
                msg = f"`{op.name}` needs the setting `{'.'.join(map(str, loc))}`"
            else:
                span = _span_for(loc, spans) or key_spans.get(key, stmt_span)
                where = ".".join(str(x) for x in loc if not _is_tag(x))
                msg = f"{where}: {_clean(err['msg'])}" if where else _clean(err["msg"])
                if etype == "literal_error":
                    allowed = _literal_allowed(err)
                    bad = err.get("input")
                    if allowed and isinstance(bad, str):
                        hint = did_you_mean(bad, allowed) or f"allowed: {', '.join(allowed)}"
                    elif allowed:
                        hint = f"allowed: {', '.join(allowed)}"
            diags.append(Diagnostic(code, msg, span, hint=hint))
        return None


def _sub_fields(model, path) -> list[str]:
    """Field names of the nested settings model at `path` (best effort: variant calls and sub-models)."""
    cls = model
    for part in path:
        f = getattr(cls, "model_fields", {}).get(part) if isinstance(part, str) else None
        if f is None:
            return []
        cands = [a for a in _flatten(f.annotation) if hasattr(a, "model_fields")]
        if len(cands) != 1:
            return sorted({n for c in cands for n in c.model_fields})
        cls = cands[0]
    return list(getattr(cls, "model_fields", {}))


def _flatten(ann):
    import typing

    args = typing.get_args(ann)
    if not args:
        return [ann]
    out = []
    for a in args:
        out += _flatten(a)
    return out


def _is_tag(x) -> bool:
    return isinstance(x, str) and (x.startswith("function-") or "[" in x or x in {"list", "dict", "str", "int", "float", "bool"})


def _span_for(loc, spans):
    path = tuple(x for x in loc if not _is_tag(x))
    for n in range(len(path), 0, -1):
        if path[:n] in spans:
            return spans[path[:n]]
    return None


def _clean(msg: str) -> str:
    msg = msg.replace("Value error, ", "")
    return msg[:1].lower() + msg[1:] if msg else msg


def _literal_allowed(err) -> list[str]:
    exp = (err.get("ctx") or {}).get("expected", "")
    return [p.strip().strip("'\"") for p in exp.replace(" or ", ", ").split(",") if p.strip()]
