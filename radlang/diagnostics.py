"""Diagnostics: one dataclass, one text renderer, one JSON renderer.

Codes are ranged by phase (the first digit, `PHASES`); every code and its meaning is listed in
radlang/codes.py.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from radlang.codes import PHASES


class Span(NamedTuple):
    """A half-open source range. Lines and columns are 1-based. (A named tuple: the parser makes one per
    node and token, tens of thousands for a big spec, and a tuple is several times cheaper to build than a
    frozen dataclass.)"""

    file: str
    line: int
    col: int
    end_line: int
    end_col: int
    start: int = 0
    end: int = 0

    def short(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True)
class Related:
    span: Span
    message: str


@dataclass(frozen=True)
class Diagnostic:
    code: str
    message: str
    span: Span | None = None
    hint: str | None = None
    related: tuple[Related, ...] = ()
    severity: str = field(default="")

    def __post_init__(self):
        if not self.severity:
            object.__setattr__(self, "severity", "warning" if self.code.startswith("W") else "error")

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    @property
    def phase(self) -> str:
        return PHASES.get(self.code[1:2], "other")

    def sort_key(self):
        s = self.span
        return (s.file if s else "", s.line if s else 0, s.col if s else 0, self.code, self.message)

    def to_json(self) -> dict:
        def span_json(s: Span | None):
            if s is None:
                return None
            return {"file": s.file, "line": s.line, "col": s.col, "end_line": s.end_line, "end_col": s.end_col}

        return {
            "code": self.code,
            "severity": self.severity,
            "phase": self.phase,
            "message": self.message,
            "span": span_json(self.span),
            "hint": self.hint,
            "related": [{"span": span_json(r.span), "message": r.message} for r in self.related],
        }


class DiagnosticError(Exception):
    """Raised to abort a phase with diagnostics already collected."""

    def __init__(self, diagnostics: Iterable[Diagnostic]):
        self.diagnostics = list(diagnostics)
        super().__init__("; ".join(d.message for d in self.diagnostics))


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """A hint like "did you mean `glszm`?" or None."""
    cands = sorted(set(candidates))
    best = difflib.get_close_matches(word, cands, n=1, cutoff=0.6)
    if not best:
        lower = {c.lower(): c for c in cands}
        if word.lower() in lower:
            best = [lower[word.lower()]]
    return f"did you mean `{best[0]}`?" if best else None


def label_cases(pairs, shown=5):
    """[(label, case id)] -> "`0` (5 cases), `1` (4 cases), `2` (1 case: `c7`)": each outcome label with its number
    of cases, most frequent first, and the cases named for every label after the two most frequent (the strays).
    Self-contained: the cohort operators list it among their helpers."""
    by = {}
    for label, case in pairs:
        by.setdefault(label, []).append(case)
    order = sorted(by, key=lambda lab: (-len(by[lab]), lab))
    parts = []
    for i, lab in enumerate(order):
        cases = by[lab]
        text = f"`{lab}` ({len(cases)} case{'' if len(cases) == 1 else 's'}"
        if i >= 2:
            text += ": " + ", ".join(f"`{c}`" for c in cases[:shown]) + (f" and {len(cases) - shown} more" if len(cases) > shown else "")
        parts.append(text + ")")
    return ", ".join(parts)


def _source_line(sources: dict[str, str], span: Span, _lines: dict | None = None) -> str | None:
    text = sources.get(span.file)
    if text is None:
        return None
    if _lines is None:
        lines = text.split("\n")
    else:  # one split per file per rendering, not one per diagnostic
        lines = _lines.get(span.file)
        if lines is None:
            lines = _lines[span.file] = text.split("\n")
    if 1 <= span.line <= len(lines):
        return lines[span.line - 1]
    return None


def _excerpt(sources: dict[str, str], span: Span, _lines: dict | None = None) -> list[str]:
    line = _source_line(sources, span, _lines)
    if line is None:
        return []
    shown = line if len(line) <= 200 else line[: max(span.col + 40, 200)] + " …"
    shown = shown.replace("\t", " ")
    width = (span.end_col - span.col) if span.end_line == span.line else (len(line) - span.col + 1)
    width = max(1, min(width, max(1, len(shown) - span.col + 1)))
    gutter = f"{span.line:>4} | "
    return [gutter + shown, " " * (len(gutter) + span.col - 1) + "^" * width]


def render_text(diags: Iterable[Diagnostic], sources: dict[str, str]) -> str:
    diags = list(diags)   # may be a generator: it is walked twice
    out: list[str] = []
    lines: dict = {}
    for d in diags:
        loc = d.span.short() + ": " if d.span else ""
        out.append(f"{loc}{d.severity}[{d.code}]: {d.message}")
        if d.span:
            out.extend(_excerpt(sources, d.span, lines))
        if d.hint:
            out.append(f"  hint: {d.hint}")
        for r in d.related:
            out.append(f"  note: {r.span.short()}: {r.message}")
            out.extend("  " + ln for ln in _excerpt(sources, r.span, lines))
        out.append("")
    diags = list(diags)
    n_err = sum(d.is_error for d in diags)
    n_warn = len(diags) - n_err
    if diags:
        out.append(f"{n_err} error(s), {n_warn} warning(s)")
    return "\n".join(out)


def render_json(diags: Iterable[Diagnostic]) -> str:
    return json.dumps({"diagnostics": [d.to_json() for d in diags]}, indent=2, sort_keys=True)
