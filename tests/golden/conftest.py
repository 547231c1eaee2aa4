"""Golden tests: one folder per compiler phase (parse, check, and each pass).

Each folder holds input specs (`*.rad`, top level only; helper presets live in sub-folders) and, next
to each input, the expected output. Regenerate the expected files after an intended change with

    RADLANG_UPDATE_GOLDENS=1 .venv/bin/python -m pytest -q tests/golden
    .venv/bin/python -m pytest -q tests/golden --update-goldens      # same, when tests/golden is on the command line

and review the diff (`git diff tests/golden`) before committing it.
"""

from __future__ import annotations

import os

import pytest


def pytest_addoption(parser):
    try:
        parser.addoption("--update-goldens", action="store_true", default=False,
                         help="rewrite the expected files of tests/golden instead of comparing against them")
    except ValueError:  # already added (another conftest declared it)
        pass


@pytest.fixture
def update_goldens(request) -> bool:
    opt = False
    try:
        opt = bool(request.config.getoption("--update-goldens"))
    except ValueError:
        opt = False
    return opt or os.environ.get("RADLANG_UPDATE_GOLDENS", "") not in ("", "0")
