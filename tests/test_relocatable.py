"""Relocatable outputs: nothing a run writes (metrics, predictions, models, plots, explanations, run.json, manifest.json)
holds the absolute path of its out folder, so a finished run can be moved, archived or compared byte for byte with
the same study run elsewhere. One tiny study covers a radiomics validation (its final model and model card), an
explanation of it, and a network training (its checkpoint path)."""

from __future__ import annotations

import pytest

from tests.cli_runner import run_cli

SPEC = """study "relocatable" {
  seed: 3
  out: "runs/rel"
}
cohort train = phantom(8) { size: [16, 16, 16], effect: 2.0 }
features rad = pyradiomics(train.image, train.mask) { bin_width: 25, classes: [firstorder] }
model clf = logistic(rad, target: train.outcome)
validate v = evaluate(clf) { cv: stratified_kfold(2), bootstrap: 0 }
explain why = shap(v) { explainer: permutation, background: 4, max_evals: 40 }
network net = unet(dims: 3, in_channels: 1, out_channels: 2) { channels: [4, 8], strides: [2] }
train fit = supervised(net, train) { epochs: 1, batch: 4, patch: [16, 16, 16] }
"""


def test_no_output_names_the_absolute_out_folder(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("radiomics")
    pytest.importorskip("shap")
    spec = tmp_path / "rel.rad"
    spec.write_text(SPEC)
    out = tmp_path / "somewhere" / "out"
    rc, _, err = run_cli(["run", spec, "--out", out, "--quiet", "--workers", "1"])
    assert rc == 0, err
    needles = {str(out).encode(), str(out.resolve()).encode(), out.resolve().as_posix().encode()}
    written = [p for p in sorted(out.rglob("*")) if p.is_file() and not any(part.startswith(".") for part in p.relative_to(out).parts)]
    kinds = {p.relative_to(out).parts[0] for p in written}
    assert {"metrics", "models", "predictions", "explain", "data", "features"} <= kinds | {p.name for p in written}
    assert (out / "run.json") in written and (out / "manifest.json") in written
    holding = [p.relative_to(out).as_posix() for p in written if any(n in p.read_bytes() for n in needles)]
    assert holding == [], f"outputs that name the absolute out folder {out}: {holding}"
    # what the training report names instead: the checkpoint relative to the out folder
    assert '"checkpoint": "models/fit.pt"' in (out / "metrics" / "fit_training.json").read_text()
    assert (out / "models" / "fit.pt").is_file()


TABLE_SPEC = """study "moved" {
  seed: 4
  out: "out"
}
cohort c = table("data/cases.csv") { id: case, outcome: y as binary }
features f = tabular(c)
model m = logistic(f, target: c.outcome)
validate v = evaluate(m) { cv: stratified_kfold(2), bootstrap: 0 }
"""


def _study_folder(root):
    import numpy as np

    from tests.validation._validation_util import write_table

    (root / "data").mkdir(parents=True)
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 6)
    write_table(root / "data" / "cases.csv", rng.normal(size=(12, 3)) + y[:, None], y)
    (root / "study.rad").write_text(TABLE_SPEC)
    return root / "study.rad"


def test_inputs_are_recorded_relative_to_the_spec_so_a_moved_study_folder_gives_the_same_manifest(tmp_path):
    """An input outside the out folder is `<spec>/...` in run.json and manifest.json: the same study folder run in
    two places writes the same manifest.json, and neither record holds either absolute location."""
    import json

    pytest.importorskip("sklearn")
    records = []
    for place in ("here", "there/deeper"):
        spec = _study_folder(tmp_path / place / "study")
        rc, _, err = run_cli(["run", spec, "--quiet", "--workers", "1"])
        assert rc == 0, err
        out = spec.parent / "out"
        for name in ("run.json", "manifest.json"):
            assert str(tmp_path).encode() not in (out / name).read_bytes(), name
        run = json.loads((out / "run.json").read_text())
        assert list(run["inputs"]) == ["<spec>/data/cases.csv"] and run["spec"]["file"] == "../study.rad"
        assert (out / "spec.rad").read_text() == TABLE_SPEC       # the spec's text travels with its results
        records.append((out / "manifest.json").read_bytes())
    assert records[0] == records[1]
    assert json.loads(records[0])["inputs"] == run["inputs"]
