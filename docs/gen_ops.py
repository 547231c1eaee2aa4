"""Regenerate the operator reference in docs/language.md from the registry.

    .venv/bin/python docs/gen_ops.py          # rewrite the generated section in place
    .venv/bin/python docs/gen_ops.py --check  # exit 1 if the section is out of date (tests/test_docs.py runs this)

The section lies between the two marker lines below; everything else in the file is hand-written.
Its content is exactly `radlang ops --format markdown`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parent / "language.md"
BEGIN = "<!-- BEGIN GENERATED OPERATOR REFERENCE (docs/gen_ops.py) -->"
END = "<!-- END GENERATED OPERATOR REFERENCE -->"


def generated() -> str:
    sys.path.insert(0, str(DOC.parents[1]))
    from radlang.backends.opsdoc import ops_markdown

    return ops_markdown().rstrip("\n") + "\n"


def render(text: str) -> str:
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{DOC}: the markers {BEGIN!r} and {END!r} are missing")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{generated()}{END}{tail}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only report whether the section is up to date")
    a = ap.parse_args(argv)
    old = DOC.read_text(encoding="utf-8")
    new = render(old)
    if a.check:
        if new != old:
            print(f"{DOC} is out of date: run `python docs/gen_ops.py`", file=sys.stderr)
            return 1
        return 0
    if new != old:
        DOC.write_text(new, encoding="utf-8")
        print(f"updated {DOC}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
