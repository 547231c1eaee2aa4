"""The Flower target deployed on loopback equals the simulation (<= 1e-6), each client opens only its own site's
files, an unreachable SuperLink is an error after bounded retries, and every process started is stopped.
Skips when the Flower executables are absent."""

import json

import numpy as np
import psutil
import pytest

from radlang.backends.executor import run_study
from radlang.backends.render.flower import render_flower
from radlang.backends.render.flower_loopback import LoopbackError, free_port, loopback_available, run_loopback
from radlang.compiler import compile_source

ok, why = loopback_available()
pytestmark = pytest.mark.skipif(not ok, reason=why)

SPEC = """
study "loopback" {{ seed: 3 }}
cohort train = multisite(160) {{ sites: {sites}, features: 3, outcome: binary, site_shift: 0.8, split: train }}
cohort test = multisite(160) {{ sites: {sites}, features: 3, outcome: binary, site_shift: 0.8, split: test }}
features clin = tabular(train)
federate fed = fedavg(clin, target: train.outcome) {{
  strategy: fedadam, server_lr: 0.05, rounds: 2, batch: 16, lr: 0.05, seeds: [4], test: test, references: false
}}
"""


def _study(tmp_path, sites=3):
    spec = tmp_path / "fed.rad"
    spec.write_text(SPEC.format(sites=sites))
    res = compile_source(spec.read_text(), str(spec))
    assert res.ok, [(d.code, d.message) for d in res.diagnostics]
    return res.study


def _flower_processes():
    return {p.pid for p in psutil.process_iter(["cmdline"]) if any("flower-" in c or c.endswith("flwr") for c in (p.info["cmdline"] or []))}


@pytest.mark.slow
def test_flower_loopback_equals_the_simulation_and_clients_read_only_their_site(tmp_path):
    study = _study(tmp_path)
    run_study(study, out=tmp_path / "sim", workers=1, quiet=True)
    sim = json.loads((tmp_path / "sim" / "metrics" / "fed_federated.json").read_text())["seeds"][0]
    render_flower(study, tmp_path / "app", site_data=True)
    before = _flower_processes()
    got = run_loopback(tmp_path / "app", timeout=540)
    assert _flower_processes() - before == set()                     # every process it started is gone
    fl = got["result"]["seeds"][0]
    for a, b in zip(fl["weights"], sim["weights"]):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=1e-6)
    assert sorted(fl["sites"]) == sorted(sim["federated"]["sites"]) == ["site1", "site2", "site3"]
    for site, v in sim["federated"]["sites"].items():
        assert abs(fl["sites"][site] - v) <= 1e-6
    for hf, hs in zip(fl["history"], sim["history"]):
        assert sorted(hf["clients"]) == sorted(hs["clients"])
        for s in hs["clients"]:
            assert abs(hf["clients"][s]["loss"] - hs["clients"][s]["loss"]) <= 1e-6
            assert abs(hf["clients"][s]["drift"] - hs["clients"][s]["drift"]) <= 1e-6
    sites_dir = (tmp_path / "app" / "sites").resolve()
    for site, opened in got["audit"].items():
        data = [p for p in opened if p.startswith(str(sites_dir))]
        assert data and all(p.startswith(str(sites_dir / site) + "/") for p in data), (site, data)


NETWORK = """
study "loopback network" { seed: 3 }
cohort north = phantom(6) { size: [16, 16, 16], effect: 2.0, seed: 1, prefix: "no" }
cohort south = phantom(6) { size: [16, 16, 16], effect: 2.0, seed: 2, prefix: "so" }
cohort north_test = phantom(4) { size: [16, 16, 16], effect: 2.0, seed: 3, prefix: "nt" }
cohort south_test = phantom(4) { size: [16, 16, 16], effect: 2.0, seed: 4, prefix: "st" }
features img = patches(north) { patch: [8, 8, 8] }
features clin = tabular(north) { columns: [age] }
features both = join(img, clin)
network enc = segresnet(dims: 3, in_channels: 1, out_channels: 2) { init_filters: 4, blocks_down: [1, 1], blocks_up: [1], norm: batch }
model m = cnn(both, target: north.outcome, network: enc) { hidden: 4 }
federate fed = fedavg(m) {
  clients: [north.outcome, south.outcome], tests: [north_test.outcome, south_test.outcome]
  strategy: fedprox, mu: 0.1, rounds: 2, batch: 4, seeds: [4], references: false
}
"""


@pytest.mark.slow
def test_a_federated_fused_cnn_on_loopback_equals_the_simulation(tmp_path):
    """A network (a CNN fused with a clinical column, one cohort per site) deployed on loopback: the same weights,
    losses, drifts and per-site test metrics as `radlang run` (<= 1e-6), each client reading its own site's files."""
    pytest.importorskip("monai")
    spec = tmp_path / "net.rad"
    spec.write_text(NETWORK)
    res = compile_source(NETWORK, str(spec))
    assert res.ok, [(d.code, d.message) for d in res.diagnostics]
    run_study(res.study, out=tmp_path / "sim", workers=1, quiet=True)
    sim = json.loads((tmp_path / "sim" / "metrics" / "fed_federated.json").read_text())["seeds"][0]
    render_flower(res.study, tmp_path / "app", site_data=True)
    before = _flower_processes()
    got = run_loopback(tmp_path / "app", timeout=540)
    assert _flower_processes() - before == set()
    fl = got["result"]["seeds"][0]
    for a, b in zip(fl["weights"], sim["weights"]):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=1e-6)
    assert sorted(fl["sites"]) == ["north", "south"] and all(abs(fl["sites"][s] - v) <= 1e-6 for s, v in sim["federated"]["sites"].items())
    for hf, hs in zip(fl["history"], sim["history"]):
        for s in hs["clients"]:
            assert abs(hf["clients"][s]["loss"] - hs["clients"][s]["loss"]) <= 1e-6
            assert abs(hf["clients"][s]["drift"] - hs["clients"][s]["drift"]) <= 1e-6
    sites_dir = (tmp_path / "app" / "sites").resolve()
    for site, opened in got["audit"].items():
        data = [p for p in opened if p.startswith(str(sites_dir))]
        assert data and all(p.startswith(str(sites_dir / site) + "/") for p in data), (site, data)


def test_an_unreachable_superlink_is_an_error_after_bounded_retries(tmp_path):
    study = _study(tmp_path, sites=2)
    render_flower(study, tmp_path / "app", site_data=True)
    before = _flower_processes()
    with pytest.raises(LoopbackError) as e:
        run_loopback(tmp_path / "app", timeout=60, superlink_port=free_port(), retries=1)
    assert e.value.code == "E753" and "cannot be reached" in str(e.value) and "`site1`, `site2`" in str(e.value)
    assert _flower_processes() - before == set()
