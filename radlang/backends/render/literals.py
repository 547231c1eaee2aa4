"""Python literals and comments for the rendered script: values as `repr`-safe literals, spec text as sanitised
`#` lines, names as identifiers. Nothing from a spec is ever pasted into code."""

from __future__ import annotations

import keyword
import math
import re
from typing import Any


class RenderError(Exception):
    """A study that cannot be rendered, or a script that cannot be written. `.code`: E7xx usage, E2xx/E6xx otherwise."""

    def __init__(self, code: str, message: str):
        self.code = code
        super().__init__(message)


def pylit(obj: Any, indent: int = 0, width: int = 100, pack: bool = False) -> str:
    """A deterministic Python literal for JSON-able data (what Stage.params holds). Strings go through
    repr(), so quotes, backslashes, newlines and template syntax stay inert. A literal too long for one line
    has one item a line, or with `pack` as many short items a line as fit in `width`."""
    flat = flat_literal(obj)
    if len(flat) + indent <= width or not isinstance(obj, (dict, list, tuple)) or not obj:
        return flat
    pad, inner = " " * indent, " " * (indent + 4)
    if isinstance(obj, dict):
        open_, close = "{", "}"
        items = [f"{flat_literal(k)}: {pylit(v, indent + 4, width, pack)}," for k, v in obj.items()]
    else:
        open_, close = ("[", "]") if isinstance(obj, list) else ("(", ")")
        items = [f"{pylit(v, indent + 4, width, pack)}," for v in obj]
    lines: list[str] = []
    for item in items:
        if pack and lines and "\n" not in item and "\n" not in lines[-1] and len(lines[-1]) + 1 + len(item) <= width:
            lines[-1] += " " + item
        else:
            lines.append(inner + item)
    return open_ + "\n" + "\n".join(lines) + f"\n{pad}{close}"


def flat_literal(obj: Any) -> str:
    if obj is None or isinstance(obj, bool):
        return repr(obj)
    if isinstance(obj, int):
        return repr(int(obj))
    if isinstance(obj, float):
        if math.isnan(obj):
            return 'float("nan")'
        if math.isinf(obj):
            return 'float("inf")' if obj > 0 else '-float("inf")'
        return repr(float(obj))
    if isinstance(obj, str):
        return repr(str(obj))
    if isinstance(obj, dict):
        return "{" + ", ".join(f"{flat_literal(k)}: {flat_literal(v)}" for k, v in obj.items()) + "}"
    if isinstance(obj, list):
        return "[" + ", ".join(flat_literal(v) for v in obj) + "]"
    if isinstance(obj, tuple):
        return "(" + ", ".join(flat_literal(v) for v in obj) + ("," if len(obj) == 1 else "") + ")"
    if hasattr(obj, "model_dump"):
        from radlang.values import to_plain

        return flat_literal(to_plain(obj))
    raise RenderError("E705", f"cannot write a {type(obj).__name__} as a Python literal")


def comment_text(text: str) -> str:
    """One line of text that is safe inside a `#` comment: no line breaks, nothing unprintable."""
    out = []
    for ch in str(text):
        if ch == "\t":
            out.append("    ")
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    return "".join(out).rstrip()


def identifier(name: str) -> str:
    """A stage name as part of a Python identifier (stage names are radlang NAMEs already)."""
    s = re.sub(r"\W", "_", name)
    return s + "_" if keyword.iskeyword(s) else s
