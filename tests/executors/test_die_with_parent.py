"""`kill -9` of `radlang run` in the middle of extraction leaves no process it started alive 5 s later (pool
workers, multiprocessing's resource tracker, Dask workers), and a re-run gives the outputs of an uninterrupted run."""

from __future__ import annotations

import os
import signal
import sys
import textwrap
import time
import uuid

import pytest

from tests.executors._util import cli, outputs, tagged

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

SPEC = """
study "kill" { seed: 5 }
cohort train = phantom(32) { size: [64, 64, 48], effect: 2.0 }
features rad = pyradiomics(train.image, train.mask) { bin_width: 25, classes: [firstorder, glcm, glrlm, glszm] }
model clf = logistic(rad, target: train.outcome) { C: 1.0 }
validate v = evaluate(clf) { cv: stratified_kfold(2), metrics: [auc, brier], bootstrap: 10 }
"""
FILES = ["features/rad.csv", "features/rad.diagnostics.csv", "metrics/v.json", "predictions/v.csv"]


def _finish(proc, timeout=240):
    try:
        _, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, err
    return err


def _cases_cached(out) -> int:
    cache = out / ".cache"
    return sum(1 for p in cache.rglob("*") if p.is_file()) if cache.exists() else 0


@pytest.mark.parametrize("executor", ["local", "dask"])
def test_kill_9_leaves_no_process_and_a_rerun_matches(tmp_path, executor):
    spec = tmp_path / "kill.rad"
    spec.write_text(textwrap.dedent(SPEC))
    tag = uuid.uuid4().hex
    out = tmp_path / "killed"
    proc = cli(spec, "--out", out, "--workers", 2, "--executor", executor, tag=tag)
    try:
        # mid-extraction: workers are up and some cases are cached, the feature table is not written yet
        deadline = time.monotonic() + 120
        while _cases_cached(out) < 4 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        started = tagged(tag)
        assert proc.poll() is None, "the run ended before it could be killed mid-extraction"
        assert not (out / "features" / "rad.csv").exists()
        assert len(started) >= 3, started              # the run and at least its two workers
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        time.sleep(5)
        alive = tagged(tag)
        assert alive == [], f"alive 5 s after kill -9 of the run {proc.pid}: {alive} (started: {started})"
    finally:
        for pid in tagged(tag):          # never leave them behind, even when the test fails
            os.kill(pid, signal.SIGKILL)
        proc.stdout.close()
        proc.stderr.close()
    # the interrupted run resumes from its cache; an uninterrupted run in another folder gives the same bytes
    _finish(cli(spec, "--out", out, "--workers", 2, "--executor", executor))
    _finish(cli(spec, "--out", tmp_path / "clean", "--workers", 2))
    assert outputs(out, FILES) == outputs(tmp_path / "clean", FILES)
