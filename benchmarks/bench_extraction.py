"""Benchmark: `radlang run` feature extraction against the PyRadiomics command line, side by side, on the same files.

    .venv/bin/python benchmarks/bench_extraction.py [--cases 24] [--workers 2] [--memory-cases 96] [--keep DIR]

1. Cold extraction. A phantom cohort (written once, NIfTI), Original + LoG(1, 3 mm) + Wavelet, bin width 25:
   `pyradiomics batch.csv -p params.yaml -j W` vs `radlang run bench.rad --workers W` with the same settings.
   Ratio = radlang wall time / CLI wall time (target <= 1.0).
2. Merging. The same features written as two radlang stages (Original+LoG, and Wavelet), which the compiler merges
   into one PyRadiomics pass, vs the CLI run twice (once per parameter file).
3. Warm re-run after changing only a downstream stage (a `variance` selection): radlang wall / cold wall (target <= 5%).
4. Peak memory (RSS of the whole process tree, sampled from /proc) of `radlang run` for --memory-cases vs --cases
   (target <= 1.2x).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def tree_rss(pid: int) -> int:
    """Resident memory (bytes) of a process and all its descendants, from /proc."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
            for t in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{t}/children") as fh:
                    todo += [int(c) for c in fh.read().split()]
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return total


def timed(cmd, cwd=None, env=None) -> tuple[float, int]:
    """Run a command; return (wall seconds, peak tree RSS bytes). Fails loudly on a non-zero exit."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = [0]

    def sample():
        while proc.poll() is None:
            peak[0] = max(peak[0], tree_rss(proc.pid))
            time.sleep(0.05)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    _, err = proc.communicate()
    wall = time.perf_counter() - t0
    th.join()
    if proc.returncode != 0:
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(map(str, cmd))}\n{err[-3000:]}")
    return wall, peak[0]


def make_cohort(folder: Path, cases: int, seed: int = 7) -> Path:
    sys.path.insert(0, str(ROOT))
    from radlang.ops.cohorts import make_phantom

    params = {"cases": cases, "effect": 1.0, "sites": 2, "site_shift": 0.0, "noise": 8.0, "size": [40, 40, 40], "spacing": [1.0, 1.0, 1.0]}
    return Path(make_phantom(params, seed, str(folder), "b"))


PARAMS = """setting:
  binWidth: 25
  label: 1
imageType:
{types}
featureClass:
  firstorder: []
  shape: []
  glcm: []
  glrlm: []
  glszm: []
  gldm: []
  ngtdm: []
