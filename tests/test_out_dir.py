"""A run writes only inside its out folder, and only into a folder that is safe to fill (issue 15.2).

Settings that would write elsewhere are compile-time errors (E308); an out folder that is a file (E720), the spec's
or the current folder or one above them (E721), or a non-empty folder radlang did not make (E722) is a usage error
(exit 2) unless `--force`, and nothing is written."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from radlang.backends.outdir import MARKER
from radlang.compiler import compile_source
from tests.cli_runner import run_cli

SPEC = """study "t" {{ seed: 1{out} }}
cohort dev = dataset("breast_cancer") {{ stop: 60 }}
features f = tabular(dev)
model clf = logistic(f, target: dev.outcome)
validate v = evaluate(clf) {{ cv: stratified_kfold(2), metrics: [auc], bootstrap: 0 }}
"""


def _spec(folder, out=""):
    folder.mkdir(parents=True, exist_ok=True)
    f = folder / "s.rad"
    f.write_text(SPEC.format(out=f', out: "{out}"' if out else ""), encoding="utf-8")
    return f


def _tree(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


@pytest.mark.parametrize("prefix", ["/tmp/victim/x", "../../../x", "a/b", "..", "a\\\\b"])
def test_a_phantom_prefix_that_is_not_a_plain_name_is_E308(prefix):
    res = compile_source(f'cohort train = phantom(8) {{ prefix: "{prefix}" }}\n'
                         "features rad = pyradiomics(train.image, train.mask)\n", "s.rad")
    assert [d.code for d in res.diagnostics if d.is_error] == ["E308"]
    assert res.diagnostics[0].span.line == 1 and res.diagnostics[0].span.col == 37


def test_an_out_folder_that_is_a_file_is_E720(tmp_path):
    spec = _spec(tmp_path / "spec")
    (tmp_path / "afile").write_text("keep me")
    rc, _, err = run_cli(["run", spec, "--out", tmp_path / "afile"])
    assert rc == 2 and "error[E720]" in err and "afile" in err and "internal error" not in err
    assert (tmp_path / "afile").read_text() == "keep me"
    rc, _, err = run_cli(["run", spec, "--out", tmp_path / "afile", "--force"])   # --force does not make a file a folder
    assert rc == 2 and "error[E720]" in err


@pytest.mark.parametrize("where", ["spec-folder", "spec-out-dot", "cwd", "parent-of-spec", "parent-of-cwd"])
def test_the_spec_or_current_folder_or_one_above_needs_force(tmp_path, where):
    spec_dir, cwd = tmp_path / "a" / "spec", tmp_path / "b" / "work"
    cwd.mkdir(parents=True)
    spec = _spec(spec_dir, out="." if where == "spec-out-dot" else "")
    out = {"spec-folder": spec_dir, "spec-out-dot": None, "cwd": cwd, "parent-of-spec": tmp_path / "a", "parent-of-cwd": tmp_path}[where]
    before = _tree(tmp_path)
    rc, _, err = run_cli(["run", spec, "--quiet"] + (["--out", out] if out else []), cwd=cwd)
    assert rc == 2 and "error[E721]" in err and "--force" in err, err
    assert _tree(tmp_path) == before, "a refused run writes nothing"
    rc, _, err = run_cli(["run", spec, "--quiet", "--force"] + (["--out", out] if out else []), cwd=cwd)
    assert rc == 0, err
    assert (Path(out or spec_dir) / MARKER).is_file()


def test_a_non_empty_folder_radlang_did_not_make_needs_force_once(tmp_path):
    spec = _spec(tmp_path / "spec")
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("my notes")
    rc, _, err = run_cli(["run", spec, "--out", out, "--quiet"])
    assert rc == 2 and "error[E722]" in err and "not empty" in err and _tree(out) == ["notes.txt"]
    rc, _, err = run_cli(["run", spec, "--out", out, "--quiet", "--force"])
    assert rc == 0 and (out / MARKER).is_file() and (out / "notes.txt").read_text() == "my notes"
    rc, _, err = run_cli(["run", spec, "--out", out, "--quiet"])      # now marked as radlang's: a re-run needs no --force
    assert rc == 0, err


def test_an_empty_or_new_folder_needs_nothing(tmp_path):
    spec = _spec(tmp_path / "spec")
    (tmp_path / "empty").mkdir()
    for out in (tmp_path / "empty", tmp_path / "new" / "deeper"):
        rc, _, err = run_cli(["run", spec, "--out", out, "--quiet"])
        assert rc == 0, err
        assert json.loads((out / "metrics" / "v.json").read_text())["n_cases"] == 60


@pytest.mark.parametrize("bad", ["../../evil", "a/b", "a\\\\b", ".."])
def test_a_case_id_that_is_no_file_name_is_a_manifest_diagnostic(tmp_path, bad):
    from radlang.ops.cohorts import make_phantom

    data = tmp_path / "data"
    data.mkdir()
    make_phantom({"cases": 4, "effect": 1.0, "sites": 1, "site_shift": 0.0, "noise": 8.0, "size": [16, 16, 16],
                  "spacing": [1.0, 1.0, 1.0]}, 3, str(data), "c")
    rows = list(csv.reader((data / "manifest.csv").open()))
    rows[2][0] = bad.replace("\\\\", "\\")
    with (data / "manifest.csv").open("w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    spec = tmp_path / "s.rad"
    spec.write_text(f'study "t" {{ seed: 1, out: "o" }}\ncohort c = manifest("{data / "manifest.csv"}") {{ mask: mask, outcome: malignant as binary }}\n'
                    "features f = pyradiomics(c.image, c.mask) { classes: [firstorder] }\n", encoding="utf-8")
    rc, _, err = run_cli(["run", spec, "--quiet"])
    assert rc == 1 and "error[E601]" in err and f"case `{rows[2][0]}`" in err and "row 3" in err and "Traceback" not in err, err
    assert not (tmp_path.parent / "evil").exists()
    spec.write_text(spec.read_text().replace('out: "o"', 'out: "o", on_error: "skip"'))
    rc, _, err = run_cli(["run", spec, "--quiet"])
    assert rc == 0, err
    excluded = json.loads((tmp_path / "o" / "run.json").read_text())["excluded_cases"]
    assert [e["case"] for e in excluded] == [rows[2][0]]


def test_an_out_folder_of_an_earlier_radlang_needs_no_force(tmp_path):
    """Folders written before the marker existed hold run.json and .cache/: they are radlang's."""
    spec = _spec(tmp_path / "spec")
    out = tmp_path / "old"
    (out / ".cache").mkdir(parents=True)
    (out / "run.json").write_text("{}")
    rc, _, err = run_cli(["run", spec, "--out", out, "--quiet"])
    assert rc == 0, err
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "run.json").write_text("{}")       # a run.json alone is not enough
    rc, _, err = run_cli(["run", spec, "--out", tmp_path / "other", "--quiet"])
    assert rc == 2 and "E722" in err
