"""Benchmark: how fast `radlang check` starts and how it scales.

    .venv/bin/python benchmarks/bench_check.py [--runs 5] [--statements 2000]

1. Cold process: `radlang check` on each example vs `python -c "import torch"`, interleaved in the
   same run (median wall time of --runs each; CPU time too, which a busy machine disturbs less).
   Target: check <= 0.2x the torch import.
2. `python -X importtime` evidence that check imports none of torch, monai, radiomics, shap, sklearn
   (nor the rest of the science stack), and where its import time goes.
Before timing, radlang's modules are byte-compiled, as `pip install` does for a wheel.
3. A generated spec of 2,000 statements: checked in-process (compile with every pass) and by a cold
   `radlang check` process, which also checks the ~500 manifests it names (40 rows each). Target: <= 1.5 s.
"""

from __future__ import annotations

import argparse
import gc
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
HEAVY = ("torch", "monai", "radiomics", "shap", "sklearn")
SCIENCE = HEAVY + ("SimpleITK", "pandas", "numpy", "scipy", "matplotlib", "lifelines", "sksurv", "pingouin", "dcurves")


def timed(cmd, cwd=None) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds of the child, exit code)."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, capture_output=True)
    wall = time.perf_counter() - t
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return wall, cpu, p.returncode


def radlang_cmd(*args):
    return [PY, "-m", "radlang", *args]


def cold_start(examples, runs):
    print("== 1. cold process: radlang check vs python -c 'import torch'")
    torch_cmd = [PY, "-c", "import torch"]
    # the libraries the compiler is built on (Lark parses, Pydantic types the IR, NetworkX holds the graph):
    # importing them is the floor under any `radlang check`
    floor_cmd = [PY, "-c", "import lark, networkx, pydantic; from pydantic import BaseModel, Field"]
    timed(torch_cmd)                                  # warm the OS file cache for every side
    timed(floor_cmd)
    for ex in examples:
        timed(radlang_cmd("check", str(ex)), cwd=ex.parent)
    results, floors = {}, []
    for ex in examples:
        tw, tc, cw, cc = [], [], [], []
        for _ in range(runs):                         # interleaved, so all see the same machine load
            w, c, _ = timed(torch_cmd)
            tw.append(w)
            tc.append(c)
            w, c, rc = timed(radlang_cmd("check", str(ex)), cwd=ex.parent)
            assert rc == 0, f"radlang check {ex} failed (exit {rc})"
            cw.append(w)
            cc.append(c)
            w, _, _ = timed(floor_cmd)
            floors.append(w / tw[-1])
        results[ex.name] = (statistics.median(cw), statistics.median(tw), statistics.median(cc), statistics.median(tc))
    print(f"{'example':32} {'check s':>8} {'torch s':>8} {'ratio':>6}   {'check cpu':>9} {'torch cpu':>9} {'ratio':>6}")
    for name, (cw, tw, cc, tc) in results.items():
        print(f"{name:32} {cw:8.3f} {tw:8.3f} {cw / tw:6.2f}x  {cc:9.3f} {tc:9.3f} {cc / tc:6.2f}x")
    worst = max(cw / tw for cw, tw, _, _ in results.values())
    worst_cpu = max(cc / tc for _, _, cc, tc in results.values())
    print(f"worst ratio: {worst:.2f}x wall, {worst_cpu:.2f}x CPU (target <= 0.20x)")
    print(f"floor: `import lark, networkx, pydantic` alone is {statistics.median(floors):.2f}x the torch import "
          f"(median of {len(floors)} interleaved runs)")
    return worst, worst_cpu


def import_evidence(example):
    print(f"\n== 2. python -X importtime -m radlang check {example.name}")
    p = subprocess.run([PY, "-X", "importtime", "-m", "radlang", "check", str(example)], cwd=example.parent,
                       capture_output=True, text=True)
    mods, by_top = [], {}
    for line in p.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|\s*(\S+)", line)
        if m:
            mods.append(m.group(3))
            top = m.group(3).split(".")[0]
            by_top[top] = by_top.get(top, 0) + int(m.group(1))
    heavy = sorted(m for m in mods if m.split(".")[0] in SCIENCE)
    print(f"modules imported: {len(mods)}")
    for lib in SCIENCE:
        hit = [m for m in mods if m.split(".")[0] == lib]
        print(f"  {lib:12} {'IMPORTED (' + str(len(hit)) + ' modules)' if hit else 'not imported'}")
    total = sum(by_top.values())
    print(f"import time by top-level package (self time, total {total / 1e6:.3f} s):")
    for top, us in sorted(by_top.items(), key=lambda kv: -kv[1])[:8]:
        print(f"  {top:20} {us / 1e6:7.3f} s")
    return heavy


