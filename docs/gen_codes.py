"""Regenerate the table of diagnostic codes in docs/language.md (section 6) from radlang/codes.py.

    .venv/bin/python docs/gen_codes.py          # rewrite the generated table in place
    .venv/bin/python docs/gen_codes.py --check  # exit 1 if the table is out of date (tests/test_docs.py runs this)

The table lies between the two marker lines below; everything else in the file is hand-written.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generated_section import regenerate, splice

DOC = Path(__file__).resolve().parent / "language.md"
BEGIN = "<!-- BEGIN GENERATED DIAGNOSTIC CODES (docs/gen_codes.py) -->"
END = "<!-- END GENERATED DIAGNOSTIC CODES -->"


def cell(text: str) -> str:
    return text.replace("|", "\\|")


def generated() -> str:
    sys.path.insert(0, str(DOC.parents[1]))
    from radlang.codes import CODES, PHASES

    out = ["<!-- generated from radlang/codes.py; do not edit by hand -->"]
    for digit, phase in PHASES.items():
        codes = [c for c in CODES.values() if c.code[1] == digit]
        if not codes:
            continue
        out += ["", f"**E{digit}xx · {phase}**", "", "| code | meaning | details |", "|---|---|---|"]
        out += [f"| {c.code} | {cell(c.meaning)} | {cell(c.doc)} |" for c in codes]
    return "\n".join(out) + "\n"


def render(text: str) -> str:
    return splice(text, BEGIN, END, generated(), DOC)


def main(argv=None) -> int:
    return regenerate(DOC, render, "docs/gen_codes.py", __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    raise SystemExit(main())
