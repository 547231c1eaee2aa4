"""`radlang run` and the rendered script give byte-identical metrics JSON, predictions and feature CSVs.

The script runs in a Python where radlang cannot be imported, so it is standalone. The examples run
shrunk (fewer bootstrap resamples, folds and repeats) by rewriting those settings in the spec text."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from render_helpers import REPO, SPECS, compile_spec, compile_text, output_files, run_script

from radlang.backends.executor import run_study
from radlang.backends.render.script import render_to_dir


def equivalent(study, tmp_path: Path, workers: int = 1, script_path: Path | None = None) -> dict[str, bytes]:
    run_dir, script_dir = tmp_path / "run", tmp_path / "script"
    run_study(study, out=run_dir, workers=workers, quiet=True)
    script = script_path or render_to_dir(study, tmp_path / "review") / "study.py"
    proc = run_script(script, "--out", str(script_dir))
    assert proc.returncode == 0, proc.stderr[-3000:]
    # an output may name its own folder (a checkpoint path): the same file, written under another --out
    ran = {k: v.replace(str(run_dir).encode(), b"<out>") for k, v in output_files(run_dir).items()}
    scripted = {k: v.replace(str(script_dir).encode(), b"<out>") for k, v in output_files(script_dir).items()}
    assert ran, "`radlang run` wrote no CSV/JSON outputs"
    assert sorted(ran) == sorted(scripted), (sorted(ran), sorted(scripted))
    for name, data in ran.items():
        assert data == scripted[name], f"{name} differs between `radlang run` and the rendered script"
    record = json.loads((script_dir / "run.json").read_text())
    assert record["spec"]["sha256"] == json.loads((run_dir / "run.json").read_text())["spec"]["sha256"]
    return ran


def test_tabular_study_same_bytes(tmp_path):
    out = equivalent(compile_spec(SPECS / "tabular_small.rad"), tmp_path)
    assert {"metrics/v.json", "predictions/v.csv"} <= set(out)
    metrics = json.loads(out["metrics/v.json"])
    # a real model on real data: the cross-validated AUC of malignancy from 30 cytology features is high
    assert 0.85 < metrics["cross_validation"]["auc"]["estimate"] <= 1.0
    assert metrics["n_cases"] == 120 and [s for s in metrics["pipeline"] if s in ("keep", "sig", "clf")] == ["keep", "sig", "clf"]
    assert len(metrics["cross_validation"]["auc"]["per_repeat"]) == 2


def test_image_study_same_bytes(tmp_path):
    """A phantom cohort for development, and an external cohort read from a manifest (paths relative to the
    spec) whose PyRadiomics features the validation re-extracts: every image path of the executor."""
    from radlang.ops.cohorts import make_phantom

    spec_dir = tmp_path / "spec"
    make_phantom({"cases": 6, "effect": 2.0, "sites": 1, "site_shift": 20.0, "noise": 8.0, "size": [16, 16, 16],
                  "spacing": [1.0, 1.0, 1.0]}, 77, str(spec_dir / "external"), "ext")
    text = (SPECS / "phantom_radiomics.rad").read_text(encoding="utf-8").replace(
        "validate v = evaluate(clf) {",
        'cohort ext = manifest("external/manifest.csv") { image: image, mask: mask, outcome: malignant as binary }\n'
        "validate v = evaluate(clf) {\n  external: ext")
    spec = spec_dir / "study.rad"
    spec.write_text(text, encoding="utf-8")
    out = equivalent(compile_spec(spec), tmp_path)
    assert {"features/rad.csv", "features/rad.diagnostics.csv", "metrics/v.json"} <= set(out)
    data = {n for n in out if n.startswith("data/")}          # the phantom's folder is named by its settings' hash
    assert len({n.split("/")[1] for n in data}) == 1 and re.fullmatch(r"data/train-[0-9a-f]{16}/manifest\.csv", min(data))
    assert {n.split("/", 2)[2] for n in data} == {"manifest.csv", "phantom.json"}
    header = out["features/rad.csv"].decode().splitlines()[0]
    assert header.startswith("case_id,") and "original_firstorder_Mean" in header and "original_glcm_Contrast" in header
    assert len(out["features/rad.csv"].decode().splitlines()) == 11   # header + 10 cases
    metrics = json.loads(out["metrics/v.json"])
    assert metrics["external"]["cohort"] == "ext" and 0.0 <= metrics["external"]["auc"]["estimate"] <= 1.0


NETWORK_SHAP = """study "network shap" { seed: 2 }
cohort dev = phantom(10) { size: [16, 16, 16], effect: 2.0 }
network enc = resnet(dims: 3, in_channels: 2, out_channels: 2) { depth: 10, widen_factor: 0.125 }
features img = patches(dev) { patch: [16, 16, 16], mask_channel: true }
model net = cnn(img, target: dev.outcome, network: enc) { epochs: 1, batch: 4, hidden: 4, validation: 0 }
validate v = evaluate(net) { cv: stratified_kfold(2), bootstrap: 0, metrics: [auc] }
explain why = shap(v) { explainer: partition, max_evals: 30, regions: [2, 2, 1], background: 3, cases: 2 }
"""


SELECTED_SHAP = """study "shap of a selected model" { seed: 5 }
cohort dev = dataset("breast_cancer") { stop: 60 }
features f = tabular(dev)
select sig = lasso(f, target: dev.outcome) { cv: 2, max_features: 3 }
model clf = logistic(sig, target: dev.outcome)
validate v = evaluate(clf) { cv: stratified_kfold(2), bootstrap: 0, metrics: [auc] }
explain why = shap(v) { explainer: exact, max_evals: 64, per_fold: true, group_by: [family] }
"""


def _same_explanation(text, tmp_path) -> dict:
    """run == render for a study with a SHAP stage `why`, PNG panels included; its shap.json."""
    pytest.importorskip("shap")
    spec = tmp_path / "s.rad"
    spec.write_text(text, encoding="utf-8")
    out = equivalent(compile_spec(spec), tmp_path)
    pngs = sorted(p.relative_to(tmp_path / "run").as_posix() for p in (tmp_path / "run" / "explain" / "why").glob("*.png"))
    assert "explain/why/bar.png" in pngs
    for rel in pngs:
        assert (tmp_path / "run" / rel).read_bytes() == (tmp_path / "script" / rel).read_bytes(), rel
    return {**json.loads(out["explain/why/shap.json"]), "pngs": pngs}


def test_network_shap_same_bytes(tmp_path):
    """SHAP of a network (image + mask channels over regions): the rendered script loads the saved network (radlang's
    estimator classes stand in for their modules there) and writes the same values, groups and panels."""
    summary = _same_explanation(NETWORK_SHAP, tmp_path)
    assert summary["network"]["channels"] == ["image", "mask"] and summary["efficiency_max_error"] < 1e-6
    assert "explain/why/regions.png" in summary["pngs"] and "explain/why/bar_channel.png" in summary["pngs"]


def test_shap_of_a_selected_model_same_bytes(tmp_path):
    """A final model and fold models whose pipelines hold radlang's selector class load in the rendered script too."""
    summary = _same_explanation(SELECTED_SHAP, tmp_path)
    assert 1 <= len(summary["features"]) <= 3 and summary["folds"]["folds"] == 2


