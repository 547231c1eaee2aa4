"""Benchmark: nested-CV elastic-net Cox on GSE7390 through `radlang run` against a hand-written lifelines study.

    .venv/bin/python benchmarks/bench_survival.py [--folds 5] [--inner 3] [--l1-ratio 0.5] [--alphas 0.05 0.1 0.5] [--repeats 5] [--keep DIR]

GSE7390 (Desmedt et al. 2007: 198 breast cancer patients, 76 genes + clinical variables, distant-metastasis-free
survival) ships with scikit-survival (`sksurv.datasets.load_breast_cancer`; GPL-3, the optional `survival-gpl`
extra): without it the benchmark says so and exits 0. The data are written to a table CSV (categorical columns
one-hot encoded). Both sides are a whole fresh Python process (imports included), serial (radlang `--workers 1`,
the hand-written script one process, no pool: the same one core), and produce the same outputs on the same folds:

- outer `kfold(--folds)` (scikit-learn KFold, shuffled with the evaluate stage's seed: radlang's own splits);
- in each training fold, median imputation and standard scaling fit on that fold, and lifelines' CoxPHFitter
  (`penalizer` = alpha, `l1_ratio`; columns constant in the training set left out, as radlang's `cox` does) with
  alpha chosen by an inner `--inner`-fold CV maximising Harrell's C (scikit-learn's GridSearchCV inside radlang;
  a plain loop by hand), then refit on the whole training fold; Harrell's C on the held-out fold;
- the held-out risk scores written to a predictions CSV and the per-fold and mean C-index to a metrics JSON;
- the final model (the same nested search on every case, then refit), saved in a format that runs no code when it
  is read: by hand, a JSON of the imputer's medians, the scaler's means and SDs, the Cox coefficients and the
  Breslow baseline cumulative hazard (what a careful script keeps to predict later); radlang saves the same numbers
  as JSON (models/v.model.json, radlang-survival/1) with its card, and besides writes what every run writes: the
  cohort and feature tables, manifest.json with every artefact's sha256, run.json.

Each repeat runs both sides back to back, in alternating order (the machine is shared: its load changes between
runs). Printed per side: the median wall time and its spread (min..max) over --repeats, the median CPU time (user +
sys of the process and its children: robust to other processes' load), the mean C-index of each, the ratio radlang
/ hand-written (target <= 1.1), and radlang's fixed cost (a cached re-run: start-up, imports, reading, writing).
The two sides fit the same models and give the same held-out risk scores (to ~1e-14); their C-indices can differ in
the third decimal where a large penalty shrinks every coefficient to ~0: radlang's Harrell's C counts risks within
1e-8 as tied (as scikit-survival does), lifelines' `concordance_index` compares them exactly (measured: the same
alpha in every fold on both sides, 60 Cox fits each).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_cv import timed  # (wall, CPU) of one whole process, run in the repository root

SEED = 7

HAND = '''
"""Nested-CV elastic-net Cox by hand (lifelines + scikit-learn): predictions, metrics and the final model as JSON."""
import json, sys
import numpy as np
import pandas as pd
from lifelines import CoxPHFitter
from lifelines.utils import concordance_index
from sklearn.impute import SimpleImputer
from sklearn.model_selection import KFold
from sklearn.preprocessing import StandardScaler

csv, out, folds, inner, split_seed, model_seed, l1_ratio = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:7]), float(sys.argv[7])
alphas = [float(a) for a in sys.argv[8:]]
df = pd.read_csv(csv)
X = df.drop(columns=["case", "t", "e"]).to_numpy(float)
t, e = df["t"].to_numpy(float), df["e"].to_numpy(int)


def fit(Xa, ta, ea, alpha):
    imp = SimpleImputer(strategy="median").fit(Xa)
    sc = StandardScaler().fit(imp.transform(Xa))
    Z = sc.transform(imp.transform(Xa))
    keep = Z.max(axis=0) > Z.min(axis=0)        # lifelines cannot fit a column constant in this training set
    cph = CoxPHFitter(penalizer=alpha, l1_ratio=l1_ratio).fit(pd.DataFrame(Z[:, keep]).assign(T=ta, E=ea), "T", "E")
    return imp, sc, keep, cph


def risk(model, Xb):
    imp, sc, keep, cph = model
    return sc.transform(imp.transform(Xb))[:, keep] @ cph.params_.to_numpy()


def nested(tr):
    scores = []
    for a in alphas:
        cs = []
        for itr, ite in KFold(inner, shuffle=True, random_state=model_seed).split(tr):
            m = fit(X[tr][itr], t[tr][itr], e[tr][itr], a)
            cs.append(concordance_index(t[tr][ite], -risk(m, X[tr][ite]), e[tr][ite]))
        scores.append(np.mean(cs))
    return fit(X[tr], t[tr], e[tr], alphas[int(np.argmax(scores))])


rows, per = [], []
for k, (tr, te) in enumerate(KFold(folds, shuffle=True, random_state=split_seed).split(X)):
    r = risk(nested(tr), X[te])
    per.append(concordance_index(t[te], -r, e[te]))
    rows.append(pd.DataFrame({"case": df["case"].to_numpy()[te], "fold": k, "t": t[te], "e": e[te], "risk": r}))
pd.concat(rows).to_csv(out + "/predictions.csv", index=False, float_format="%.17g")
json.dump({"c_index": {"per_fold": per, "estimate": float(np.mean(per))}}, open(out + "/metrics.json", "w"), indent=2)
imp, sc, keep, cph = nested(np.arange(len(X)))  # the final model, on every case, saved as numbers (no pickle)
bch = cph.baseline_cumulative_hazard_.iloc[:, 0]
json.dump({"columns": list(df.columns.drop(["case", "t", "e"])), "median": imp.statistics_.tolist(), "mean": sc.mean_.tolist(),
           "scale": sc.scale_.tolist(), "kept": keep.tolist(), "coef": cph.params_.tolist(), "centre": cph._norm_mean.tolist(),
           "baseline_times": bch.index.tolist(), "baseline_cumulative_hazard": bch.tolist()}, open(out + "/model.json", "w"))
'''


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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--inner", type=int, default=3)
    ap.add_argument("--l1-ratio", type=float, default=0.5)
    ap.add_argument("--alphas", type=float, nargs="+", default=[0.05, 0.1, 0.5])
    ap.add_argument("--repeats", type=int, default=5)
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
    (folder / "hand.py").write_text(HAND)
    study = compile_file(folder / "s.rad").study
    split_seed, model_seed = study.stage("v").seed, study.stage("m").seed      # each stage's own seed, derived from the study's
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    py = sys.executable
    rad, hand = [], []
    for r in range(a.repeats):         # alternating, so a change in the machine's load hits both sides alike
        for side in (("radlang", "hand") if r % 2 == 0 else ("hand", "radlang")):
            if side == "radlang":
                rad.append(timed([py, "-m", "radlang", "run", str(folder / "s.rad"), "--out", str(folder / f"out{r}"), "--force",
                                  "--workers", "1", "--quiet"], env))
            else:
                (folder / f"hand{r}").mkdir(exist_ok=True)
                hand.append(timed([py, str(folder / "hand.py"), str(csv), str(folder / f"hand{r}"), str(a.folds), str(a.inner),
                                   str(split_seed), str(model_seed), str(a.l1_ratio)] + [str(x) for x in a.alphas], env))
    t_fixed, _ = timed([py, "-m", "radlang", "run", str(folder / "s.rad"), "--out", str(folder / "out0"), "--workers", "1", "--quiet"], env)
    m = json.loads((folder / "out0" / "metrics" / "v.json").read_text())["cross_validation"]["c_index"]
    h = json.loads((folder / "hand0" / "metrics.json").read_text())["c_index"]

    def show(runs):
        wall, cpu = [w for w, _ in runs], [c for _, c in runs]
        return (f"wall median {statistics.median(wall):5.1f} s (min {min(wall):.1f}, max {max(wall):.1f}; all {', '.join(f'{w:.1f}' for w in wall)}), "
                f"CPU median {statistics.median(cpu):5.1f} s (min {min(cpu):.1f}, max {max(cpu):.1f})")

    ratios = [rw / hw for (rw, _), (hw, _) in zip(rad, hand)]
    print(f"GSE7390 nested CV ({a.folds} outer x {a.inner} inner folds, alphas {a.alphas}, l1_ratio {a.l1_ratio}), {a.repeats} interleaved "
          f"repeats, one core each side; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"  radlang run  : {show(rad)}; mean C {m['estimate']:.4f} (per fold {[round(x, 4) for x in m['per_fold']]})")
    print(f"  hand-written : {show(hand)}; mean C {h['estimate']:.4f} (per fold {[round(x, 4) for x in h['per_fold']]})")
    print(f"  ratio radlang / hand-written: wall {statistics.median(w for w, _ in rad) / statistics.median(w for w, _ in hand):.3f} "
          f"(median of each; per repeat {', '.join(f'{x:.2f}' for x in ratios)}), CPU "
          f"{statistics.median(c for _, c in rad) / statistics.median(c for _, c in hand):.3f}  (target <= 1.1)")
    print(f"  radlang's fixed cost (a cached re-run: start-up, imports, reading, writing): {t_fixed:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