def generated_spec(n: int) -> str:
    """n statements in arms of 8: a cohort, a segmentation, an extraction, two selections, a model, a validation,
    and a second cohort (`like` the first) used as external validation data."""
    lines = ['study "Generated" {\n  seed: 1\n  out: "runs/generated"\n}\n']
    arms = n // 8
    for i in range(arms):
        lines.append(
            f'cohort c{i} = manifest("data/c{i}.csv") {{\n  id: patient_id\n  image: ct\n  mask: roi\n'
            f'  outcome: malignant as binary\n  site: hospital\n  clinical: [age, sex]\n}}\n'
            f'cohort x{i} = manifest("data/x{i}.csv") like c{i}\n'
            f'segment s{i} = otsu(c{i}.image) {{ smooth: 1mm }}\n'
            f'features f{i} = pyradiomics(c{i}.image, s{i}) {{\n  bin_width: 25HU\n  resample: [1mm, 1mm, 1mm]\n'
            f'  classes: [firstorder, glcm]\n}}\n'
            f'select v{i} = variance(f{i}) {{ min: 0.0 }}\n'
            f'select l{i} = lasso(v{i}, target: c{i}.outcome)\n'
            f'model m{i} = logistic(l{i}, target: c{i}.outcome) {{ C: 1.0 }}\n'
            f'validate e{i} = evaluate(m{i}) {{\n  cv: stratified_kfold(5, repeats: 2)\n  external: x{i}\n'
            f'  metrics: [auc, brier]\n  threshold: sensitivity >= 0.9\n}}\n')
    for j in range(n - arms * 8):
        lines.append(f'cohort extra{j} = manifest("data/extra{j}.csv") like c0\n')
    return "\n".join(lines)


def write_generated_data(folder: Path, text: str, cases: int = 40):
    """The manifests the generated spec names, so that the cold `radlang check` runs its data checks too (columns,
    rows, classes, that every image and mask file exists): `cases` rows each, pointing at two empty files (check
    never opens an image)."""
    (folder / "data").mkdir()
    (folder / "data" / "ct.nii.gz").touch()
    (folder / "data" / "roi.nii.gz").touch()
    rows = "".join(f"p{k},ct.nii.gz,roi.nii.gz,{k % 2},h{k % 3},{50 + k},{'mf'[k % 2]}\n" for k in range(cases))
    for name in sorted(set(re.findall(r'manifest\("data/([^"]+)"\)', text))):
        (folder / "data" / name).write_text("patient_id,ct,roi,malignant,hospital,age,sex\n" + rows)


def big_spec(n, runs):
    print(f"\n== 3. a generated spec of {n} statements")
    from radlang.compiler import compile_source
    from radlang.registry import all_ops
    from radlang.syntax.parser import parse

    text = generated_spec(n)
    all_ops()
    parse(text)                                       # build the parser once (as the CLI's first call does)
    res = compile_source(text, "generated.rad")
    assert res.ok, [str(d) for d in res.diagnostics if d.is_error][:5]
    n_stmts = len(res.module.stmts)
    assert n_stmts == n, n_stmts
    walls, cpus, parse_t = [], [], []
    for _ in range(runs):
        t, c = time.perf_counter(), time.process_time()
        compile_source(text, "generated.rad")
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
        gc.disable()                                  # as compile_source runs the parser
        t = time.perf_counter()
        parse(text, "generated.rad")
        parse_t.append(time.perf_counter() - t)
        gc.enable()
        gc.collect()
    print(f"statements: {n_stmts}, bytes: {len(text):,}, stages after passes: {len(res.study.stages)}")
    print(f"in-process compile (parse + checks + passes): median {statistics.median(walls):.3f} s wall, "
          f"{statistics.median(cpus):.3f} s CPU (min {min(walls):.3f} s); of which parse {statistics.median(parse_t):.3f} s")
    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "generated.rad"
        f.write_text(text)
        write_generated_data(Path(d), text)
        cw, cc = [], []
        for _ in range(runs):
            w, c, rc = timed(radlang_cmd("check", str(f)), cwd=d)
            assert rc == 0
            cw.append(w)
            cc.append(c)
    print(f"cold `radlang check` process: median {statistics.median(cw):.3f} s wall, {statistics.median(cc):.3f} s CPU "
          f"(min {min(cw):.3f} s)")
    print("target <= 1.5 s")
    return statistics.median(walls), statistics.median(cw)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--statements", type=int, default=2000)
    a = ap.parse_args()
    examples = sorted((REPO / "examples").glob("*.rad"))
    if not examples:
        sys.exit("no examples/*.rad to benchmark")
    sys.path.insert(0, str(REPO))
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else ["?"]
    print(f"python {sys.version.split()[0]}, load average {' '.join(load)}\n")
    # Measure what an installed radlang does: pip byte-compiles a wheel at install, and torch's and every
    # other package's bytecode is already compiled. A checkout under PYTHONDONTWRITEBYTECODE=1 (set on some
    # machines) would otherwise recompile radlang's ~60 modules in every process and time the compiler instead.
    import compileall

    compileall.compile_dir(str(REPO / "radlang"), quiet=1)
    print("radlang byte-compiled first (as a wheel install is)\n")
    cold_start(examples, a.runs)
    heavy = import_evidence(examples[0])
    big_spec(a.statements, a.runs)
    if heavy:
        print(f"\nFAIL: check imported {', '.join(sorted({m.split('.')[0] for m in heavy}))}")


if __name__ == "__main__":
    main()
