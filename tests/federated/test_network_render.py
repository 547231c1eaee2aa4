"""A federated fused CNN over one cohort per site, end to end: its outputs, and `radlang render`'s script reproducing
them byte for byte."""

import json
import subprocess
import sys

import pytest

pytest.importorskip("torch")
pytest.importorskip("monai")

from test_networks import NET, _cohorts, _study

from radlang.backends.executor import run_study


def test_one_cohort_per_site_of_a_fused_cnn_runs_and_renders_the_same_bytes(tmp_path):
    src = (_cohorts(["north", "south", "north_test", "south_test"], n=6) + NET
           + "features clin = tabular(north) { columns: [age] }\nfeatures both = join(img, clin)\n"
           "model m = cnn(both, target: north.outcome, network: enc) { hidden: 4 }\n"
           "federate fed = fedavg(m) { clients: [north.outcome, south.outcome], tests: [north_test.outcome, south_test.outcome], "
           "rounds: 1, batch: 0 }\n")
    study = _study(tmp_path, src)
    run_study(study, out=tmp_path / "out", workers=1, quiet=True)
    m = json.loads((tmp_path / "out" / "metrics" / "fed_federated.json").read_text())
    first = m["seeds"][0]
    assert m["model"] == "cnn" and m["metric"] == "auc" and m["network"]["n_tab"] == 1 and m["network"]["shape"] == [1, 8, 8, 8]
    assert set(first["federated"]["sites"]) == {"north", "south"} and first["federated"]["pooled"] is not None
    assert set(first["local"]) == {"north", "south"} and first["centralised"]["pooled"] is not None
    assert {s: c["n"] for s, c in first["history"][0]["clients"].items()} == {"north": 6, "south": 6}
    assert "1 feature(s)" in m["boundary"]["standardisation"]                  # the age column's sums, never the voxels
    from radlang.backends.render.script import render_to_dir

    folder = render_to_dir(study, tmp_path / "review")
    subprocess.run([sys.executable, str(folder / "study.py"), "--out", str(tmp_path / "rendered")], check=True, capture_output=True,
                   timeout=300)
    for f in ("metrics/fed_federated.json", "models/fed.json", "metrics/fed_drift.png"):
        assert (tmp_path / "rendered" / f).read_bytes() == (tmp_path / "out" / f).read_bytes(), f
