"""Golden tests per compiler phase.

    parse/           *.rad -> *.ir     the canonical IR dump (`radlang parse`), or the syntax diagnostics
    check/           *.rad -> *.diag   every diagnostic of the file, as `radlang check` prints it
    prune/ merge/ merge_features/ fit_boundaries/ seeds/
                     *.rad -> *.json   the stage graph after the passes up to and including that one
    seeds/           *.rad -> *.plan   also the `radlang plan` text after all passes

Inputs are the top-level `*.rad` files of each folder. See conftest.py for how to regenerate.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from radlang.backends.plan import plan_text
from radlang.compiler import compile_source
from radlang.diagnostics import Diagnostic, render_text
from radlang.ir import dump
from radlang.passes import PASSES
from radlang.syntax.parser import SourceError, parse

HERE = Path(__file__).resolve().parent
PASS_FOLDERS = {"prune": "prune", "merge": "merge_identical", "merge_features": "merge_features",
                "fit_boundaries": "fit_boundaries", "seeds": "seeds"}


def _inputs(folder: str) -> list[Path]:
    return sorted((HERE / folder).glob("*.rad"))


def _ids(paths):
    return [p.stem for p in paths]


def compare(expected: Path, actual: str, update: bool):
    if update:
        if not expected.exists() or expected.read_text(encoding="utf-8") != actual:
            expected.write_text(actual, encoding="utf-8")
        return
    assert expected.exists(), f"{expected.name} is missing; create it with RADLANG_UPDATE_GOLDENS=1 pytest tests/golden"
    want = expected.read_text(encoding="utf-8")
    assert actual == want, (
        f"{expected.relative_to(HERE)} differs from the compiler's output. If the change is intended, regenerate with "
        f"RADLANG_UPDATE_GOLDENS=1 pytest tests/golden and review `git diff tests/golden`.\n--- actual ---\n{actual}")


def _portable(text: str, folder: Path) -> str:
    """Absolute paths of local presets -> paths relative to the golden folder."""
    return text.replace(str(folder) + "/", "").replace(str(folder), ".")


# ---------------------------------------------------------------------------------------------- parse

def parse_output(path: Path) -> str:
    data = path.read_bytes()
    try:
        return dump(parse(data, file=path.name))
    except SourceError as e:
        diags = sorted(e.diagnostics, key=Diagnostic.sort_key)
        return render_text(diags, {path.name: data.decode("utf-8", "replace")}) + "\n"


@pytest.mark.parametrize("path", _inputs("parse"), ids=_ids(_inputs("parse")))
def test_parse(path, update_goldens):
    compare(path.with_suffix(".ir"), parse_output(path), update_goldens)


def test_parse_dump_is_a_fixed_point():
    """Dumping, re-reading a clean spec and dumping again gives the same IR (spans aside): the dump is canonical."""
    for path in _inputs("parse"):
        try:
            m1 = parse(path.read_bytes(), file=path.name)
        except SourceError:
            continue
        again = parse(path.read_bytes(), file=path.name)
        assert dump(m1) == dump(again)
        assert m1 == again


# ---------------------------------------------------------------------------------------------- check

def check_output(path: Path, monkeypatch) -> str:
    monkeypatch.chdir(path.parent)
    res = compile_source(path.read_bytes(), path.name)
    text = render_text(res.diagnostics, res.sources)
    if res.ok:
        n = len(res.study.stages)
        status = f"{path.name}: ok ({n} stage{'s' if n != 1 else ''})"
        # the settings each stage was given (own, `like`, presets), validated and in canonical units
        for s in res.study.stages:
            given = {k: v for k, v in s.params.items() if k in s.settings.model_fields_set}
            status += f"\n  {s.name} = {s.op} {json.dumps(given, sort_keys=True)}"
    else:
        status = f"{path.name}: failed"
    codes = " ".join(d.code for d in res.diagnostics) or "-"
    return _portable(f"{text}\n{status}\ncodes: {codes}\n".lstrip("\n"), path.parent)


@pytest.mark.parametrize("path", _inputs("check"), ids=_ids(_inputs("check")))
def test_check(path, update_goldens, monkeypatch):
    compare(path.with_suffix(".diag"), check_output(path, monkeypatch), update_goldens)


def test_check_reports_every_phase_at_once(monkeypatch):
    """names.rad holds several independent mistakes: all of them come back from one run."""
    out = check_output(HERE / "check" / "names.rad", monkeypatch)
    for code in ("E101", "E102", "E103", "E104"):
        assert f"[{code}]" in out, code


# ---------------------------------------------------------------------------------------------- passes

def snapshot(study) -> dict:
    def stage(s):
        d = {"name": s.name, "kind": s.kind, "op": s.op,
             "inputs": {p: str(r) for p, r in sorted(s.inputs.items())},
             "fit": s.fit, "fit_within": list(s.fit_within), "seed": s.seed}
        if s.extra.get("merge"):
            d["merged_with"] = s.extra["merge"]["group"]
        return d

    return {
        "order": [s.name for s in study.stages],
        "stages": [stage(s) for s in study.stages],
        "edges": sorted(f"{a} -> {b}" for a, b in study.graph.edges),
        "notes": list(study.notes),
        "refit": {v: {**g.to_plain(), "edges": [f"{a} -> {b}.{port}" for a, b, port in g.edges]} for v, g in sorted(study.refit.items())},
    }


def passes_upto(name: str):
    fn_name = PASS_FOLDERS[name]
    names = [p.__name__ for p in PASSES]
    assert fn_name in names, f"pass {fn_name} is no longer in radlang.passes.PASSES ({names})"
    return PASSES[: names.index(fn_name) + 1]


def _pass_cases():
    return [(folder, p) for folder in PASS_FOLDERS for p in _inputs(folder)]


def _compile_unpassed(path: Path, monkeypatch):
    monkeypatch.chdir(path.parent)
    res = compile_source(path.read_bytes(), path.name, passes=False)
    assert res.ok, render_text(res.diagnostics, res.sources)
    return res


@pytest.mark.parametrize("folder,path", _pass_cases(), ids=[f"{f}/{p.stem}" for f, p in _pass_cases()])
def test_pass(folder, path, update_goldens, monkeypatch):
    study = _compile_unpassed(path, monkeypatch).study
    for p in passes_upto(folder):
        study = p(study)
    compare(path.with_suffix(".json"), json.dumps(snapshot(study), indent=2, sort_keys=True) + "\n", update_goldens)
    if folder == "seeds":
        compare(path.with_suffix(".plan"), plan_text(study) + "\n", update_goldens)


def test_passes_are_deterministic(monkeypatch):
    """Compiling twice gives the same order, seeds and boundaries (the goldens could not be stable otherwise)."""
    for _, path in _pass_cases():
        monkeypatch.chdir(path.parent)
        a = compile_source(path.read_bytes(), path.name)
        b = compile_source(path.read_bytes(), path.name)
        assert snapshot(a.study) == snapshot(b.study)


def test_seeds_do_not_depend_on_statement_order(monkeypatch):
    """Each stage's seed derives from the study seed and its name: reversing the statements changes no seed."""
    path = HERE / "seeds" / "seeds.rad"
    monkeypatch.chdir(path.parent)
    text = path.read_text(encoding="utf-8")
    header, _, body = text.partition("\n\n")
    stmts = [b for b in body.strip().split("\n\n") if b.strip()]
    a = compile_source(text, path.name)
    b = compile_source(header + "\n\n" + "\n\n".join(reversed(stmts)) + "\n", path.name)
    assert a.ok and b.ok
    seeds_a = {s.name: s.seed for s in a.study.stages}
    seeds_b = {s.name: s.seed for s in b.study.stages}
    assert seeds_a == seeds_b and len(set(seeds_a.values())) == len(seeds_a)
    assert [s.name for s in a.study.stages] == [s.name for s in b.study.stages]  # lexicographic topological order
    other = compile_source(text.replace("seed: 7", "seed: 8"), path.name)
    assert all(other.study.stage(n).seed != s for n, s in seeds_a.items())
