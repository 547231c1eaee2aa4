"""Benchmark: what verifying the cache costs a fully warm re-run.

    .venv/bin/python benchmarks/bench_cache.py [--cases 24] [--workers 2] [--repeats 15] [--wavelet] [--keep DIR]

A phantom cohort (NIfTI, 40^3 voxels) and a study that extracts PyRadiomics features (Original [+ Wavelet], every
feature class, bin width 25) and validates a model on them (`variance` -> `logistic` -> `evaluate`: 5-fold CV, 1000
bootstrap resamples, plots). One cold `radlang run` fills the cache. Then, side by side in one process, the verified
read path (every entry and blob checked against its SHA-256, the default) against the unverified one
(`Cache.verify = False`, which exists for this measurement), alternating, --repeats times each after a warm-up:

1. the read path alone: `Cache.get` of every entry the warm run reads (decoding included);
2. whole warm re-runs (`run_study`, every stage a cache hit; checked);
3. for scale, a warm `radlang run` in a fresh process (imports included), as a user runs it.

Printed: medians [ranges], the ratios verified/unverified, and what verification adds to the fresh-process warm
re-run: (verified - unverified read path) / warm wall (target <= 5%). Whole in-process warm runs take tens of
milliseconds, so on a loaded machine their ratio is dominated by noise; the read-path difference is the cost itself.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def make_cohort(folder: Path, cases: int, seed: int = 7) -> Path:
    from radlang.ops.cohorts import make_phantom

    params = {"cases": cases, "effect": 1.0, "sites": 2, "site_shift": 0.0, "noise": 8.0, "size": [40, 40, 40], "spacing": [1.0, 1.0, 1.0]}
    return Path(make_phantom(params, seed, str(folder), "b"))


def spec(manifest: Path, wavelet: bool) -> str:
    filters = "[original, wavelet]" if wavelet else "[original]"
    return (f'study "bench" {{ seed: 1 }}\n'
            f'cohort c = manifest("{manifest}") {{ mask: mask, outcome: malignant as binary }}\n'
            f"features rad = pyradiomics(c.image, c.mask) {{ bin_width: 25, filters: {filters}, "
            "classes: [firstorder, shape, glcm, glrlm, glszm, gldm, ngtdm] }\n"
            "select keep = variance(rad) { min: 0.0 }\n"
            "model clf = logistic(keep, target: c.outcome)\n"
            "validate v = evaluate(clf)\n")


def median_range(xs: list[float]) -> str:
    return f"{statistics.median(xs):7.3f} s [{min(xs):.3f}-{max(xs):.3f}]"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=24)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=15, help="measurements per read path")
    ap.add_argument("--wavelet", action="store_true", help="also the 8 wavelet bands (larger cache entries, slower cold run)")
    ap.add_argument("--keep", default=None, help="work folder to keep (default: a temporary one)")
    a = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    work = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="radlang-bench-cache-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else ["?"]
    print(f"work folder: {work}; {a.cases} cases of 40^3 voxels; {a.workers} workers; CPUs: {os.cpu_count()}; "
          f"load average {' '.join(load)}")

    rad = work / "bench.rad"
    rad.write_text(spec(make_cohort(work / "data", a.cases), a.wavelet))
    out = work / "run"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "radlang", "run", str(rad), "--out", str(out), "--workers", str(a.workers), "--quiet"]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT)
    cold = time.perf_counter() - t0

    from radlang.backends.cache import Cache
    from radlang.backends.executor import run_study
    from radlang.compiler import compile_file

    study = compile_file(rad).study
    entries = [p for p in (out / ".cache").rglob("*") if p.is_file() and p.name != "file-hashes.json"]
    size = sum(p.stat().st_size for p in entries)

    def warm(verify: bool) -> float:
        Cache.verify = verify
        t = time.perf_counter()
        ctx = run_study(study, out=out, workers=a.workers, quiet=True)
        wall = time.perf_counter() - t
        if ctx.cache.misses or ctx.warnings and any(w.startswith("W67") for w in ctx.warnings):
            raise SystemExit(f"a warm run was not all verified hits: {ctx.cache.hits} hits, {ctx.cache.misses} misses, {ctx.warnings}")
        return wall

    keys = [p.stem for p in (out / ".cache").glob("??/*.json") if p.name != "file-hashes.json"]

    def read_all(verify: bool) -> float:
        Cache.verify = verify
        cache = Cache(out / ".cache")
        t = time.perf_counter()
        for k in keys:
            cache.get(k)
        wall = time.perf_counter() - t
        if cache.misses or cache.warnings:
            raise SystemExit(f"an entry did not read back: {cache.misses} misses, {cache.warnings}")
        return wall

    def side_by_side(fn) -> dict[bool, list[float]]:
        fn(True)                                       # imports, page cache: not counted
        times: dict[bool, list[float]] = {True: [], False: []}
        for i in range(a.repeats):
            for verify in ((True, False) if i % 2 == 0 else (False, True)):
                times[verify].append(fn(verify))
        Cache.verify = True
        return times

    reads = side_by_side(read_all)
    runs = side_by_side(warm)
    fresh = []
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, cwd=ROOT)
        fresh.append(time.perf_counter() - t0)

    print(f"\ncold `radlang run`: {cold:.1f} s; cache: {len(keys)} entries, {len(entries)} files, {size / 1e6:.2f} MB")
    for title, times in ((f"1. read path ({len(keys)} entries)", reads), ("2. warm re-run in one process", runs)):
        v, u = statistics.median(times[True]), statistics.median(times[False])
        print(f"{title}, {a.repeats} each, medians [range]:")
        print(f"   verified   : {median_range(times[True])}")
        print(f"   unverified : {median_range(times[False])}")
        print(f"   ratio verified/unverified = {v / u:.3f}")
    extra = statistics.median(reads[True]) - statistics.median(reads[False])
    w = statistics.median(fresh)
    print(f"3. warm `radlang run` in a fresh process (verified), median of 3: {w:.3f} s")
    print(f"verification adds {1000 * extra:.2f} ms = {100 * extra / w:.2f}% of the fully warm re-run (target <= 5%)")


if __name__ == "__main__":
    main()
