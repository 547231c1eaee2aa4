"""`radlang check` (and graph, ops) must start fast: they never import the science stack.

Evidence comes from `python -X importtime`, which lists every module a process imports."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# never imported by check/graph/ops: the heavy libraries the issue names, and the rest of the science stack
FORBIDDEN = ("torch", "monai", "radiomics", "shap", "sklearn", "SimpleITK", "pandas", "numpy", "scipy", "matplotlib",
             "lifelines", "sksurv", "pingouin", "dcurves")
SPEC = """study "Fast start" { seed: 1 }
cohort train = manifest("train.csv") { image: ct, mask: roi, outcome: y as binary, site: hospital }
segment roi = otsu(train.image)
features rad = pyradiomics(train.image, roi) { params: from_params("params.yaml"), bin_width: 25HU, filters: [original, log(sigma: [1mm, 2mm]), wavelet] }
select sig = lasso(rad, target: train.outcome)
model clf = logistic(sig, target: train.outcome)
validate v = evaluate(clf) { cv: stratified_kfold(5, repeats: 2) }
network net = densenet121(dims: 3, in_channels: 1, out_channels: 2)
train fit = supervised(net, train) { epochs: 2, loss: cross_entropy, patch: [32, 32, 16] }
explain cam = gradcam(fit, train)
"""


def imported_modules(args, cwd) -> tuple[set[str], subprocess.CompletedProcess]:
    p = subprocess.run([sys.executable, "-X", "importtime", "-m", "radlang", *args], capture_output=True, text=True, cwd=cwd)
    mods = set()
    for line in p.stderr.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+\d+ \|\s*(\S+)", line)
        if m:
            mods.add(m.group(1))
    assert mods, "no -X importtime output"
    return mods, p


def heavy(mods: set[str]) -> list[str]:
    return sorted(m for m in mods if m.split(".")[0] in FORBIDDEN)


@pytest.fixture(scope="module")
def spec(tmp_path_factory) -> Path:
    """The spec with the data it names, so that `check`'s data checks (the manifest's columns and rows, every
    image and mask path, the params file against PyRadiomics' schema) run in these processes too."""
    d = tmp_path_factory.mktemp("fast")
    f = d / "study.rad"
    f.write_text(SPEC)
    rows = ["case_id,ct,roi,y,hospital"]
    for i in range(40):
        (d / f"c{i}.nii.gz").touch()          # `check` never opens an image: an empty file is enough
        (d / f"m{i}.nii.gz").touch()
        rows.append(f"c{i},c{i}.nii.gz,m{i}.nii.gz,{i % 2},h{i % 3}")
    (d / "train.csv").write_text("\n".join(rows) + "\n")
    (d / "params.yaml").write_text("setting:\n  binWidth: 25\n  label: 1\nimageType:\n  Original: {}\nfeatureClass:\n  glcm: [Contrast]\n")
    return f


# (`radlang plan` may import torch on purpose: it counts network parameters for its estimates.)
@pytest.mark.parametrize("cmd", [["check"], ["graph", "--format", "json"]], ids=["check", "graph"])
def test_commands_import_no_science_stack(cmd, spec):
    mods, p = imported_modules([cmd[0], str(spec), *cmd[1:]], spec.parent)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "radlang.compiler" in mods and "radlang.registry" in mods
    # The registry loads every operator module (with importlib, which -X importtime does not list itself; the
    # `import` statements inside those modules are listed): none of the libraries their implementations use.
    assert heavy(mods) == [], f"`radlang {cmd[0]}` imported: {', '.join(heavy(mods))}"


def test_ops_imports_no_science_stack(tmp_path):
    mods, p = imported_modules(["ops"], tmp_path)
    assert p.returncode == 0
    assert heavy(mods) == [], f"`radlang ops` imported: {', '.join(heavy(mods))}"


def test_examples_check_without_the_science_stack():
    examples = sorted((REPO / "examples").glob("*.rad"))
    if not examples:
        pytest.skip("no examples yet")
    for ex in examples:
        mods, p = imported_modules(["check", str(ex)], ex.parent)
        assert p.returncode == 0, p.stderr[-2000:]
        assert heavy(mods) == [], f"checking {ex.name} imported: {', '.join(heavy(mods))}"


def test_sys_modules_after_a_full_compile(spec):
    """The same from inside: compile (with passes) and graph, load every operator module (compiling loads only
    those the spec uses), then look at sys.modules: no operator module imports a heavy library at the top."""
    code = (
        "import sys\n"
        "from radlang.compiler import compile_file\n"
        "from radlang.backends.graphviz import to_dot\n"
        f"r = compile_file({str(spec)!r}); assert r.ok, r.diagnostics\n"
        "to_dot(r.study)\n"
        "from radlang import registry; registry.all_ops()\n"
        "import pkgutil, radlang.ops\n"
        "missing = [m.name for m in pkgutil.iter_modules(radlang.ops.__path__) if not m.name.startswith('_') and 'radlang.ops.' + m.name not in sys.modules]\n"
        "print('missing:', ' '.join(missing))\n"
        "print('heavy:', ' '.join(sorted(m for m in sys.modules if m.split('.')[0] in %r)))\n" % (FORBIDDEN,)
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=spec.parent)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.splitlines() == ["missing: ", "heavy: "], p.stdout    # every operator module loaded; no heavy library
