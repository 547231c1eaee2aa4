"""Benchmark: `radlang report` on the quickstart's finished run (target: <= 2 s, with no recomputation).

Runs examples/quickstart.rad once into a temporary out folder, then times `radlang report OUT` as a whole process
(interpreter start included), best of N. The report only reads what the run wrote (manifest.json, run.json,
metrics, PNGs); `--out` reuses a finished run instead of running the study.

    .venv/bin/python benchmarks/bench_report.py [--runs 5] [--out runs/quickstart]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cli(*args, cwd=ROOT) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "radlang", *map(str, args)], cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"radlang {' '.join(map(str, args))} failed:\n{proc.stderr[-2000:]}")
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out", default=None, help="a finished run of the quickstart (default: run it now)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        out = Path(a.out) if a.out else Path(d) / "quickstart"
        if not a.out:
            print(f"radlang run examples/quickstart.rad: {cli('run', ROOT / 'examples' / 'quickstart.rad', '--out', out, '--quiet'):.1f} s")
        times = [cli("report", out, "-o", Path(d) / "report.html") for _ in range(a.runs)]
        size = (Path(d) / "report.html").stat().st_size
    print(f"radlang report: best {min(times):.3f} s, median {sorted(times)[len(times) // 2]:.3f} s over {a.runs} runs "
          f"({size / 1e6:.2f} MB); target <= 2 s: {'ok' if min(times) <= 2 else 'MISSED'}")


if __name__ == "__main__":
    main()
