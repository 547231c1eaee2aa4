"""Regenerate the operator reference in docs/language.md from the registry.

    .venv/bin/python docs/gen_ops.py          # rewrite the generated section in place
    .venv/bin/python docs/gen_ops.py --check  # exit 1 if the section is out of date (tests/test_docs.py runs this)

The section lies between the two marker lines below; everything else in the file is hand-written.
Its content is exactly `radlang ops --format markdown`.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generated_section import regenerate, splice

DOC = Path(__file__).resolve().parent / "language.md"
BEGIN = "<!-- BEGIN GENERATED OPERATOR REFERENCE (docs/gen_ops.py) -->"
END = "<!-- END GENERATED OPERATOR REFERENCE -->"


def generated() -> str:
    sys.path.insert(0, str(DOC.parents[1]))
    from radlang.backends.opsdoc import ops_markdown

    return ops_markdown().rstrip("\n") + "\n"


def render(text: str) -> str:
    return splice(text, BEGIN, END, generated(), DOC)


def main(argv=None) -> int:
    return regenerate(DOC, render, "docs/gen_ops.py", __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    raise SystemExit(main())