def _shrink(text: str) -> str:
    """The same study, cheaper: fewer resamples, folds, repeats and cases."""
    text = re.sub(r"\bbootstrap:\s*\d+", "bootstrap: 20", text)
    text = re.sub(r"\brepeats:\s*\d+", "repeats: 1", text)
    text = re.sub(r"\bstratified_kfold\(\s*\d+", "stratified_kfold(3", text)
    text = re.sub(r"\bkfold\(\s*\d+", "kfold(3", text)
    text = re.sub(r"\bphantom\(\s*(\d+)", lambda m: f"phantom({min(int(m.group(1)), 18)}", text)
    text = re.sub(r"\bcv:\s*\d+", "cv: 3", text)          # inner CV of a selection step
    text = re.sub(r"\bepochs:\s*\d+", "epochs: 2", text)
    text = re.sub(r"\brounds:\s*\d+", "rounds: 2", text)
    return text


EXAMPLES = sorted((REPO / "examples").glob("*.rad"))


@pytest.mark.slow  # 30-120 s each; the studies above cover the radiomics modes in the fast suite
@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_same_bytes(example, tmp_path):
    text = example.read_text(encoding="utf-8")
    if "shared/data/" in text and not (REPO / ".." / "shared" / "data").is_dir():
        pytest.skip("the example reads the shared reference data (../shared/data), which is not beside the project")
    equivalent(compile_text(_shrink(text), example), tmp_path)
