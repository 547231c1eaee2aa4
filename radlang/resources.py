"""Find the grammar, the stdlib and the IBSI self-test data from a checkout or from an installed wheel."""

from __future__ import annotations

from pathlib import Path

_PKG = Path(__file__).resolve().parent


def _first(*candidates: Path) -> Path:
    for c in candidates:
        if c.exists():
            return c
    raise FileNotFoundError(f"radlang data not found; looked in: {', '.join(map(str, candidates))}")


def grammar_path() -> Path:
    # In a wheel the grammar is installed into radlang/_data; in a checkout it sits at the top level.
    return _first(_PKG / "_data" / "grammar" / "radlang.lark", _PKG.parent / "grammar" / "radlang.lark")


def stdlib_dir() -> Path:
    return _first(_PKG / "_data" / "stdlib", _PKG.parent / "stdlib")


def ibsi_dir() -> Path:
    """The IBSI digital phantom and its reference values, for `radlang selftest` (see ibsi/README.md)."""
    return _first(_PKG / "_data" / "ibsi", _PKG.parent / "ibsi")
