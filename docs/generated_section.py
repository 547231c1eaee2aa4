"""A generated section of a hand-written Markdown file, between two marker lines: what docs/gen_ops.py and
docs/gen_codes.py share. `splice` puts fresh text between the markers; `regenerate` rewrites the file, or with
`--check` only says whether it is out of date."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def splice(text: str, begin: str, end: str, generated: str, doc: Path) -> str:
    if begin not in text or end not in text:
        raise SystemExit(f"{doc}: the markers {begin!r} and {end!r} are missing")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{begin}\n{generated}{end}{tail}"


def regenerate(doc: Path, render, script: str, description: str, argv=None) -> int:
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--check", action="store_true", help="only report whether the generated section is up to date")
    a = ap.parse_args(argv)
    old = doc.read_text(encoding="utf-8")
    new = render(old)
    if a.check:
        if new != old:
            print(f"{doc} is out of date: run `python {script}`", file=sys.stderr)
            return 1
        return 0
    if new != old:
        doc.write_text(new, encoding="utf-8")
        print(f"updated {doc}")
    return 0