"""
ALL_TYPES = "  Original: {}\n  LoG:\n    sigma: [1.0, 3.0]\n  Wavelet: {}\n"


def spec(manifest: Path, merged: bool, downstream_min: float | None = None) -> str:
    head = f'study "bench" {{ seed: 1 }}\ncohort c = manifest("{manifest}") {{ mask: mask, outcome: malignant as binary }}\n'
    common = "bin_width: 25, classes: [firstorder, shape, glcm, glrlm, glszm, gldm, ngtdm]"
    if merged:
        body = (f"features a = pyradiomics(c.image, c.mask) {{ {common}, filters: [original, log(sigma: [1mm, 3mm])] }}\n"
                f"features b = pyradiomics(c.image, c.mask) {{ {common}, filters: [wavelet] }}\n")
    else:
        body = f"features rad = pyradiomics(c.image, c.mask) {{ {common}, filters: [original, log(sigma: [1mm, 3mm]), wavelet] }}\n"
    if downstream_min is not None:
        body += f"select keep = variance(rad) {{ min: {downstream_min} }}\n"
    return head + body


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=24)
    ap.add_argument("--memory-cases", type=int, default=96, help="cases for the memory comparison (0 = skip)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--keep", default=None, help="work folder to keep (default: a temporary one)")
    a = ap.parse_args(argv)
    work = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="radlang-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    w = str(a.workers)
    print(f"work folder: {work}; {a.cases} cases of 40^3 voxels; {a.workers} workers; CPUs: {os.cpu_count()}")

    manifest = make_cohort(work / "data", a.cases)
    import csv

    with open(manifest) as fh:
        rows = list(csv.DictReader(fh))
    with open(work / "batch.csv", "w") as fh:
        fh.write("Image,Mask\n")
        fh.writelines(f"{manifest.parent / r['image']},{manifest.parent / r['mask']}\n" for r in rows)
    (work / "params.yaml").write_text(PARAMS.format(types=ALL_TYPES))
    (work / "params_a.yaml").write_text(PARAMS.format(types="  Original: {}\n  LoG:\n    sigma: [1.0, 3.0]\n"))
    (work / "params_b.yaml").write_text(PARAMS.format(types="  Wavelet: {}\n"))

    cli = [str(BIN / "pyradiomics")]
    for old in work.glob("cli*.csv"):          # the CLI appends to an existing output file
        old.unlink()
    radlang = [str(BIN / "radlang")]

    # 1. cold extraction, one stage
    t_cli, _ = timed(cli + [str(work / "batch.csv"), "-p", str(work / "params.yaml"), "-j", w, "-o", str(work / "cli.csv"), "-f", "csv"], env=env)
    (work / "one.rad").write_text(spec(manifest, merged=False, downstream_min=0.0))
    shutil.rmtree(work / "run_one", ignore_errors=True)
    t_rad, mem_small = timed(radlang + ["run", str(work / "one.rad"), "--out", str(work / "run_one"), "--workers", w, "--quiet"], env=env)
    print(f"\n1. cold extraction, {a.cases} cases, Original+LoG(1,3)+Wavelet")
    print(f"   pyradiomics CLI -j {w}: {t_cli:7.1f} s")
    print(f"   radlang run       : {t_rad:7.1f} s   ratio radlang/CLI = {t_rad / t_cli:.2f}")

    # same numbers?
    import pandas as pd

    ours = pd.read_csv(work / "run_one" / "features" / "rad.csv", index_col=0, float_precision="round_trip")
    theirs = pd.read_csv(work / "cli.csv")
    by_image = {str(manifest.parent / r["image"]): r["case_id"] for r in rows}
    theirs.index = [by_image[p] for p in theirs["Image"]]
    common = [c for c in ours.columns if c in theirs.columns]
    rel = ((ours[common] - theirs.loc[ours.index, common].astype(float)).abs() / ours[common].abs().clip(lower=1e-12)).max().max()
    print(f"   same features as the CLI: {len(common)} columns x {len(ours)} cases, max relative difference = {rel:.1e}")

    # 2. merging: two stages, one pass, vs the CLI twice
    t_cli_a, _ = timed(cli + [str(work / "batch.csv"), "-p", str(work / "params_a.yaml"), "-j", w, "-o", str(work / "cli_a.csv"), "-f", "csv"], env=env)
    t_cli_b, _ = timed(cli + [str(work / "batch.csv"), "-p", str(work / "params_b.yaml"), "-j", w, "-o", str(work / "cli_b.csv"), "-f", "csv"], env=env)
    (work / "two.rad").write_text(spec(manifest, merged=True))
    shutil.rmtree(work / "run_two", ignore_errors=True)
    t_two, _ = timed(radlang + ["run", str(work / "two.rad"), "--out", str(work / "run_two"), "--workers", w, "--quiet"], env=env)
    print("\n2. two feature stages (Original+LoG; Wavelet) merged into one PyRadiomics pass")
    print(f"   pyradiomics CLI, two parameter files: {t_cli_a + t_cli_b:7.1f} s")
    print(f"   radlang run (merged)                : {t_two:7.1f} s   ratio = {t_two / (t_cli_a + t_cli_b):.2f}")

    # 3. warm re-run after changing only the downstream selection
    (work / "one.rad").write_text(spec(manifest, merged=False, downstream_min=0.5))
    t_warm, _ = timed(radlang + ["run", str(work / "one.rad"), "--out", str(work / "run_one"), "--workers", w, "--quiet"], env=env)
    print("\n3. warm re-run after changing only a downstream stage")
    print(f"   cold {t_rad:.1f} s, warm {t_warm:.1f} s   ratio = {t_warm / t_rad:.3f}")

    # 4. peak memory, more cases
    if a.memory_cases:
        big = make_cohort(work / "data_big", a.memory_cases)
        (work / "big.rad").write_text(spec(big, merged=False, downstream_min=0.0))
        shutil.rmtree(work / "run_big", ignore_errors=True)
        t_big, mem_big = timed(radlang + ["run", str(work / "big.rad"), "--out", str(work / "run_big"), "--workers", w, "--quiet"], env=env)
        print("\n4. peak memory (RSS of radlang and its workers)")
        print(f"   {a.cases:>4} cases: {mem_small / 2**20:7.0f} MiB ({t_rad:.1f} s)")
        print(f"   {a.memory_cases:>4} cases: {mem_big / 2**20:7.0f} MiB ({t_big:.1f} s)   ratio = {mem_big / mem_small:.2f}")
        (work / "big.rad").write_text(spec(big, merged=False, downstream_min=0.5))
        t_big_warm, _ = timed(radlang + ["run", str(work / "big.rad"), "--out", str(work / "run_big"), "--workers", w, "--quiet"], env=env)
        print(f"   warm re-run at {a.memory_cases} cases after a downstream change: {t_big_warm:.1f} s   ratio = {t_big_warm / t_big:.3f}")
    if not a.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
