"""Benchmark: Fed-TCGA-BRCA (FLamby), a linear Cox model over six regions, 5 seeds, pooled-test C-index (lifelines),
side by side with FLamby's published pooled-test means; plus the simulation's overhead and, when the Flower
executables are installed, the wall time of the same rounds on a Flower loopback deployment.

    .venv/bin/python benchmarks/bench_federated.py [--data ../shared/data/fed_tcga_brca] [--seeds 1 2 3 4 5] [--flower [--flower-rounds 3]]

Rows: centralised training on the pooled training patients, local training at each region (same budget: rounds x
local epochs of SGD), and FedAvg, FedProx, FedAdam and FedYogi, all with the settings of examples/fed_tcga_brca.rad.
Goal: every strategy's mean >= 0.82 and minimum >= 0.80 over the 5 seeds.
Overhead: the simulation's time outside the clients' local training (aggregation, server optimiser, bookkeeping)
over the sum of the clients' local training time. Target <= 10%.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FLAMBY = {"centralised": 0.704, "fedavg": 0.735, "fedprox": 0.717, "fedadam": 0.842, "fedyogi": 0.842}   # FLamby, Table 3
COMMON = {"model": "cox", "rounds": 30, "local_epochs": 1, "batch": 16, "lr": 0.01, "fraction": 1.0, "min_clients": None,
          "standardize": "federated", "mu": None, "server_lr": None, "beta_1": None, "beta_2": None, "tau": None, "by": "site"}
STRATEGIES = {"fedavg": {}, "fedprox": {"mu": 0.01}, "fedadam": {"server_lr": 0.03}, "fedyogi": {"server_lr": 0.01}}


def load(folder):
    from radlang.ops.datasets import tabular_features
    from radlang.ops.fed_tcga_brca import load_tcga_brca
    from radlang.ops.fedavg import site_clients

    out = {}
    for split in ("train", "test"):
        df, problems = load_tcga_brca(str(folder), split, split)
        assert not problems, problems
        feats, _ = tabular_features(df, {})
        clients, _, problems = site_clients(df, feats, "cox", "survival", "training" if split == "train" else "test")
        assert not problems, problems
        out[split] = clients
    return out["train"], out["test"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT / ".." / "shared" / "data" / "fed_tcga_brca"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    ap.add_argument("--flower", action="store_true", help="also time FedAvg rounds on a Flower loopback deployment")
    ap.add_argument("--flower-rounds", type=int, default=3, help="rounds of the loopback comparison (each message starts a ClientApp process)")
    args = ap.parse_args()
    folder = Path(args.data)
    if not (folder / "brca.csv").exists():
        sys.exit(f"no Fed-TCGA-BRCA data at {folder} (see ../shared/data/README.md)")
    from radlang.ops.fedavg import federated_study, summarise

    train, test = load(folder)
    rows, clock_all, walls = {}, {}, {}
    for i, (name, extra) in enumerate(STRATEGIES.items()):
        clock = {}
        t0 = time.perf_counter()
        study = federated_study(train, test, "cox", 1, {**COMMON, "strategy": name, **extra, "references": i == 0}, args.seeds,
                                clock=clock)
        walls[name] = time.perf_counter() - t0
        summary = summarise(study, "c_index")
        rows[name] = summary["federated"]
        if i == 0:
            rows["centralised"] = summary["centralised"]
            rows.update({k: v for k, v in summary.items() if k.startswith("local ")})
        clock_all[name] = clock
    print(f"Fed-TCGA-BRCA, linear Cox, pooled-test C-index over seeds {args.seeds} (FLamby's static split, 6 regions)")
    print(f"{'model':<14}{'mean':>8}{'min':>8}{'max':>8}   {'FLamby mean':>11}   goal (mean >= 0.82, min >= 0.80)")
    for name in ["centralised"] + sorted(k for k in rows if k.startswith("local ")) + list(STRATEGIES):
        r = rows[name]
        ref = FLAMBY.get(name)
        goal = "" if name not in STRATEGIES else ("met" if r["mean"] >= 0.82 and r["min"] >= 0.80 else "NOT met")
        print(f"{name:<14}{r['mean']:>8.3f}{r['min']:>8.3f}{r['max']:>8.3f}   {'' if ref is None else f'{ref:.3f}':>11}   {goal}")
    print("\nsimulation overhead (time outside the clients' local training / local training time), federated runs only:")
    for name, c in clock_all.items():
        print(f"  {name:<10} local {c['local']:7.2f} s   server+bookkeeping {c['server']:6.3f} s   overhead {100 * c['server'] / c['local']:5.2f}%"
              f"   (whole study incl. evaluation{' and references' if name == 'fedavg' else ''}: {walls[name]:.1f} s)")
    if args.flower:
        flower_vs_simulation(folder, args.flower_rounds)


FLOWER_SPEC = """
study "bench: Fed-TCGA-BRCA on Flower loopback" {{ seed: 1 }}
cohort train = fed_tcga_brca("{path}") {{ split: train }}
cohort test = fed_tcga_brca("{path}") {{ split: test }}
features clin = tabular(train)
federate fed = fedavg(clin, target: train.outcome) {{
  model: cox, strategy: fedavg, rounds: {rounds}, batch: 16, lr: 0.01, seeds: [1], test: test, references: false
}}
"""


def flower_vs_simulation(folder, rounds):
    """The same FedAvg rounds (1 seed) simulated in-process and deployed on loopback (a SuperLink and 6 SuperNodes)."""
    import json
    import tempfile

    import numpy as np

    from radlang.backends.executor import run_study
    from radlang.backends.render.flower import render_flower
    from radlang.backends.render.flower_loopback import loopback_available, run_loopback
    from radlang.compiler import compile_source

    ok, why = loopback_available()
    if not ok:
        print(f"\nFlower loopback: skipped ({why})")
        return
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        spec = tmp / "fed.rad"
        spec.write_text(FLOWER_SPEC.format(path=folder.resolve(), rounds=rounds))
        study = compile_source(spec.read_text(), str(spec)).study
        ctx = run_study(study, out=tmp / "sim", workers=1, quiet=True)
        sim = json.loads((tmp / "sim" / "metrics" / "fed_federated.json").read_text())["seeds"][0]
        render_flower(study, tmp / "app", site_data=True)
        got = run_loopback(tmp / "app", timeout=3600)
    diff = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) for a, b in zip(got["result"]["seeds"][0]["weights"], sim["weights"]))
    print(f"\nFlower loopback (SuperLink + 6 SuperNodes on 127.0.0.1), FedAvg, {rounds} rounds, 1 seed: "
          f"{got['seconds']:.1f} s (`flwr run` to result); simulation {ctx.timings['fed']:.2f} s (the stage); "
          f"max |weight difference| {diff:.1e}")

if __name__ == "__main__":
    main()
