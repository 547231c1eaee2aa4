"""Benchmark: the rendered script against `radlang run` (the anchor), on the same study, side by side.

For each study: `radlang render` (time to write the script), then `radlang run --out A` and
`python study.py --out B` as whole processes (cold: no cache), best of N alternating runs, and a
byte-for-byte comparison of every metrics / predictions / features file the two wrote.

    .venv/bin/python benchmarks/bench_render.py [--runs 2] [--workers 2]

Expectation: script / run ~ 1 for studies whose time is in the folds and the extraction (the script
runs cases serially, `radlang run` in a process pool, so with several cores the script is slower on
image studies); identical outputs always.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
STUDIES = [ROOT / "examples" / "breast_cancer.rad", ROOT / "tests" / "render" / "specs" / "phantom_radiomics.rad"]


def timed(cmd, cwd) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed:\n{proc.stderr[-2000:]}")
    return time.perf_counter() - t0


def outputs(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.suffix in (".csv", ".json") and p.name != "run.json" and ".cache" not in p.parts}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    print(f"{'study':28} {'render s':>9} {'run s':>8} {'script s':>9} {'script/run':>11}  identical outputs")
    for spec in STUDIES:
        with tempfile.TemporaryDirectory() as d:
            d = Path(d)
            script = d / "study.py"
            t_render = timed([BIN / "radlang", "render", spec, "-o", script], ROOT)
            runs, scripts = [], []
            for i in range(a.runs):
                runs.append(timed([BIN / "radlang", "run", spec, "--out", d / f"run{i}", "--quiet", "--workers", str(a.workers)], ROOT))
                scripts.append(timed([sys.executable, script, "--out", d / f"script{i}"], d))
            ra, sa = outputs(d / "run0"), outputs(d / "script0")
            same = bool(ra) and ra == sa
            print(f"{spec.stem:28} {t_render:9.2f} {min(runs):8.2f} {min(scripts):9.2f} {min(scripts) / min(runs):11.2f}  "
                  f"{same} ({len(ra)} files)")


if __name__ == "__main__":
    main()
