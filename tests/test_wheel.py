"""The package works when installed from a wheel: the grammar, the stdlib and the IBSI self-test data ship inside it.

Builds a wheel of this checkout, installs it with `--no-deps` into a fresh virtual environment
(no system site-packages) together with only the light dependencies, and runs `radlang check`
on an example from another directory. Needs PyPI (or a pip cache) for the build backend and the
light dependencies; skips when they cannot be fetched. Slow (a minute or more): marked `slow`."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LIGHT = ["lark", "pydantic", "networkx", "rich", "jinja2", "pyyaml"]
SPEC = """study "From a wheel" { seed: 3 }
use "lib/preset.rad"
cohort train = manifest("train.csv") { image: ct, mask: roi, outcome: malignant as binary }
features rad = pyradiomics(train.image, train.mask) like ct_preset { bin_width: 10HU }
select sig = lasso(rad, target: train.outcome)
model clf = logistic(sig, target: train.outcome)
validate v = evaluate(clf) { cv: stratified_kfold(3) }
"""
PRESET = "preset ct_preset = pyradiomics() { bin_width: 25HU, resample: [1mm, 1mm, 1mm] }\n"


def _run(cmd, cwd, timeout=600):
    return subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    dist = tmp / "dist"
    # Build from a copy of the sources that go into the wheel (so nothing is written into the checkout).
    src = tmp / "src"
    src.mkdir()
    for name in ("radlang", "grammar", "stdlib", "ibsi", "pyproject.toml", "README.md"):
        p = REPO / name
        if p.is_dir():
            shutil.copytree(p, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif p.exists():
            shutil.copy2(p, src / name)
    # the build backend (hatchling) comes from the package index: without one, skip rather than fail
    probe = _run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp / "probe", "hatchling"], cwd=tmp, timeout=120)
    if probe.returncode != 0:
        pytest.skip(f"no package index reachable to fetch the build backend: {probe.stderr[-300:]}")
    b = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, src], cwd=tmp)
    assert b.returncode == 0, f"building the wheel failed:\n{b.stdout}\n{b.stderr}"
    wheels = list(dist.glob("radlang-*.whl"))
    assert len(wheels) == 1, wheels
    env = tmp / "venv"
    venv.EnvBuilder(with_pip=True, system_site_packages=False, clear=True).create(env)
    py = env / "bin" / "python"
    r = _run([py, "-m", "pip", "install", "-q", *LIGHT], cwd=tmp)
    if r.returncode != 0:
        pytest.skip(f"cannot install the light dependencies: {r.stderr[-300:]}")
    r = _run([py, "-m", "pip", "install", "-q", "--no-deps", wheels[0]], cwd=tmp)
    assert r.returncode == 0, r.stderr
    return env


@pytest.mark.slow
def test_wheel_ships_grammar_and_stdlib(installed):
    py = installed / "bin" / "python"
    r = _run([py, "-c", "import radlang.resources as r; print(r.grammar_path()); print(r.stdlib_dir())"], cwd=installed)
    assert r.returncode == 0, r.stderr
    grammar, stdlib = r.stdout.split()
    assert "site-packages/radlang/_data/grammar/radlang.lark" in grammar
    assert "site-packages/radlang/_data/stdlib" in stdlib
    assert Path(grammar).read_text() == (REPO / "grammar" / "radlang.lark").read_text()
    shipped = sorted(p.name for p in Path(stdlib).glob("*.rad"))
    assert shipped == sorted(p.name for p in (REPO / "stdlib").glob("*.rad"))
    # the IBSI digital phantom, its licence and reference values, for `radlang selftest`
    r = _run([py, "-c", "import radlang.resources as r; print(r.ibsi_dir())"], cwd=installed)
    assert r.returncode == 0, r.stderr
    ibsi = Path(r.stdout.strip())
    assert "site-packages/radlang/_data/ibsi" in str(ibsi)
    files = sorted(p.relative_to(ibsi).as_posix() for p in ibsi.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(REPO / "ibsi").as_posix() for p in (REPO / "ibsi").rglob("*") if p.is_file())


@pytest.mark.slow
def test_check_an_example_from_another_directory(installed, tmp_path):
    work = tmp_path / "elsewhere"
    (work / "lib").mkdir(parents=True)
    (work / "study.rad").write_text(SPEC)
    (work / "lib" / "preset.rad").write_text(PRESET)
    # the manifest the spec names, for `check`'s data checks (columns, rows, that each file exists; no image is opened)
    rows = [f"c{i},c{i}.nii.gz,m{i}.nii.gz,{i % 2}" for i in range(30)]
    (work / "train.csv").write_text("\n".join(["case_id,ct,roi,malignant", *rows]) + "\n")
    for i in range(30):
        (work / f"c{i}.nii.gz").touch()
        (work / f"m{i}.nii.gz").touch()
    radlang = installed / "bin" / "radlang"
    r = _run([radlang, "check", "study.rad"], cwd=work)
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == "study.rad: ok (5 stages)"
    # the shipped examples too, when there are any
    for ex in sorted((REPO / "examples").glob("*.rad")):
        shutil.copy2(ex, work / ex.name)
        r = _run([radlang, "check", ex.name], cwd=work)
        assert r.returncode == 0, (ex.name, r.stderr)
    # the stdlib presets, found inside the installed package
    for f in sorted((REPO / "stdlib").glob("*.rad")):
        names = re.findall(r"^preset (\w+) = pyradiomics\(", f.read_text(), re.M)
        if not names:
            continue
        spec = SPEC.replace('use "lib/preset.rad"', f'use "{f.stem}"').replace("like ct_preset", f"like {names[0]}")
        (work / "stdlib_user.rad").write_text(spec)
        r = _run([radlang, "check", "stdlib_user.rad"], cwd=work)
        assert r.returncode == 0, (f.name, r.stderr)
    # errors come back as diagnostics from the installed grammar as well
    (work / "bad.rad").write_text(SPEC.replace("lasso(", "lasoo("))
    r = _run([installed / "bin" / "python", "-m", "radlang", "check", "bad.rad", "--format", "json"], cwd=work)
    assert r.returncode == 1 and '"code": "E103"' in r.stdout and "Traceback" not in r.stderr


@pytest.mark.slow
def test_installed_package_runs_without_the_science_stack(installed):
    py = installed / "bin" / "python"
    r = _run([py, "-c", "import numpy"], cwd=installed)
    assert r.returncode != 0, "the fresh venv should not have numpy"
    r = _run([installed / "bin" / "radlang", "ops"], cwd=installed)
    assert r.returncode == 0, r.stderr
    assert "pyradiomics(image: Image, mask: Mask) -> Features" in r.stdout
