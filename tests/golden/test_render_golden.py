"""Golden `study.py` of the review folder (`radlang render EXAMPLE -o DIR`) for every example: what a reviewer reads.

The hashes of the runtime (which hold every inlined line of radlang's code and the installed package versions),
the Python version and the path from the folder to the spec are masked: the golden pins the study's own text
(stages, settings, the run loop). Regenerate after an intended change with

    RADLANG_UPDATE_GOLDENS=1 .venv/bin/python -m pytest -q tests/golden/test_render_golden.py

and review `git diff tests/golden/render`."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from test_golden import compare

from radlang.backends.render.script import render_to_dir
from radlang.compiler import compile_source

HERE = Path(__file__).resolve().parent
EXAMPLES = sorted((HERE.parents[1] / "examples").glob("*.rad"))


def masked(text: str, folder: Path) -> str:
    rel = Path(os.path.relpath(HERE.parents[1], folder.resolve())).as_posix()
    text = text.replace(f"(HERE / '{rel}/", "(HERE / '<repo>/")
    text = re.sub(r"^RUNTIME_SHA256 = '[0-9a-f]{64}'$", "RUNTIME_SHA256 = '<sha256 of radlang_runtime.py>'", text, flags=re.MULTILINE)
    text = re.sub(r"^(# calls \w+): sha256 [0-9a-f]{16}; (with the )\d+( blocks it reaches): sha256 [0-9a-f]{16}$",
                  r"\1: sha256 <16>; \2<n>\3: sha256 <16>", text, flags=re.MULTILINE)
    return re.sub(r"; python \d+\.\d+\.\d+\.$", "; python <version>.", text, flags=re.MULTILINE)


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_review_study_golden(example, tmp_path, update_goldens):
    res = compile_source(example.read_bytes().decode("utf-8"), str(example))
    assert res.ok
    folder = render_to_dir(res.study, tmp_path / "review", date="2000-01-01T00:00:00Z")
    compare(HERE / "render" / f"{example.stem}.study.py", masked((folder / "study.py").read_text(encoding="utf-8"), folder),
            update_goldens)
