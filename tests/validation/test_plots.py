"""Plots and the run summary of `evaluate`: ROC, calibration and decision-curve PNGs drawn from the metrics
(deterministic bytes), and the summary lines `radlang run` prints, formatted from the metrics JSON."""

from __future__ import annotations

import json
import struct

import pytest
from _validation_util import run_spec

import radlang.ops.evaluation_plots as plots_module
from radlang.ops.validate import evaluation_plots, evaluation_summary

SPEC = """
study "plots" { seed: 5 }
cohort dev = dataset("breast_cancer") { stop: 200 }
cohort ext = dataset("breast_cancer") { start: 400 }
features f = tabular(dev)
model m = logistic(f, target: dev.outcome) { C: 0.3 }
validate v = evaluate(m) {
  cv: stratified_kfold(3)
  external: ext
  metrics: [auc, roc, sensitivity, specificity, brier, calibration, net_benefit]
  threshold: sensitivity >= 0.9
  bootstrap: 50
}
"""

PLOTS = ("roc.png", "calibration.png", "decision_curve.png")


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("plots")
    a = run_spec(SPEC, d / "a.rad", d / "a")
    b = run_spec(SPEC, d / "b.rad", d / "b")      # another folder: its own cache, everything recomputed
    return d, a, b


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_three_pngs_valid_and_identical_across_runs(two_runs):
    d, _, _ = two_runs
    for name in PLOTS:
        pa, pb = d / "a" / "plots" / "v" / name, d / "b" / "plots" / "v" / name
        assert pa.is_file() and pb.is_file(), name
        data = pa.read_bytes()
        assert data.startswith(b"\x89PNG")
        assert _png_size(data) == (640, 560)          # figsize 6.4 x 5.6 in at 100 dpi
        assert data == pb.read_bytes(), f"{name} differs between two runs"
        assert b"Software" not in data               # no matplotlib version stamp in the file
    assert not list((d / "a" / "plots" / "v").glob(".*.tmp")), "temporary files left behind"


def test_summary_line_formats_the_metrics_json(two_runs):
    d, a, _ = two_runs
    m = json.loads((d / "a" / "metrics" / "v.json").read_text())
    cv, ext = m["cross_validation"], m["external"]
    head = a.summary[0]
    assert head.startswith("v: cross-validated AUC ")
    auc = f"AUC {cv['auc']['estimate']:.3f} [{cv['auc']['ci_low']:.3f}, {cv['auc']['ci_high']:.3f}]"
    assert auc in head
    assert f"(3 folds, {m['n_cases']} cases" in head
    assert m["n_cases"] == 200 and ext["n_predictions"] == 169
    eauc = f"external `ext` (169 cases) AUC {ext['auc']['estimate']:.3f} [{ext['auc']['ci_low']:.3f}, {ext['auc']['ci_high']:.3f}]"
    assert eauc in head
    assert (f"sensitivity {ext['sensitivity']:.2f}, specificity {ext['specificity']:.2f} at threshold {ext['threshold']:.3f} "
            "(chosen on training data: sensitivity >= 0.9)") in head
    assert a.summary[1] == ("v: wrote metrics/v.json, predictions/v.csv, plots/v/roc.png, plots/v/calibration.png, "
                            "plots/v/decision_curve.png, models/v.skops, models/v.json")


def _not_drawn(metrics, survival=None):
    raise AssertionError("plots drawn again although the metrics are unchanged")


def test_cached_rerun_gives_same_plots_and_summary(two_runs, monkeypatch):
    d, a, _ = two_runs
    before = {n: (d / "a" / "plots" / "v" / n).read_bytes() for n in PLOTS}
    (d / "a" / "plots" / "v" / "roc.png").unlink()
    monkeypatch.setattr(plots_module, "evaluation_plots", _not_drawn)   # the PNGs come from the cache too (_report imports it from there)
    again = run_spec(SPEC, d / "a.rad", d / "a")       # cache hit: metrics come back from the cache
    assert again.cache.hits >= 1
    assert again.summary == a.summary
    assert {n: (d / "a" / "plots" / "v" / n).read_bytes() for n in PLOTS} == before


def test_cli_prints_the_summary_after_done(two_runs, capsys):
    from radlang.cli import main

    d, a, _ = two_runs
    assert main(["run", str(d / "a.rad"), "--out", str(d / "a")]) == 0
    err = capsys.readouterr().err.splitlines()
    done = next(i for i, line in enumerate(err) if line.startswith("done in "))
    assert err[done + 1:done + 3] == a.summary


def test_plots_only_for_what_the_metrics_hold():
    base = {"stage": "v", "outcome": "binary", "model": "logistic", "cohort": "dev", "n_cases": 4,
            "cv": {"kind": "stratified_kfold", "k": 2, "repeats": 1, "splits": 2}}
    only_auc = {**base, "cross_validation": {"auc": {"estimate": 0.75}, "brier": 0.2, "n_predictions": 4}}
    assert evaluation_plots(only_auc) == {}
    roc = {**base, "cross_validation": {"auc": {"estimate": 0.75}, "roc": {"fpr": [0, 0, 0.5, 1], "tpr": [0, 0.5, 1, 1]}}}
    assert set(evaluation_plots(roc)) == {"roc.png"}
    from radlang.ops.survival_metrics import survival_plots

    assert evaluation_plots({**roc, "outcome": "survival"}, survival_plots) == {}   # a survival evaluation's plots: km, calibration
    assert evaluation_summary(only_auc, []) == ["v: cross-validated AUC 0.750 (2 folds, 4 cases)"]


def test_rendered_script_draws_the_same_plots_and_prints_the_summary(two_runs):
    import subprocess
    import sys

    from radlang.backends.render.script import render_to_file
    from radlang.compiler import compile_source

    d, a, _ = two_runs
    study = compile_source(SPEC, str(d / "a.rad")).study
    script = render_to_file(study, d / "study.py")
    proc = subprocess.run([sys.executable, str(script), "--out", str(d / "script")],
                          check=False, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name in PLOTS:
        assert (d / "script" / "plots" / "v" / name).read_bytes() == (d / "a" / "plots" / "v" / name).read_bytes(), name
    err = proc.stderr.splitlines()
    assert err[-2:] == a.summary


def test_segmentation_metrics_summary_formats_the_metrics_json(tmp_path):
    pytest.importorskip("monai")
    from radlang.backends.executor import run_study
    from tests.deep.conftest import compile_spec, write_cohort
    from tests.deep.test_run import SEG

    cohorts = {"train": write_cohort(tmp_path / "train", 6, 1), "test": write_cohort(tmp_path / "test", 3, 2)}
    ctx = run_study(compile_spec(SEG.format(**cohorts), tmp_path), out=tmp_path / "out", workers=1, quiet=True)
    per_class = json.loads((tmp_path / "out" / "metrics" / "seg.json").read_text())["per_class"]
    assert set(per_class) == {"1", "2"}
    line = next(s for s in ctx.summary if s.startswith("seg: "))
    assert line.startswith("seg: segmentation of `test` (3 cases): ") and line.endswith("; wrote metrics/seg.json")
    for c, r in per_class.items():
        assert f"class {c}: mean Dice {r['dice_mean']:.3f}, mean HD95 {r['hd95_mean']:.2f} mm" in line
