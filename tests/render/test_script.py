"""The rendered script: valid Python that passes ruff, a provenance header, deterministic rendering,
requirements.lock, command-line flags, and the CLI's handling of bad specs and bad output paths."""

from __future__ import annotations

import ast
import hashlib
import json
import re
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from render_helpers import REPO, SPECS, compile_spec, run_script

from radlang import __version__
from radlang.backends.render.literals import RenderError
from radlang.backends.render.script import render_study, render_to_file

RADLANG = [sys.executable, "-m", "radlang"]
SPEC_FILES = sorted(SPECS.glob("*.rad"))


_RUFF: dict[Path, list[dict]] = {}


def _ruff(path: Path) -> list[dict]:
    if path in _RUFF:
        return _RUFF[path]
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    # the default rules, with the project's line length (the operator code is written to 140 columns)
    proc = subprocess.run([ruff, "check", "--isolated", "--line-length", "140", "--output-format", "json", str(path)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode in (0, 1), proc.stderr
    _RUFF[path] = json.loads(proc.stdout or "[]")
    return _RUFF[path]


def _owner(text: str, line: int) -> str:
    """Which inlined function (and radlang module) a line of the script belongs to."""
    tree = ast.parse(text)
    lines = text.split("\n")
    for node in tree.body:
        if node.lineno <= line <= node.end_lineno and isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            above = lines[node.lineno - 2] if node.lineno >= 2 else ""
            return f"{node.name} [{above.lstrip('# ').strip()}]"
    return "renderer"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    out = {}
    d = tmp_path_factory.mktemp("scripts")
    for spec in SPEC_FILES:
        path = render_to_file(compile_spec(spec), d / f"{spec.stem}.py", lock=False)
        out[spec.stem] = path
    return out


@pytest.mark.parametrize("name", [p.stem for p in SPEC_FILES])
def test_script_is_valid_python_that_imports_no_radlang(rendered, name):
    text = rendered[name].read_text(encoding="utf-8")
    tree = ast.parse(text)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            assert not any(a.name.split(".")[0] == "radlang" for a in node.names)
        if isinstance(node, ast.ImportFrom):
            assert (node.module or "").split(".")[0] != "radlang", ast.unparse(node)
    # one function per stage, in study order, each with its settings as literals
    study = compile_spec(SPECS / f"{name}.rad")
    fns = [n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("stage_")]
    assert fns == [f"stage_{s.name}" for s in study.stages]


@pytest.mark.parametrize("name", [p.stem for p in SPEC_FILES])
def test_renderer_written_lines_pass_ruff(rendered, name):
    text = rendered[name].read_text(encoding="utf-8")
    # everything but the radlang code inlined verbatim: the template, the stage functions, the runtime
    mine = [f for f in _ruff(rendered[name]) if "[from radlang." not in _owner(text, f["location"]["row"])]
    assert not mine, [(f["code"], f["location"]["row"], f["message"]) for f in mine]


@pytest.mark.parametrize("name", [p.stem for p in SPEC_FILES])
def test_script_passes_ruff(rendered, name):
    """The whole script, including the operator and executor code it holds verbatim: a finding here names
    the radlang function to fix (the same finding shows in `ruff check radlang/`)."""
    text = rendered[name].read_text(encoding="utf-8")
    findings = _ruff(rendered[name])
    assert not findings, "ruff findings in the rendered script:\n" + "\n".join(
        f"  {f['code']} {f['message']}  in {_owner(text, f['location']['row'])}" for f in findings)


def test_provenance_header(rendered):
    spec = SPECS / "quick.rad"
    text = rendered["quick"].read_text(encoding="utf-8")
    source = spec.read_bytes().decode()
    sha = hashlib.sha256(source.encode()).hexdigest()
    head = text.split("from __future__")[0]
    assert f"spec sha256:  {sha}" in head
    assert f"radlang:      {__version__}" in head
    assert re.search(r"^#   rendered:     \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", head, re.MULTILINE)
    for pkg in ("numpy", "pandas", "scikit-learn"):
        assert f"#     {pkg}=={version(pkg)}" in head
    study = compile_spec(spec)
    assert f"study {study.seed};" in head
    for s in study.stages:
        assert f"#     {s.name}: {s.seed}" in head
    # the spec itself: as comments, and as a literal whose hash the script checks at start-up
    spec_text = next(n.value for n in ast.parse(text).body if isinstance(n, ast.Assign) and n.targets[0].id == "SPEC_TEXT")
    assert ast.literal_eval(spec_text) == source
    assert "#   |   seed: 9" in head
    # the spec's comments are carried over to their stages
    assert re.search(r"\n# development\n# consumes: nothing\n# calls run_\w+: sha256 [0-9a-f]{16}; [^\n]*\ndef stage_dev\(", text)


def test_rendering_twice_differs_only_in_the_date(monkeypatch):
    study = compile_spec(SPECS / "tabular_small.rad")
    a = render_study(study)[0]
    # with a fixed date (SOURCE_DATE_EPOCH, as reproducible builds set it) two renders are identical, byte for byte
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    b = render_study(compile_spec(SPECS / "tabular_small.rad"))[0]
    assert b == render_study(study)[0]
    da = [x for x in a.splitlines() if x not in b.splitlines()]
    db = [x for x in b.splitlines() if x not in a.splitlines()]
    assert db == ["#   rendered:     2023-11-14T22:13:20Z"] and len(da) == 1 and da[0].startswith("#   rendered:     20")


def test_lock_file_pins_what_the_script_imports(tmp_path):
    out = tmp_path / "study.py"
    proc = subprocess.run([*RADLANG, "render", str(SPECS / "phantom_radiomics.rad"), "-o", str(out), "--lock"],
                          capture_output=True, text=True, check=False, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    pins = dict(line.split("==") for line in (tmp_path / "requirements.lock").read_text().splitlines())
    for pkg in ("numpy", "pandas", "SimpleITK", "pyradiomics", "scikit-learn", "scipy"):
        assert pins[pkg] == version(pkg), pkg
    head = out.read_text(encoding="utf-8").split("from __future__")[0]
    assert all(f"#     {k}=={v}" in head for k, v in pins.items())
    assert out.stat().st_mode & 0o111, "the script is executable (it has a shebang)"


def test_spec_with_errors_renders_nothing_and_prints_checks_diagnostics(tmp_path):
    bad = tmp_path / "bad.rad"
    bad.write_text('cohort dev = dataset("breast_cancer") { stop: 10, nope: 1 }\nfeatures f = tabular(dev)\n'
                   "model clf = logistc(f, target: dev.outcome)\nvalidate v = evaluate(clf)\n")
    check = subprocess.run([*RADLANG, "check", str(bad)], capture_output=True, text=True, check=False, cwd=tmp_path)
    render = subprocess.run([*RADLANG, "render", str(bad), "-o", str(tmp_path / "s.py")], capture_output=True, text=True, check=False, cwd=tmp_path)
    assert check.returncode == render.returncode == 1
    assert "error[E301]" in check.stderr and "error[E103]" in check.stderr   # `nope` and `logistc`
    assert render.stderr.strip() and render.stderr.strip() == check.stderr.strip()
    assert not (tmp_path / "s.py").exists()


def test_output_in_a_missing_folder_is_a_clear_error_and_writes_nothing(tmp_path):
    target = tmp_path / "no" / "such" / "dir" / "study.py"
    proc = subprocess.run([*RADLANG, "render", str(SPECS / "quick.rad"), "-o", str(target)], capture_output=True, text=True, check=False, cwd=tmp_path)
    assert proc.returncode == 2
    assert "error[E702]" in proc.stderr and "does not exist" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "no").exists()
    with pytest.raises(RenderError) as e:
        render_to_file(compile_spec(SPECS / "quick.rad"), tmp_path)   # a folder, not a file name
    assert e.value.code == "E702"
    assert list(tmp_path.iterdir()) == []


def test_script_flags_out_and_manifest_path(tmp_path):
    """`--out` picks the folder; a manifest cohort gets `--<stage>-path`; a bad manifest stops the script
    with the case-level message, as `radlang run` does, and exit 1."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "m.csv").write_text("case_id,image,y\nc1,missing1.nii.gz,1\nc2,missing2.nii.gz,0\n")
    spec = tmp_path / "s.rad"
    spec.write_text('study "flags" { seed: 1 }\ncohort c = manifest("data/m.csv") { outcome: y as binary }\n'
                    'features f = tabular(c)\nmodel m = logistic(f, target: c.outcome)\n'
                    'validate v = evaluate(m) { cv: stratified_kfold(2), bootstrap: 0 }\n')
    script = render_to_file(compile_spec(spec), tmp_path / "study.py")
    help_ = run_script(script, "--help")
    assert help_.returncode == 0 and "--c-path" in help_.stdout and "--out" in help_.stdout
    proc = run_script(script, "--out", str(tmp_path / "o"))
    assert proc.returncode == 1 and "case `c1`" in proc.stderr and "file not found" in proc.stderr and "Traceback" not in proc.stderr
    other = tmp_path / "elsewhere.csv"
    other.write_text("case_id,image,y\nz1,nothere.nii.gz,1\n")
    proc = run_script(script, "--out", str(tmp_path / "o2"), "--c-path", str(other))
    assert proc.returncode == 1 and "case `z1`" in proc.stderr and "c1" not in proc.stderr
