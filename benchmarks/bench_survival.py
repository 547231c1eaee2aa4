"""Benchmark: nested-CV elastic-net Cox on GSE7390 through `radlang run` against a hand-written lifelines loop.

    .venv/bin/python benchmarks/bench_survival.py [--folds 5] [--inner 3] [--l1-ratio 0.5] [--alphas 0.05 0.1 0.5] [--repeats 2] [--keep DIR]

GSE7390 (Desmedt et al. 2007: 198 breast cancer patients, 76 genes + clinical variables, distant-metastasis-free
survival) ships with scikit-survival (`sksurv.datasets.load_breast_cancer`; GPL-3, the optional `survival-gpl`
extra): without it the benchmark says so and exits 0. The data are written to a table CSV (categorical columns
one-hot encoded). Both sides do the same work on the same folds:

- outer `kfold(--folds)` (scikit-learn KFold, shuffled with the evaluate stage's seed: radlang's own splits);
- in each training fold, median imputation and standard scaling fit on that fold, and lifelines' CoxPHFitter
  (`penalizer` = alpha, `l1_ratio`; columns constant in the training set left out, as radlang's `cox` does) with alpha chosen by an inner `--inner`-fold CV maximising Harrell's C
  (scikit-learn's GridSearchCV inside radlang; a plain loop by hand), then refit on the whole training fold;
- Harrell's C on the held-out fold; and the final model on every case.

Printed: each side's wall time (the fastest of --repeats alternating runs: on a shared machine the load changes
between runs) (radlang: the whole `radlang run` in a fresh process, imports included; the loop:
the loop alone, its imports already done; both serial: `--workers 1`), radlang's fixed cost (a cached re-run), the
mean C-index of each (they agree: same folds, same fits), and the
ratio radlang / loop (target <= 1.1).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEED = 7


def write_table(folder: Path) -> Path:
    import pandas as pd
    from sksurv.column import encode_categorical
    from sksurv.datasets import load_breast_cancer

    X, y = load_breast_cancer()
    X = encode_categorical(X).astype(float)
    X.columns = [str(c).replace(" ", "_").replace("=", "_") for c in X.columns]
    ev, tm = y.dtype.names
    df = pd.concat([pd.DataFrame({"case": [f"p{i:03d}" for i in range(len(X))], "t": y[tm], "e": y[ev].astype(int)}), X], axis=1)
    df.to_csv(folder / "gse7390.csv", index=False, float_format="%.17g")
    return folder / "gse7390.csv"


def spec(alphas, l1_ratio, folds, inner) -> str:
    grid = ", ".join(repr(float(a)) for a in alphas)
    return f"""study "GSE7390 nested-CV elastic-net Cox" {{ seed: {SEED} }}
