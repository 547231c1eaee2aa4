"""Helpers for the extraction tests: write a spec, compile and run it."""

from __future__ import annotations

import textwrap
from pathlib import Path


def write_spec(folder: Path, text: str, name: str = "study.rad") -> Path:
    p = Path(folder) / name
    p.write_text(textwrap.dedent(text).strip() + "\n", encoding="utf-8")
    return p


def run_spec(path: Path, out: Path | None = None, workers: int = 1):
    """Compile and run a spec; returns the RunContext. Compile errors fail the test with their messages."""
    from radlang.backends.executor import run_study
    from radlang.compiler import compile_file

    res = compile_file(path)
    assert res.ok, [d.message for d in res.diagnostics]
    return run_study(res.study, out=out or Path(path).parent / "out", workers=workers, quiet=True)


MANIFEST_STUDY = """
    cohort a = manifest("m.csv") { mask: mask, outcome: malignant as binary }
    features f = pyradiomics(a.image, a.mask) { classes: [firstorder(Mean)] }
"""


def the_run_error(folder: Path):
    """Run MANIFEST_STUDY (a manifest `m.csv` in `folder`, first-order features) and return the one diagnostic it
    stops with; fails the test if the run succeeds or stops with several."""
    import pytest

    from radlang.backends.executor import RunError

    with pytest.raises(RunError) as ei:
        run_spec(write_spec(folder, MANIFEST_STUDY))
    [d] = ei.value.diagnostics
    return d
