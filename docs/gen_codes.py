"""Regenerate the table of diagnostic codes in docs/language.md (section 6) from radlang/codes.py.

    .venv/bin/python docs/gen_codes.py          # rewrite the generated table in place
    .venv/bin/python docs/gen_codes.py --check  # exit 1 if the table is out of date (tests/test_docs.py runs this)

The table lies between the two marker lines below; everything else in the file is hand-written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

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
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{DOC}: the markers {BEGIN!r} and {END!r} are missing")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{generated()}{END}{tail}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only report whether the table is up to date")
    a = ap.parse_args(argv)
    old = DOC.read_text(encoding="utf-8")
    new = render(old)
    if a.check:
        if new != old:
            print(f"{DOC} is out of date: run `python docs/gen_codes.py`", file=sys.stderr)
            return 1
        return 0
    if new != old:
        DOC.write_text(new, encoding="utf-8")
        print(f"updated {DOC}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
