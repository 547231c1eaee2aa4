"""The Dask executor (a 2-worker LocalCluster on 127.0.0.1) writes the same bytes as the local process pool: per-case
extraction and per-fold fits go through it, and results are placed by index, never by completion order."""

from __future__ import annotations

import functools
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("distributed")

PHANTOM = """
study "phantom" { seed: 3 }
cohort train = phantom(10) { size: [16, 16, 16], effect: 2.0 }
cohort external = phantom(4, seed: 21) { size: [16, 16, 16], effect: 2.0, site_shift: 20HU }
features rad = pyradiomics(train.image, train.mask) { bin_width: 25, classes: [firstorder, glcm] }
select robust = icc(rad) { min: 0.75, form: "ICC(1,1)", perturb: [erode(1)] }
model clf = logistic(robust, target: train.outcome) { C: 1.0 }
validate v = evaluate(clf) {
  cv: stratified_kfold(2, repeats: 2)
  external: external
  metrics: [auc, brier, sensitivity]
  threshold: sensitivity >= 0.9
  bootstrap: 20
}
"""

# a network trained on one cohort segments another; radiomics on its masks, then a validated model
NETWORK = """
study "network" { seed: 11 }
cohort train = phantom(6) { size: [16, 16, 16], effect: 2.0 }
cohort test = phantom(10, seed: 99) { size: [16, 16, 16], effect: 2.0 }
network net = unet(dims: 3, in_channels: 1, out_channels: 2) { channels: [4, 8], strides: [2], num_res_units: 0 }
train fit = supervised(net, train) { loss: dice_ce, epochs: 2, batch: 2, patch: [16, 16, 16], samples: 1, lr: 0.01 }
segment lesion = predict_mask(fit, test)
features rad = pyradiomics(test.image, lesion) { bin_width: 25, classes: [firstorder] }
model clf = logistic(rad, target: test.outcome) { C: 1.0 }
validate v = evaluate(clf) { cv: stratified_kfold(3), metrics: [auc, brier], bootstrap: 10 }
"""


def _tree(out: Path) -> dict[str, bytes]:
    """Every output file but the run manifest (it records timings) and the cache; the output folder's own path (the
    training metrics name the checkpoint file) written as OUT."""
    return {str(p.relative_to(out)): p.read_bytes().replace(str(out).encode(), b"OUT") for p in sorted(out.rglob("*"))
            if p.is_file() and p.name != "run.json" and ".cache" not in p.relative_to(out).parts}


@pytest.mark.parametrize("text, expect", [(PHANTOM, ["features/rad.csv", "metrics/v.json", "predictions/v.csv"]),
                                          (NETWORK, ["models/fit.pt", "features/rad.csv", "metrics/v.json"])],
                         ids=["phantom", "network"])
def test_dask_writes_the_bytes_of_the_local_pool(tmp_path, monkeypatch, text, expect):
    from radlang.backends.executor import run_study
    from radlang.backends.executors.dask import DaskExecutor
    from radlang.ops import evaluation_run as evaluate
    from radlang.compiler import compile_file

    spec = tmp_path / "s.rad"
    spec.write_text(textwrap.dedent(text))
    res = compile_file(spec)
    assert res.ok, [d.message for d in res.diagnostics]
    # fold fits go to the executor too, however quick they are
    monkeypatch.setattr(evaluate, "POOL_START_S", -1.0)
    monkeypatch.setattr(evaluate, "POOL_STARTED_S", -1.0)
    functions = []
    dask_map = DaskExecutor.map

    def counting_map(self, fn, items, weights=None):
        functions.append(fn.args[0].__name__ if isinstance(fn, functools.partial) else fn.__name__)   # map_quick's runs
        return dask_map(self, fn, items, weights)

    monkeypatch.setattr(DaskExecutor, "map", counting_map)
    run_study(res.study, out=tmp_path / "local", workers=2, quiet=True)
    ctx = run_study(res.study, out=tmp_path / "dask", workers=2, quiet=True, executor="dask")
    assert ctx.executor._cluster is None and ctx.executor._client is None        # closed with the run
    assert {"check_case", "extract_case", "run_fold"} <= set(functions)
    local, dask = _tree(tmp_path / "local"), _tree(tmp_path / "dask")
    assert set(expect) <= set(local)
    assert local.keys() == dask.keys()
    assert [k for k in local if local[k] != dask[k]] == []
