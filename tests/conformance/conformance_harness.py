"""The conformance harness's run step: many operators' tiny fixtures in one study, run by `radlang run`'s executor
and by the rendered script (in a Python where radlang cannot be imported), every output file compared byte for byte.

Operators are grouped (tabular, images, deep) so that one run and one script run cover a group; the groups live in
three test files so that `pytest -n 2 --dist loadfile` spreads them over the workers.

OVERRIDES lists the operators that the generic run cannot exercise, each with the documented behaviour that the
harness asserts instead. An operator is in exactly one group or in OVERRIDES: a new operator lands in a group by its
fixture (its statements), never silently nowhere.
"""

from __future__ import annotations

import functools
import json
import re
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

from conformance_fixtures import DATA, Fixture, FixtureError, fixture, study_text, write_data, write_example_file

from radlang.backends.executor import RunError, run_study
from radlang.backends.render.script import render_to_dir
from radlang.compiler import compile_source
from radlang.registry import all_ops

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "render"))
from render_helpers import run_script


@dataclass(frozen=True)
class ExpectRunError:
    """The documented run-time stop of an operator: `radlang run` raises these codes, naming its stage."""

    codes: tuple[str, ...]
    why: str


OVERRIDES = {
    "fed_tcga_brca": ExpectRunError(("E640",), "it reads FLamby's Fed-TCGA-BRCA files, which the fixture does not have: "
                                               "`radlang run` and the rendered script both stop at it naming the missing file"),
    "n4": ExpectRunError(("E655", "E655"), "N4 log-transforms intensities, so it refuses an image with non-positive values where it "
                                           "fits the bias field; every fixture cohort is CT-like (HU around 40 with noise), and two "
                                           "dev cases dip below 0. tests/test_preprocess.py runs `n4` on MR-like bias-field phantoms "
                                           "through `radlang run` and the rendered script, byte for byte"),
}

GROUPS = ("tabular", "images", "deep")
DEEP_KINDS = ("network", "train", "federate", "explain")


def prefix(op_name: str) -> str:
    return f"t_{op_name}"


def group_of(fx: Fixture) -> str:
    kinds = {line.split(" ", 1)[0] for line in fx.text.splitlines()}
    if kinds & set(DEEP_KINDS):
        return "deep"
    if re.search(r"\b(phantom|manifest)\(|\.image\b|\.mask\b", fx.text):
        return "images"
    return "tabular"


def spec_path(root: Path) -> Path:
    return root / "spec" / "study.rad"


@functools.lru_cache(maxsize=1)
def run_fixtures() -> dict[str, Fixture | FixtureError]:
    """op name -> its run fixture (first example, shrunk), or the error saying why there is none."""
    out = {}
    for op in all_ops():
        if not op.examples:
            out[op.name] = FixtureError(f"`{op.name}` has no doc examples (Operator.examples): add at least one")
            continue
        try:
            out[op.name] = fixture(op, op.examples[0], prefix(op.name), tiny=True, spec=spec_path(Path("/fixture")))
        except FixtureError as e:
            out[op.name] = e
    return out


def members(group: str) -> list[str]:
    """The operators whose run fixture falls in `group` (or that have none: they fail in the group 'tabular')."""
    names = []
    for name, fx in run_fixtures().items():
        if name in OVERRIDES:
            continue
        if isinstance(fx, FixtureError):
            if group == "tabular":
                names.append(name)
        elif group_of(fx) == group:
            names.append(name)
    return names


def owned(path: str, op_name: str) -> bool:
    """Whether an output file belongs to an operator's fixture: a path component starts with its prefix."""
    return any(part.startswith(prefix(op_name) + "_") for part in re.split(r"[/.]", path))


def write_spec(root: Path, fixtures: list[Fixture], title: str) -> Path:
    spec = spec_path(root)
    spec.parent.mkdir(parents=True, exist_ok=True)
    rows = write_data(spec.parent) if any(DATA in f.text or f.files for f in fixtures) else None
    for f in fixtures:
        for rel, params in f.files:
            write_example_file(spec.parent, rel, params, rows["dev"], spec.parent / DATA / "dev")
        for rel, text in f.texts:
            (spec.parent / rel).write_text(text, encoding="utf-8")
    spec.write_text(study_text(title, [f.text for f in fixtures]), encoding="utf-8")
    return spec


