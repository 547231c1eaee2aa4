"""The packages a rendered script imports, pinned to the versions installed (the script's header and `--lock`)."""

from __future__ import annotations

import ast
import sys


def imported_modules(sources: list[str]) -> list[str]:
    """Top-level modules that the given code imports, third-party only, sorted."""
    mods = set()
    for src in sources:
        for n in ast.walk(ast.parse(src)):
            if isinstance(n, ast.Import):
                mods |= {a.name.split(".")[0] for a in n.names}
            elif isinstance(n, ast.ImportFrom) and not n.level and n.module:
                mods.add(n.module.split(".")[0])
    return sorted(m for m in mods if m not in sys.stdlib_module_names and m != "__future__")


# import name -> distribution, for the usual suspects (anything else: importlib.metadata finds it)
DISTRIBUTIONS = {"sklearn": "scikit-learn", "radiomics": "pyradiomics", "sksurv": "scikit-survival", "yaml": "PyYAML",
                 "SimpleITK": "SimpleITK", "PIL": "Pillow", "skimage": "scikit-image"}


def package_pins(modules: list[str]) -> dict[str, str]:
    """Distribution name -> installed version for each imported module (e.g. sklearn -> scikit-learn)."""
    from importlib.metadata import PackageNotFoundError, packages_distributions, version

    pins: dict[str, str] = {}
    dists = None
    for m in modules:
        names = [DISTRIBUTIONS.get(m, m)]
        try:
            pins[names[0]] = version(names[0])
            continue
        except PackageNotFoundError:
            pass
        dists = packages_distributions() if dists is None else dists
        for d in dists.get(m, [m]):
            try:
                pins[d] = version(d)
            except PackageNotFoundError:
                pins.setdefault(d, "unknown")
    return dict(sorted(pins.items(), key=lambda kv: kv[0].lower()))


def lock_text(pins: dict[str, str]) -> str:
    return "".join(f"{k}=={v}\n" for k, v in pins.items())
