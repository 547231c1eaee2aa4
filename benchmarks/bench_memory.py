"""Benchmark: the parent process's peak memory as the cohort grows, 100 against 1,000 tiny phantom cases through
extraction and cross-validation, in one run, side by side.

    .venv/bin/python benchmarks/bench_memory.py [--small 100] [--large 1000] [--workers 2]

The peak resident set of `radlang run`'s own process (not its workers) is read with getrusage(RUSAGE_SELF) at
the end of an in-process CLI call. Target (issue 10): large / small <= 1.2.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SPEC = """
study "bench: memory" {{ seed: 1 }}
cohort c = phantom({n}) {{ size: [16, 16, 16], effect: 1.0 }}
features rad = pyradiomics(c.image, c.mask) {{ bin_width: 25, classes: [firstorder] }}
select keep = variance(rad)
model clf = logistic(keep, target: c.outcome)
validate v = evaluate(clf) {{ cv: stratified_kfold(3), bootstrap: 0, metrics: [auc] }}
"""

LAUNCH = ("import resource, sys\nfrom radlang.cli import main\nrc = main(sys.argv[1:])\n"
          "print('peak-rss-kib', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\nsys.exit(rc)")


def peak(n: int, folder: Path, workers: int) -> tuple[int, float]:
    spec = folder / f"m{n}.rad"
    spec.write_text(SPEC.format(n=n))
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", LAUNCH, "run", str(spec), "--out", str(folder / f"out{n}"), "--workers", str(workers),
                        "--quiet"], capture_output=True, text=True, check=False)
    if r.returncode != 0:
        sys.exit(f"radlang run failed for {n} cases:\n{r.stderr[-2000:]}")
    kib = next(int(line.split()[1]) for line in r.stderr.splitlines() if line.startswith("peak-rss-kib"))
    return kib, time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--small", type=int, default=100)
    ap.add_argument("--large", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        small, ts = peak(a.small, Path(tmp), a.workers)
        large, tl = peak(a.large, Path(tmp), a.workers)
    print(f"peak RSS of the radlang process, 16^3 phantoms, firstorder features, 3-fold CV, {a.workers} workers")
    print(f"  {a.small:>5} cases: {small / 1024:7.1f} MiB  ({ts:.1f} s)")
    print(f"  {a.large:>5} cases: {large / 1024:7.1f} MiB  ({tl:.1f} s)")
    print(f"  ratio {a.large} / {a.small} = {large / small:.2f}  (target <= 1.2)")


if __name__ == "__main__":
    main()