cohort g = table("gse7390.csv") {{ id: case, outcome: survival(time: t, event: e) }}
features f = tabular(g)
model m = cox(f, target: g.outcome) {{ l1_ratio: {l1_ratio}, search: grid(alpha: [{grid}], cv: {inner}) }}
validate v = evaluate(m) {{ cv: kfold({folds}), metrics: [c_index], bootstrap: 0 }}
"""


def hand_loop(csv: Path, alphas, l1_ratio, folds, inner, split_seed, model_seed):
    """The same nested CV written directly with lifelines and scikit-learn; returns the per-fold C-indices."""
    import numpy as np
    import pandas as pd
    from lifelines import CoxPHFitter
    from lifelines.utils import concordance_index
    from sklearn.impute import SimpleImputer
    from sklearn.model_selection import KFold
    from sklearn.preprocessing import StandardScaler

    df = pd.read_csv(csv)
    X = df.drop(columns=["case", "t", "e"]).to_numpy(float)
    t, e = df["t"].to_numpy(float), df["e"].to_numpy(int)

    def fit(Xa, ta, ea, alpha):
        imp = SimpleImputer(strategy="median").fit(Xa)
        sc = StandardScaler().fit(imp.transform(Xa))
        Z = sc.transform(imp.transform(Xa))
        keep = Z.max(axis=0) > Z.min(axis=0)        # lifelines cannot fit a column constant in this training set
        cols = [f"x{j}" for j in range(Z.shape[1])]
        df = pd.DataFrame(Z[:, keep], columns=[c for c, k in zip(cols, keep) if k]).assign(T=ta, E=ea)
        beta = CoxPHFitter(penalizer=alpha, l1_ratio=l1_ratio).fit(df, "T", "E").params_.to_numpy()
        return lambda Xb: sc.transform(imp.transform(Xb))[:, keep] @ beta

    def nested(tr):
        scores = []
        for a in alphas:
            cs = []
            for itr, ite in KFold(inner, shuffle=True, random_state=model_seed).split(tr):
                f = fit(X[tr][itr], t[tr][itr], e[tr][itr], a)
                cs.append(concordance_index(t[tr][ite], -f(X[tr][ite]), e[tr][ite]))
            scores.append(np.mean(cs))
        best = alphas[int(np.argmax(scores))]
        return fit(X[tr], t[tr], e[tr], best)

    per = []
    for tr, te in KFold(folds, shuffle=True, random_state=split_seed).split(X):
        f = nested(tr)
        per.append(concordance_index(t[te], -f(X[te]), e[te]))
    nested(np.arange(len(X)))          # the final model, as radlang fits it
    return per


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--inner", type=int, default=3)
    ap.add_argument("--l1-ratio", type=float, default=0.5)
    ap.add_argument("--alphas", type=float, nargs="+", default=[0.05, 0.1, 0.5])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--keep", type=Path, default=None)
    a = ap.parse_args()
    if importlib.util.find_spec("sksurv") is None:
        print("skipped: GSE7390 ships with scikit-survival (the optional `survival-gpl` extra), which is not installed")
        return 0
    from radlang.compiler import compile_file

    folder = a.keep or Path(tempfile.mkdtemp(prefix="bench_survival_"))
    folder.mkdir(parents=True, exist_ok=True)
    csv = write_table(folder)
    (folder / "s.rad").write_text(spec(a.alphas, a.l1_ratio, a.folds, a.inner))
    study = compile_file(folder / "s.rad").study
    split_seed, model_seed = study.stage("v").seed, study.stage("m").seed      # each stage's own seed, derived from the study's
    import lifelines  # noqa: F401 -- imports outside the timed loop
    import sklearn  # noqa: F401

    rad, hand = [], []
    for r in range(a.repeats):         # alternating, so a change in the machine's load hits both sides alike
        for side in (("radlang", "loop") if r % 2 == 0 else ("loop", "radlang")):
            t0 = time.perf_counter()
            if side == "radlang":
                subprocess.run([sys.executable, "-m", "radlang", "run", str(folder / "s.rad"), "--out", str(folder / f"out{r}"), "--force",
                                "--workers", "1"], check=True, cwd=ROOT, capture_output=True)
                rad.append(time.perf_counter() - t0)
            else:
                per = hand_loop(csv, a.alphas, a.l1_ratio, a.folds, a.inner, split_seed, model_seed)
                hand.append(time.perf_counter() - t0)
    t0 = time.perf_counter()           # the fixed cost of a `radlang run`: start-up, imports, reading and writing (every stage cached)
    subprocess.run([sys.executable, "-m", "radlang", "run", str(folder / "s.rad"), "--out", str(folder / "out0"), "--workers", "1"],
                   check=True, cwd=ROOT, capture_output=True)
    t_fixed = time.perf_counter() - t0
    m = json.loads((folder / "out0" / "metrics" / "v.json").read_text())
    t_rad, t_hand = min(rad), min(hand)
    c_rad = m["cross_validation"]["c_index"]["estimate"]
    print(f"{a.repeats} alternating repeats each; the fastest of each side; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"radlang run: {t_rad:.1f} s (all: {[round(x, 1) for x in rad]}), mean C {c_rad:.4f} (per fold {[round(x, 4) for x in m['cross_validation']['c_index']['per_fold']]})")
    print(f"lifelines loop: {t_hand:.1f} s (all: {[round(x, 1) for x in hand]}), mean C {sum(per) / len(per):.4f} (per fold {[round(float(x), 4) for x in per]})")
    print(f"ratio radlang / loop: {t_rad / t_hand:.2f} (target <= 1.1); a cached re-run (start-up, imports, I/O): {t_fixed:.1f} s, "
          f"so the folds themselves: {(t_rad - t_fixed) / t_hand:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
