"""Shared test helpers. The reference data lives beside the project, as ../shared/data (see its README);
tests that need it skip with a reason when it is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO / ".." / "shared" / "data").resolve()


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data; skips the calling test when it is missing."""
    p = SHARED_DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"reference data not found: {p} (the shared data folder sits beside the project as ../shared/data)")
    return p


@pytest.fixture(scope="session")
def shared():
    return shared_data


@pytest.fixture(autouse=True)
def keep_locale():
    """Reading a DICOM series can leave the process's C locale at an ASCII one (seen with this environment's DICOM
    readers): each test restores it, so that a later test in the same worker decodes subprocess output as UTF-8."""
    import locale

    saved = locale.setlocale(locale.LC_ALL)
    yield
    locale.setlocale(locale.LC_ALL, saved)
