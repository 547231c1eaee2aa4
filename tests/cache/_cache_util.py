"""Helpers for the cache and output-folder tests: write a spec, run it, snapshot the outputs."""

from __future__ import annotations

import textwrap
from pathlib import Path

STUDY = """
    cohort c = manifest("{manifest}") {{ mask: mask, outcome: malignant as binary }}
    features f = pyradiomics(c.image, c.mask) {{ classes: [firstorder] }}
    select keep = variance(f) {{ min: 0.0 }}
    model clf = logistic(keep, target: c.outcome)
    validate v = evaluate(clf) {{ cv: stratified_kfold(2), bootstrap: 20 }}
"""


def write_spec(folder: Path, text: str, name: str = "study.rad") -> Path:
    p = Path(folder) / name
    p.write_text(textwrap.dedent(text).strip() + "\n", encoding="utf-8")
    return p


def run_spec(path: Path, out: Path):
    """Compile and run a spec in this process; returns the RunContext."""
    from radlang.backends.executor import run_study
    from radlang.compiler import compile_file

    res = compile_file(path)
    assert res.ok, [d.message for d in res.diagnostics]
    return run_study(res.study, out=out, workers=1, quiet=True)


def outputs(out: Path) -> dict:
    """Every output file's bytes (the cache and run.json, which holds timings, left out)."""
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and ".cache" not in p.parts and p.name not in ("run.json",)}
