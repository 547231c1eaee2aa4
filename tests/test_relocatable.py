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
