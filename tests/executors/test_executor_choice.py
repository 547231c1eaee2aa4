"""Choosing the executor: `--executor` values, an unreachable scheduler (E715: reported before anything is
written), and a Dask run that fails still stops its cluster."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from tests.cli_runner import run_cli

SPEC = """study "s" {{ seed: 1 }}
cohort c = manifest("{manifest}") {{ mask: mask, outcome: malignant as binary }}
features rad = pyradiomics(c.image, c.mask) {{ bin_width: 25, classes: [firstorder] }}
"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from radlang.ops.cohorts import make_phantom

    d = tmp_path_factory.mktemp("tiny")
    make_phantom({"cases": 4, "effect": 1.0, "sites": 1, "site_shift": 0.0, "noise": 8.0, "size": [12, 12, 10],
                  "spacing": [1.0, 1.0, 1.0]}, 3, str(d), "c")
    return d / "manifest.csv"


def _spec(tmp_path, manifest) -> Path:
    p = tmp_path / "s.rad"
    p.write_text(SPEC.format(manifest=manifest))
    return p


def _free_port() -> int:
    with socket.socket() as s:            # bound, then closed: nothing listens there
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_scheduler_is_a_usage_error_and_nothing_is_written(tmp_path, tiny):
    pytest.importorskip("distributed")
    address = f"tcp://127.0.0.1:{_free_port()}"
    out = tmp_path / "out"
    t0 = time.monotonic()
    rc, _, err = run_cli(["run", _spec(tmp_path, tiny), "--out", out, "--executor", address, "--quiet"])
    assert rc == 2, err
    assert "error[E715]" in err and f"`{address}`" in err
    assert time.monotonic() - t0 < 30                  # the connection timeout bounds the wait
    assert not out.exists()


@pytest.mark.parametrize("value", ["dusk", "tcp://", "http://127.0.0.1:8786", "tls://127.0.0.1:8786"])
def test_an_unknown_executor_is_a_usage_error(tmp_path, tiny, value):
    out = tmp_path / "out"
    rc, _, err = run_cli(["run", _spec(tmp_path, tiny), "--out", out, "--executor", value, "--quiet"])
    assert rc == 2 and "error[E716]" in err and f"`{value}`" in err
    assert not out.exists()


def test_dask_not_installed_is_a_usage_error(tmp_path, tiny, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "distributed", None)           # `import distributed` fails as when not installed
    monkeypatch.delitem(sys.modules, "radlang.backends.executors.dask", raising=False)
    out = tmp_path / "out"
    rc, _, err = run_cli(["run", _spec(tmp_path, tiny), "--out", out, "--executor", "dask", "--quiet"])
    assert rc == 2 and "error[E717]" in err and "dask[distributed]" in err
    assert not out.exists()


def test_a_failing_dask_run_stops_its_cluster(tmp_path, tiny, monkeypatch):
    """An empty mask: the per-case check on a Dask worker reports it (E605), and the LocalCluster's worker processes
    are gone when the run returns."""
    pytest.importorskip("distributed")
    import shutil

    import SimpleITK as sitk

    from radlang.backends.executor import RunError, run_study
    from radlang.backends.executors.dask import DaskExecutor
    from radlang.compiler import compile_file

    data = tmp_path / "data"
    shutil.copytree(tiny.parent, data)
    mask = data / "cases" / "c_002_mask.nii.gz"
    sitk.WriteImage(sitk.ReadImage(str(mask)) * 0, str(mask))
    res = compile_file(_spec(tmp_path, data / "manifest.csv"))
    assert res.ok, [d.message for d in res.diagnostics]
    pids = []
    close = DaskExecutor.close

    def recording_close(self):
        if self._client is not None:
            pids.extend(self._client.run(__import__("os").getpid).values())
        close(self)

    monkeypatch.setattr(DaskExecutor, "close", recording_close)
    with pytest.raises(RunError) as e:
        run_study(res.study, out=tmp_path / "out", workers=2, quiet=True, executor="dask")
    assert [(d.code, "c_002" in d.message) for d in e.value.diagnostics] == [("E605", True)]
    assert len(pids) == 2
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{p}").exists() for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(Path(f"/proc/{p}").exists() for p in pids)


def test_a_running_scheduler_without_workers_then_with_one(tmp_path, tiny, monkeypatch):
    """`--executor tcp://...`: a scheduler with no worker is E718, workers with another radlang E719 (nothing
    written); with a worker of the same radlang, the run writes the bytes of the local pool."""
    pytest.importorskip("distributed")
    from distributed import LocalCluster

    spec = _spec(tmp_path, tiny)
    cluster = LocalCluster(n_workers=0, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None)
    try:
        address = cluster.scheduler_address
        rc, _, err = run_cli(["run", spec, "--out", tmp_path / "none", "--executor", address, "--quiet"])
        assert rc == 2 and "error[E718]" in err and f"`{address}`" in err
        assert not (tmp_path / "none").exists()
        cluster.scale(1)
        cluster.wait_for_workers(1, timeout=60)
        import radlang

        with monkeypatch.context() as m:
            m.setattr(radlang, "__version__", "0.0.0-other")
            rc, _, err = run_cli(["run", spec, "--out", tmp_path / "other", "--executor", address, "--quiet"])
        assert rc == 2 and "error[E719]" in err and f"run radlang {radlang.__version__}, this run 0.0.0-other" in err
        assert not (tmp_path / "other").exists()
        rc, _, err = run_cli(["run", spec, "--out", tmp_path / "remote", "--executor", address, "--quiet"])
        assert rc == 0, err
    finally:
        cluster.close(timeout=30)
    rc, _, err = run_cli(["run", spec, "--out", tmp_path / "local", "--workers", 2, "--quiet"])
    assert rc == 0, err
    for f in ("features/rad.csv", "features/rad.diagnostics.csv"):
        assert (tmp_path / "remote" / f).read_bytes() == (tmp_path / "local" / f).read_bytes()


def test_a_dask_run_leaves_no_process_and_no_scratch_folder(tmp_path, tiny):
    """The Dask executor kills its LocalCluster's workers at the end of the run instead of waiting for their graceful
    stop: when `radlang run --executor dask` has exited, no process it started is alive (no waiting), and the
    workers' scratch folder is gone."""
    pytest.importorskip("distributed")
    import tempfile
    import uuid

    from tests.executors._util import cli, tagged

    before = set(Path(tempfile.gettempdir()).glob("radlang-dask-*"))
    tag = uuid.uuid4().hex
    proc = cli(_spec(tmp_path, tiny), "--out", tmp_path / "out", "--executor", "dask", "--workers", 2, tag=tag)
    seen: set[int] = set()
    while proc.poll() is None:          # the run and its workers, while it runs
        seen.update(tagged(tag))
        time.sleep(0.05)
    _, err = proc.communicate()
    assert proc.returncode == 0, err
    assert err == ""                    # no complaint from distributed about lost workers
    assert len(seen) >= 3, seen         # the run and at least its two workers were seen
    assert tagged(tag) == []
    assert set(Path(tempfile.gettempdir()).glob("radlang-dask-*")) <= before