def compile_spec(spec: Path):
    res = compile_source(spec.read_bytes(), str(spec))
    errors = [f"{d.code} {d.message}" for d in res.diagnostics if d.severity == "error"]
    assert res.ok and not errors, "\n".join(errors)
    return res.study


RUN_RECORDS = ("run.json",)   # timings and platform


def all_files(root: Path) -> dict[str, bytes]:
    """Every file a run wrote, but its records (RUN_RECORDS) and hidden entries (the cache, the out folder's lock and
    marker)."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_file() and rel not in RUN_RECORDS and not rel.startswith("."):
            out[rel] = p.read_bytes()
    return out


@dataclass
class GroupRun:
    ran: dict[str, bytes]
    scripted: dict[str, bytes]
    study: object
    error: str = ""
    spec_sha256: tuple = ()     # (run, script): the spec hash each recorded in its run.json


def run_group(root: Path, group: str) -> GroupRun:
    """One study holding every member's fixture: run it, render it, run the script, collect files.

    Both write into the same folder (<root>/out, moved aside after each), so that an output naming its own folder
    (a checkpoint path, and then the sha256 of that file in manifest.json) is the same bytes in both."""
    fixtures = [fx for name in members(group) if isinstance(fx := run_fixtures()[name], Fixture)]
    spec = write_spec(root, fixtures, f"conformance: {group}")
    study = compile_spec(spec)
    script = render_to_dir(study, root / "review") / "study.py"
    out, run_dir, script_dir = root / "out", root / "run", root / "script"
    error = ""
    try:
        run_study(study, out=out, workers=1, quiet=True)
    except RunError as e:
        error = "`radlang run` stopped: " + "; ".join(f"{d.code} {d.message}" for d in e.diagnostics)
    except Exception as e:  # noqa: BLE001  a traceback is a defect too: report it, and still run the script
        error = f"`radlang run` raised {type(e).__name__}: {e}\n" + "".join(traceback.format_exception(e)[-6:])
    if out.exists():
        out.rename(run_dir)
    proc = run_script(script, "--out", str(out), cwd=root, timeout=600)
    if proc.returncode != 0:
        error += f"\nthe rendered script exited {proc.returncode}: {proc.stderr[-3000:]}"
    if out.exists():
        out.rename(script_dir)
    hashes = tuple(json.loads((d / "run.json").read_text())["spec"]["sha256"] if (d / "run.json").exists() else None
                   for d in (run_dir, script_dir))
    return GroupRun(all_files(run_dir) if run_dir.exists() else {}, all_files(script_dir) if script_dir.exists() else {},
                    study, error, hashes)


def check_member(result: GroupRun, name: str):
    """The per-operator assertions of the run step (see the module doc)."""
    fx = run_fixtures()[name]
    if isinstance(fx, FixtureError):
        raise fx
    assert not result.error, f"`{name}`'s group failed (the message names the stage): {result.error}"
    assert result.spec_sha256[0] and result.spec_sha256[0] == result.spec_sha256[1], f"run.json spec hashes: {result.spec_sha256}"
    stages = {s.name: s for s in result.study.stages}
    assert fx.stage in stages, f"`{name}`'s stage `{fx.stage}` is not in the compiled study (pruned or merged)"
    ran = {k: v for k, v in result.ran.items() if owned(k, name)}
    scripted = {k: v for k, v in result.scripted.items() if owned(k, name)}
    assert ran, f"`{name}`: `radlang run` wrote no output file for its fixture (stages {prefix(name)}_*)"
    assert sorted(ran) == sorted(scripted), f"`{name}`: run and script wrote different files: {sorted(set(ran) ^ set(scripted))}"
    differ = [k for k in ran if ran[k] != scripted[k]]
    assert not differ, f"`{name}`: run and the rendered script differ in {differ}"


def check_shared(result: GroupRun):
    """The files no operator owns (manifest.json: the graph, params, seeds and every artefact's sha256) are the same."""
    assert not result.error, result.error
    shared = sorted(k for k in result.ran.keys() | result.scripted.keys() if not any(owned(k, n) for n in run_fixtures()))
    assert "manifest.json" in shared
    differ = [k for k in shared if result.ran.get(k) != result.scripted.get(k)]
    assert not differ, f"run and the rendered script differ in {differ}"
