"""Benchmark: `radlang run --executor dask` (a LocalCluster of --workers processes on 127.0.0.1) against the local
process pool (the default executor), side by side on the same cold extraction.

    .venv/bin/python benchmarks/bench_dask.py [--cases 24] [--workers 2] [--repeats 1] [--keep DIR]

A phantom cohort (written once, NIfTI, 40^3 voxels) and the feature stage of bench_extraction.py (Original +
LoG(1, 3 mm) + Wavelet, all seven feature classes, bin width 25). Each run starts from an empty output folder (cold
cache); the two executors alternate, --repeats times each. Ratio = Dask wall / local wall, medians (target <= 1.15);
also the ratio of each (local, dask) pair run back to back, whose spread shows how much other load on the machine
moves the figure.
Also CPU seconds (user + system) of each run's whole process tree, less sensitive than wall time to other load on
the machine.
The feature tables of the two must be byte-identical. Also timed alone: starting and closing the LocalCluster,
the fixed cost the Dask run pays on top of the extraction.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_extraction import BIN, ROOT, make_cohort, spec, timed


def cluster_start_stop(workers: int) -> float:
    """Seconds to start a LocalCluster as the Dask executor does, run one task on it, and close it."""
    sys.path.insert(0, str(ROOT))
    from radlang.backends.executors.dask import DaskExecutor

    t0 = time.perf_counter()
    ex = DaskExecutor(workers=workers)
    try:
        assert dict(ex.map(abs, [-1])) == {0: 1}
    finally:
        ex.close()
    return time.perf_counter() - t0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=24)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--keep", default=None, help="work folder to keep (default: a temporary one)")
    a = ap.parse_args(argv)
    work = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="radlang-bench-dask-"))
    work.mkdir(parents=True, exist_ok=True)
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else ["?"]
    print(f"work folder: {work}; {a.cases} cases of 40^3 voxels; {a.workers} workers; CPUs: {os.cpu_count()}; "
          f"load average {' '.join(load)}")
    import compileall

    compileall.compile_dir(str(ROOT / "radlang"), quiet=1)
    rad = work / "extract.rad"
    rad.write_text(spec(make_cohort(work / "data", a.cases)))
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    walls: dict[str, list[float]] = {"local": [], "dask": []}
    cpus: dict[str, list[float]] = {"local": [], "dask": []}
    for _ in range(a.repeats):
        for executor, runs in walls.items():
            out = work / f"run_{executor}"
            shutil.rmtree(out, ignore_errors=True)
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            wall, _ = timed([str(BIN / "radlang"), "run", str(rad), "--out", str(out), "--workers", str(a.workers),
                             "--executor", executor, "--quiet"], env=env)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)      # the run and every worker it reaped
            runs.append(wall)
            cpus[executor].append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    same = (work / "run_local" / "features" / "rad.csv").read_bytes() == (work / "run_dask" / "features" / "rad.csv").read_bytes()
    start = cluster_start_stop(a.workers)
    local, dask = statistics.median(walls["local"]), statistics.median(walls["dask"])
    print(f"\ncold extraction, {a.cases} cases, Original+LoG(1,3)+Wavelet, {a.workers} workers, {a.repeats} run(s) each")
    for name, ws in walls.items():
        print(f"   --executor {name:5}: {statistics.median(ws):7.1f} s wall {[round(w, 1) for w in ws]}, "
              f"{statistics.median(cpus[name]):6.1f} s CPU {[round(c, 1) for c in cpus[name]]}")
    pairs = sorted(d / lo for d, lo in zip(walls["dask"], walls["local"]))
    print(f"   ratio dask/local = {dask / local:.2f} wall (target <= 1.15), "
          f"{statistics.median(cpus['dask']) / statistics.median(cpus['local']):.2f} CPU; "
          f"feature tables byte-identical: {same}")
    print(f"   ratio of each interleaved pair: median {statistics.median(pairs):.2f}, "
          f"from {pairs[0]:.2f} to {pairs[-1]:.2f} {[round(r, 2) for r in pairs]}")
    print(f"   LocalCluster start + one task + close, alone: {start:.1f} s")
    if not same:
        raise SystemExit("the two executors wrote different feature tables")


if __name__ == "__main__":
    main()
