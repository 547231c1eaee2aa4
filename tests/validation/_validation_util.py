"""Helpers for the validation tests: write a tabular cohort CSV and a spec, compile and run it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from radlang.backends.executor import RunError, run_study
from radlang.compiler import compile_source


def write_table(path: Path, X: np.ndarray, y, patients=None, sites=None, prefix="c") -> Path:
    n, p = X.shape
    df = pd.DataFrame(X, columns=[f"f{j:04d}" for j in range(p)])
    df.insert(0, "case", [f"{prefix}{i:03d}" for i in range(n)])
    df.insert(1, "y", np.asarray(y).astype(int))
    if patients is not None:
        df.insert(2, "pid", patients)
    if sites is not None:
        df.insert(2, "hospital", sites)
    df.to_csv(path, index=False, float_format="%.17g")
    return path


def compile_ok(src: str, file: str):
    res = compile_source(src, file)
    assert res.ok, "\n".join(f"{d.code} {d.message}" for d in res.diagnostics)
    return res.study


def codes(src: str, file: str = "<test>") -> list[str]:
    res = compile_source(src, file)
    return [d.code for d in res.diagnostics]


def run_spec(src: str, spec_path: Path, out: Path, workers: int = 1):
    spec_path.write_text(src)
    study = compile_ok(src, str(spec_path))
    ctx = run_study(study, out=out, workers=workers, quiet=True)
    return ctx


def run_error_codes(src: str, spec_path: Path, out: Path) -> list:
    spec_path.write_text(src)
    study = compile_ok(src, str(spec_path))
    try:
        run_study(study, out=out, workers=1, quiet=True)
    except RunError as e:
        return e.diagnostics
    raise AssertionError("expected a RunError")


def metrics(out: Path, stage: str = "v") -> dict:
    return json.loads((out / "metrics" / f"{stage}.json").read_text())


def predictions(out: Path, stage: str = "v") -> pd.DataFrame:
    return pd.read_csv(out / "predictions" / f"{stage}.csv", dtype={"case_id": str, "patient_id": str})
