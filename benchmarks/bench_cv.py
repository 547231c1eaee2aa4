"""Benchmark: repeated CV (5x3) on sklearn's breast cancer set, through `radlang run` and through a hand-written
scikit-learn script with the same pipeline (median imputation -> standard scaling -> random forest of 300 trees),
folds in parallel on both sides (radlang: its process pool; by hand: joblib). Both compute out-of-fold
predictions, pooled AUC and Brier. radlang also fits the final model on every case and saves it with skops
(whose import costs ~1.3 s here: its table of trusted types imports every scikit-learn module, and through
scikit-learn's array-API shim, torch); a third run of the hand-written script does the same, like for like. Wall time of each whole process, best of N alternating runs.

    .venv/bin/python benchmarks/bench_cv.py [--runs 3] [--workers 2]

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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--trees", type=int, default=300)
    a = ap.parse_args()
    py = sys.executable
    radlang = [py, "-m", "radlang"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        spec = tmp / "bench.rad"
        spec.write_text(SPEC.format(trees=a.trees))
        hand = tmp / "hand.py"
        hand.write_text(HAND)
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        tr, th, tf = [], [], []
        for i in range(a.runs):
            out = tmp / f"run{i}"          # a fresh output folder: no cache hits
            tr.append(timed(radlang + ["run", str(spec), "--out", str(out), "--workers", str(a.workers), "--quiet"], env))
            th.append(timed([py, str(hand), str(a.trees), str(a.workers), str(tmp / f"hand{i}.json"), "cv"], env))
            tf.append(timed([py, str(hand), str(a.trees), str(a.workers), str(tmp / f"final{i}.json"), "final"], env))
        m = json.loads((tmp / "run0" / "metrics" / "v.json").read_text())["cross_validation"]
        h = json.loads((tmp / "hand0.json").read_text())
    wr, cr = [x[0] for x in tr], [x[1] for x in tr]
    wh, ch = [x[0] for x in th], [x[1] for x in th]
    wf, cf = [x[0] for x in tf], [x[1] for x in tf]
    print(f"5x3 repeated CV, breast cancer (569 cases, 30 features), RF {a.trees} trees, {a.workers} workers, {a.runs} runs each")
    print(f"  radlang run : wall best {min(wr):6.2f}s (all: {', '.join(f'{x:.2f}' for x in wr)})  CPU best {min(cr):6.2f}s"
          f"   AUC {m['auc']['estimate']:.4f}  Brier {m['brier']:.4f}")
    print(f"  hand-written: wall best {min(wh):6.2f}s (all: {', '.join(f'{x:.2f}' for x in wh)})  CPU best {min(ch):6.2f}s"
          f"   AUC {h['auc']:.4f}  Brier {h['brier']:.4f}")
    print(f"  hand-written + final model saved with skops: wall best {min(wf):6.2f}s  CPU best {min(cf):6.2f}s")
    print(f"  ratio radlang / hand-written CV, wall (best of {a.runs}): {min(wr) / min(wh):.3f}  (target <= 1.1)")
    print(f"  ratio radlang / hand-written CV, CPU  (best of {a.runs}): {min(cr) / min(ch):.3f}  (robust to a loaded machine)")
    print(f"  ratio radlang / hand-written CV + final model, wall: {min(wr) / min(wf):.3f}, CPU: {min(cr) / min(cf):.3f}  (like for like: "
          "radlang saves each validation's final model)")


if __name__ == "__main__":
    main()
