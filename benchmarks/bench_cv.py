"""Benchmark: repeated CV (5x3) on sklearn's breast cancer set, through `radlang run` and through a hand-written
scikit-learn script with the same pipeline (median imputation -> standard scaling -> random forest of 300 trees),
folds in parallel on both sides (radlang: its process pool; by hand: joblib). Both compute out-of-fold
predictions, pooled AUC and Brier.

Two anchors, both printed:
- like for like (the fair one): the hand-written script also fits the final model on every case and saves it with
  skops, as every radlang validation stage must (its final model is an artefact that `radlang predict` applies).
  The script imports skops as a user would, which imports torch through scikit-learn's array-API adapters
  (radlang imports skops without them: radlang/ops/fold_engine.py `skops_io`).
- CV only: the script stops after the CV metrics; the ratio shows what radlang adds on top of the CV itself
  (the final model, plots, artefacts, manifest, its own start-up).

Wall and CPU time (the process and every descendant it reaped, e.g. pool workers) of each whole process; the three
commands run interleaved, in a rotating order, --runs times each; medians with [min-max]. On a machine shared with
other jobs the wall ratio moves with the load; the CPU ratio much less.

    .venv/bin/python benchmarks/bench_cv.py [--runs 5] [--workers 2]

Target: radlang / hand-written <= 1.1.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SPEC = """
study "bench: breast cancer 5x3 CV" {{ seed: 1 }}
cohort bc = dataset("breast_cancer")
features f = tabular(bc)
model rf = random_forest(f, target: bc.outcome) {{ n_estimators: {trees}, impute: median, scale: standard }}
validate v = evaluate(rf) {{ cv: stratified_kfold(5, repeats: 3), metrics: [auc, brier], bootstrap: 0 }}
"""

HAND = '''
import sys, json
import numpy as np
from joblib import Parallel, delayed
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

trees, workers, out, final = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4] == "final"
d = load_breast_cancer()
X, y = d.data, (d.target == 0).astype(int)

def fold(tr, te):
    pipe = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler()),
                     ("model", RandomForestClassifier(n_estimators=trees, random_state=0, n_jobs=1))])
    pipe.fit(X[tr], y[tr])
    return te, pipe.predict_proba(X[te])[:, 1]

splits = [(tr, te) for r in range(3) for tr, te in StratifiedKFold(5, shuffle=True, random_state=r).split(X, y)]
res = Parallel(n_jobs=workers)(delayed(fold)(tr, te) for tr, te in splits)
yy = np.concatenate([y[te] for te, _ in res]); pp = np.concatenate([p for _, p in res])
json.dump({"auc": roc_auc_score(yy, pp), "brier": brier_score_loss(yy, pp)}, open(out, "w"))
if final:   # like radlang: the final model on every case, saved in a format that cannot run code
    import skops.io as sio

    pipe = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler()),
                     ("model", RandomForestClassifier(n_estimators=trees, random_state=0, n_jobs=1))]).fit(X, y)
    open(out + ".skops", "wb").write(sio.dumps(pipe))
'''


def timed(cmd, env=None):
    """(wall seconds, CPU seconds of the process and every descendant it reaped, e.g. pool workers)."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    r = subprocess.run(cmd, check=False, cwd=ROOT, env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        sys.exit(f"failed: {' '.join(map(str, cmd))}\n{r.stderr}")
    return dt, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def median_range(xs: list[float]) -> str:
    import statistics

    return f"{statistics.median(xs):6.2f}s [{min(xs):.2f}-{max(xs):.2f}]"


def main():
    import statistics

    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--trees", type=int, default=300)
    a = ap.parse_args()
    py = sys.executable
    radlang = [py, "-m", "radlang"]
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else ["?"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        spec = tmp / "bench.rad"
        spec.write_text(SPEC.format(trees=a.trees))
        hand = tmp / "hand.py"
        hand.write_text(HAND)
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        commands = {
            "radlang": lambda i: radlang + ["run", str(spec), "--out", str(tmp / f"run{i}"), "--workers", str(a.workers), "--quiet"],
            "cv": lambda i: [py, str(hand), str(a.trees), str(a.workers), str(tmp / f"hand{i}.json"), "cv"],
            "final": lambda i: [py, str(hand), str(a.trees), str(a.workers), str(tmp / f"final{i}.json"), "final"],
        }
        names = list(commands)
        times: dict[str, list[tuple[float, float]]] = {n: [] for n in names}
        for i in range(a.runs):         # a fresh output folder each time: no cache hits
            for n in names[i % 3:] + names[:i % 3]:
                times[n].append(timed(commands[n](i), env))
        m = json.loads((tmp / "run0" / "metrics" / "v.json").read_text())["cross_validation"]
        h = json.loads((tmp / "hand0.json").read_text())
    wall = {n: [t[0] for t in times[n]] for n in names}
    cpu = {n: [t[1] for t in times[n]] for n in names}
    med = statistics.median
    print(f"5x3 repeated CV, breast cancer (569 cases, 30 features), RF {a.trees} trees, {a.workers} workers, {a.runs} runs each "
          f"(interleaved); load average at the start {' '.join(load)}")
    print(f"  radlang run                        : wall {median_range(wall['radlang'])}  CPU {median_range(cpu['radlang'])}"
          f"   AUC {m['auc']['estimate']:.4f}  Brier {m['brier']:.4f}")
    print(f"  hand-written CV + final model saved: wall {median_range(wall['final'])}  CPU {median_range(cpu['final'])}")
    print(f"  hand-written CV only               : wall {median_range(wall['cv'])}  CPU {median_range(cpu['cv'])}"
          f"   AUC {h['auc']:.4f}  Brier {h['brier']:.4f}")
    for anchor, label in (("final", "like for like (CV + final model saved; the fair anchor)"), ("cv", "CV only")):
        paired = [r / x for r, x in zip(wall["radlang"], wall[anchor])]
        print(f"  radlang / hand-written, {label}: wall {med(wall['radlang']) / med(wall[anchor]):.3f} (per run "
              f"{min(paired):.2f}-{max(paired):.2f}), CPU {med(cpu['radlang']) / med(cpu[anchor]):.3f}  (target <= 1.1)")


if __name__ == "__main__":
    main()
