"""`radlang predict`: the saved final model of a validation stage, applied to the external cohort, gives exactly that
cohort's rows of predictions/<stage>.csv; bad input is a diagnostic and writes nothing."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cli_runner import run_cli

SPEC = """
study "predict" { seed: 4 }
cohort train = phantom(14) { size: [16, 16, 16], effect: 2.0 }
cohort ext = phantom(8, seed: 77) { size: [16, 16, 16], effect: 2.0 }
features rad = pyradiomics(train.image, train.mask) { bin_width: 25, classes: [firstorder, glcm] }
select keep = variance(rad)
model clf = logistic(keep, target: train.outcome) { C: 0.5 }
validate v = evaluate(clf) {
  cv: stratified_kfold(2)
  external: ext
  threshold: youden
  metrics: [auc, sensitivity, specificity]
  bootstrap: 0
}
"""


@pytest.fixture(scope="module")
def study_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    spec = root / "s.rad"
    spec.write_text(SPEC)
    rc, _, err = run_cli(["run", spec, "--out", root / "out", "--workers", "1", "--quiet"])
    assert rc == 0, err
    return root, spec, root / "out"


def _ext_manifest(out: Path) -> Path:
    found = sorted(out.glob("data/ext*/manifest.csv"))
    assert len(found) == 1, found
    return found[0]


def test_predict_on_the_external_cohort_equals_its_rows_of_the_predictions(study_run):
    root, spec, out = study_run
    rc, _, err = run_cli(["predict", spec, "v", _ext_manifest(out), "--out", out, "-o", root / "p.csv"])
    assert rc == 0, err
    got = pd.read_csv(root / "p.csv", dtype={"case_id": str})
    want = pd.read_csv(out / "predictions" / "v.csv", dtype={"case_id": str})
    want = want[want["set"] == "external"].reset_index(drop=True)
    assert list(got.columns) == ["case_id", "probability", "threshold", "predicted"]
    assert list(got["case_id"]) == list(want["case_id"]) and len(got) == 8
    assert (got["probability"].to_numpy() == want["probability"].to_numpy()).all()
    assert (got["predicted"].to_numpy() == want["predicted"].to_numpy()).all()
    assert (got["threshold"] == want["threshold"]).all()


def test_predict_refuses_bad_input_and_writes_nothing(study_run, tmp_path):
    _, spec, out = study_run
    target = tmp_path / "p.csv"
    rc, _, err = run_cli(["predict", spec, "vv", _ext_manifest(out), "--out", out, "-o", target])
    assert rc == 2 and "E730" in err and "did you mean `v`" in err and not target.exists()
    # images of another voxel spacing than the training images
    from radlang.ops.cohorts import make_phantom

    make_phantom({"cases": 4, "effect": 2.0, "sites": 1, "site_shift": 0.0, "noise": 8.0, "size": [16, 16, 16],
                  "spacing": [2.0, 2.0, 2.0]}, 5, str(tmp_path / "coarse"), "x")
    rc, _, err = run_cli(["predict", spec, "v", tmp_path / "coarse" / "manifest.csv", "--out", out, "-o", target])
    assert rc == 1 and "E664" in err and "voxel spacing [2.0, 2.0, 2.0]" in err and not target.exists()
    # a saved model altered after the run
    model = out / "models" / "v.skops"
    data = model.read_bytes()
    try:
        model.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
        rc, _, err = run_cli(["predict", spec, "v", _ext_manifest(out), "--out", out, "-o", target])
        assert rc == 2 and "E732" in err and not target.exists()
    finally:
        model.write_bytes(data)


def test_predict_names_missing_feature_columns(tmp_path):
    spec = tmp_path / "q.rad"
    spec.write_text("""
study "q" { seed: 1 }
cohort dev = dataset("breast_cancer") { stop: 150 }
features f = tabular(dev) { columns: [mean_radius, mean_texture, mean_area] }
model clf = logistic(f, target: dev.outcome)
validate v = evaluate(clf) { cv: stratified_kfold(3), bootstrap: 0, metrics: [auc] }
""")
    rc, _, err = run_cli(["run", spec, "--out", tmp_path / "out", "--workers", "1", "--quiet"])
    assert rc == 0, err
    pd.DataFrame({"case_id": ["n1", "n2"], "mean_radius": [12.0, 20.0], "mean_area": [400.0, 1200.0]}).to_csv(tmp_path / "new.csv", index=False)
    rc, _, err = run_cli(["predict", spec, "v", tmp_path / "new.csv", "--out", tmp_path / "out", "-o", tmp_path / "p.csv"])
    assert rc == 1 and "E641" in err and "no clinical column `mean_texture`" in err, err
    assert not (tmp_path / "p.csv").exists()
    pd.DataFrame({"case_id": ["n1", "n2"], "mean_radius": [12.0, 20.0], "mean_texture": [15.0, 25.0],
                  "mean_area": [400.0, 1200.0]}).to_csv(tmp_path / "new.csv", index=False)
    rc, _, err = run_cli(["predict", spec, "v", tmp_path / "new.csv", "--out", tmp_path / "out", "-o", tmp_path / "p.csv"])
    assert rc == 0, err
    p = pd.read_csv(tmp_path / "p.csv")
    # a small, smooth nucleus (n1) and a large one (n2): malignant = 1
    assert list(p["case_id"]) == ["n1", "n2"] and p["probability"].iloc[0] < 0.5 < p["probability"].iloc[1]
