"""Benchmark: `radlang run` feature extraction against the PyRadiomics command line, side by side, on the same files.

    .venv/bin/python benchmarks/bench_extraction.py [--cases 24] [--workers 2] [--memory-cases 96] [--sections 1,2,3,4]
                                                     [--repeats 3] [--keep DIR]

1. Cold extraction. A phantom cohort (written once, NIfTI), Original + LoG(1, 3 mm) + Wavelet, bin width 25:
   `pyradiomics batch.csv -p params.yaml -j W` vs `radlang run bench.rad --workers W` with the same settings.
   Interleaved, --repeats times each. Ratio = radlang wall time / CLI wall time, medians (target <= 0.8).
2. Merging. The same features written as two radlang stages (Original+LoG, and Wavelet), which the compiler merges
   into one PyRadiomics pass, vs the CLI run twice (once per parameter file).
3. Warm re-run after changing only a downstream stage, at --cases and at --memory-cases cases: the study extracts the
   features and validates a model on them (`variance` selection -> `logistic` -> `evaluate`, the defaults: 5-fold CV,
   1000 bootstrap resamples, plots). The cold run starts from an empty output folder; each warm run changes only the
   selection's `min` (a new value each time, so the evaluation is never a cache hit) and must recompute the evaluation:
   the benchmark checks that metrics/v.json changes and that every case came from the cache. Ratio = warm wall / cold
   wall, medians of --repeats runs (target <= 5%); also shown without the evaluate stage's own time (from run.json),
   i.e. what the warm run costs besides the work that really changed.
4. Peak memory (RSS of the whole process tree, sampled from /proc) of `radlang run` for --memory-cases vs --cases
   (target <= 1.2x).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
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


def spec(manifest: Path, merged: bool = False, downstream_min: float | None = None) -> str:
    """The study: one feature stage (or, merged, two), and with `downstream_min` a validated model on the features."""
    head = f'study "bench" {{ seed: 1 }}\ncohort c = manifest("{manifest}") {{ mask: mask, outcome: malignant as binary }}\n'
    common = "bin_width: 25, classes: [firstorder, shape, glcm, glrlm, glszm, gldm, ngtdm]"
    if merged:
        body = (f"features a = pyradiomics(c.image, c.mask) {{ {common}, filters: [original, log(sigma: [1mm, 3mm])] }}\n"
                f"features b = pyradiomics(c.image, c.mask) {{ {common}, filters: [wavelet] }}\n")
    else:
        body = f"features rad = pyradiomics(c.image, c.mask) {{ {common}, filters: [original, log(sigma: [1mm, 3mm]), wavelet] }}\n"
    if downstream_min is not None:
        # a selection alone feeds no output and would be pruned: the evaluation makes it (and its change) run
        body += (f"select keep = variance(rad) {{ min: {downstream_min} }}\n"
                 "model clf = logistic(keep, target: c.outcome)\n"
                 "validate v = evaluate(clf)\n")
    return head + body


def variance_cuts(features_csv: Path, n: int) -> list[str]:
    """n `min` values for the variance selection, each keeping a different share of the features (20%, 30%, ...
    of them at or below it on the whole cohort), written as plain decimals."""
    import pandas as pd

    var = sorted(pd.read_csv(features_csv, index_col=0).var(ddof=0))
    cuts = [var[int(len(var) * (0.2 + 0.1 * (i % 6)))] for i in range(n)]
    out = [f"{c:.6f}".rstrip("0").rstrip(".") for c in cuts]
    if len(set(out)) < len(out) or "0" in out:
        raise SystemExit(f"the features' variances give no {n} distinct positive thresholds: {out}")
    return out


def median_range(xs: list[float]) -> str:
    return f"{statistics.median(xs):6.2f}" + (f" [{min(xs):.2f}-{max(xs):.2f}]" if len(xs) > 1 else "")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=24)
    ap.add_argument("--memory-cases", type=int, default=96, help="the larger cohort of sections 3 and 4 (0 = skip it)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--sections", default="1,2,3,4", help="comma-separated sections to run (default: all)")
    ap.add_argument("--repeats", type=int, default=3, help="runs of each side in section 1; cold and warm runs per cohort size in section 3")
    ap.add_argument("--keep", default=None, help="work folder to keep (default: a temporary one)")
    a = ap.parse_args(argv)
    sections = {int(s) for s in a.sections.split(",") if s.strip()}
    if not sections <= {1, 2, 3, 4}:
        ap.error(f"--sections: choose among 1,2,3,4, not {a.sections}")
    work = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="radlang-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    w = str(a.workers)
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else ["?"]
    print(f"work folder: {work}; {a.cases} cases of 40^3 voxels; {a.workers} workers; CPUs: {os.cpu_count()}; "
          f"load average {' '.join(load)}")
    # as an installed wheel is (see bench_check.py): under PYTHONDONTWRITEBYTECODE=1 every run would recompile radlang
    import compileall

    compileall.compile_dir(str(ROOT / "radlang"), quiet=1)

    sizes = [a.cases] + ([a.memory_cases] if a.memory_cases else [])
    manifests = {n: make_cohort(work / f"data_{n}", n) for n in sizes}
    manifest = manifests[a.cases]
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

    def run(rad: Path, out: Path):
        return timed(radlang + ["run", str(rad), "--out", str(out), "--workers", w, "--quiet"], env=env)

    extraction: dict[int, tuple[float, int]] = {}

    def cold_extraction(n: int) -> tuple[float, int]:
        """(wall, peak RSS) of a cold `radlang run` extracting the features only, into run_<n>."""
        if n not in extraction:
            (work / f"extract_{n}.rad").write_text(spec(manifests[n]))
            shutil.rmtree(work / f"run_{n}", ignore_errors=True)
            extraction[n] = run(work / f"extract_{n}.rad", work / f"run_{n}")
        return extraction[n]

    if 1 in sections:
        walls: dict[str, list[float]] = {"cli": [], "radlang": []}
        for i in range(a.repeats):          # interleaved, the order alternating: both see the same load
            for who in (("cli", "radlang") if i % 2 == 0 else ("radlang", "cli")):
                if who == "cli":
                    (work / "cli.csv").unlink(missing_ok=True)
                    walls["cli"].append(timed(cli + [str(work / "batch.csv"), "-p", str(work / "params.yaml"), "-j", w,
                                                     "-o", str(work / "cli.csv"), "-f", "csv"], env=env)[0])
                else:
                    extraction.pop(a.cases, None)
                    walls["radlang"].append(cold_extraction(a.cases)[0])
        t_cli, t_rad = statistics.median(walls["cli"]), statistics.median(walls["radlang"])
        pairs = sorted(r / c for r, c in zip(walls["radlang"], walls["cli"]))
        print(f"\n1. cold extraction, {a.cases} cases, Original+LoG(1,3)+Wavelet; median [min-max] of {a.repeats} "
              "interleaved run(s)")
        print(f"   pyradiomics CLI -j {w}: {median_range(walls['cli'])} s")
        print(f"   radlang run       : {median_range(walls['radlang'])} s   ratio radlang/CLI = {t_rad / t_cli:.2f} "
              f"(ratio of medians; each pair {statistics.median(pairs):.2f} [{pairs[0]:.2f}-{pairs[-1]:.2f}])")

        # same numbers?
        import pandas as pd

        ours = pd.read_csv(work / f"run_{a.cases}" / "features" / "rad.csv", index_col=0, float_precision="round_trip")
        theirs = pd.read_csv(work / "cli.csv")
        by_image = {str(manifest.parent / r["image"]): r["case_id"] for r in rows}
        theirs.index = [by_image[p] for p in theirs["Image"]]
        common = [c for c in ours.columns if c in theirs.columns]
        rel = ((ours[common] - theirs.loc[ours.index, common].astype(float)).abs() / ours[common].abs().clip(lower=1e-12)).max().max()
        print(f"   same features as the CLI: {len(common)} columns x {len(ours)} cases, max relative difference = {rel:.1e}")

    if 2 in sections:
        t_cli_a, _ = timed(cli + [str(work / "batch.csv"), "-p", str(work / "params_a.yaml"), "-j", w, "-o", str(work / "cli_a.csv"), "-f", "csv"], env=env)
        t_cli_b, _ = timed(cli + [str(work / "batch.csv"), "-p", str(work / "params_b.yaml"), "-j", w, "-o", str(work / "cli_b.csv"), "-f", "csv"], env=env)
        (work / "two.rad").write_text(spec(manifest, merged=True))
        shutil.rmtree(work / "run_two", ignore_errors=True)
        t_two, _ = run(work / "two.rad", work / "run_two")
        print("\n2. two feature stages (Original+LoG; Wavelet) merged into one PyRadiomics pass")
        print(f"   pyradiomics CLI, two parameter files: {t_cli_a + t_cli_b:7.1f} s")
        print(f"   radlang run (merged)                : {t_two:7.1f} s   ratio = {t_two / (t_cli_a + t_cli_b):.2f}")

    if 3 in sections:
        table = []
        for n in sizes:
            rad, out = work / f"study_{n}.rad", work / f"study_{n}"
            colds = []
            for _ in range(a.repeats):
                rad.write_text(spec(manifests[n], downstream_min=0.0))
                shutil.rmtree(out, ignore_errors=True)
                colds.append(run(rad, out)[0])
            metrics = out / "metrics" / "v.json"
            warms, own = [], []
            for cut in variance_cuts(out / "features" / "rad.csv", a.repeats):
                before = metrics.read_bytes()
                rad.write_text(spec(manifests[n], downstream_min=cut))
                warms.append(run(rad, out)[0])
                manifest_json = json.loads((out / "run.json").read_text())
                cache = manifest_json["cache"]
                if metrics.read_bytes() == before or cache != {"hits": n, "misses": 1}:
                    raise SystemExit(f"the warm run (variance min {cut}) did not recompute only the evaluation: "
                                     f"metrics changed: {metrics.read_bytes() != before}, cache {cache}")
                own.append(next(s["seconds"] for s in manifest_json["stages"] if s["name"] == "v"))
            table.append((n, colds, warms, [x - o for x, o in zip(warms, own)], own))
        print(f"\n3. warm re-run after changing only a downstream stage (variance min -> logistic -> evaluate); "
              f"median [min-max] of {a.repeats} run(s), seconds")
        print(f"   {'cases':>5}  {'cold':>19}  {'warm':>19}  {'warm/cold':>9}  {'evaluate stage':>19}  "
              f"{'warm w/o evaluate':>19}  {'/cold':>6}")
        for n, colds, warms, rest, own in table:
            c = statistics.median(colds)
            print(f"   {n:>5}  {median_range(colds):>19}  {median_range(warms):>19}  {statistics.median(warms) / c:9.3f}  "
                  f"{median_range(own):>19}  {median_range(rest):>19}  {statistics.median(rest) / c:6.3f}")

    if 4 in sections and a.memory_cases:
        t_small, mem_small = cold_extraction(a.cases)
        t_big, mem_big = cold_extraction(a.memory_cases)
        print("\n4. peak memory (RSS of radlang and its workers), cold extraction")
        print(f"   {a.cases:>4} cases: {mem_small / 2**20:7.0f} MiB ({t_small:.1f} s)")
        print(f"   {a.memory_cases:>4} cases: {mem_big / 2**20:7.0f} MiB ({t_big:.1f} s)   ratio = {mem_big / mem_small:.2f}")
    if not a.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
