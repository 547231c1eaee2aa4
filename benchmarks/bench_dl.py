"""Benchmark: deep-learning segmentation through radlang.

1. Training-step throughput, side by side in one process: radlang's `train_network` (the function
   `radlang run` calls for a `supervised` stage: seeded pos/neg crops, batching, loss, optimiser step)
   against a hand-written MONAI loop with the same network, loss, optimiser, batch, patch and data
   (monai.data.Dataset + RandCropByPosNegLabeld + DataLoader). Alternating runs, best of N; the ratio is
   radlang crops/s over hand-written crops/s (target >= 0.95).
2. Held-out Dice: `radlang run examples/segmentation.rad` (3D UNet on phantom cases) end to end, with
   Dice and HD95 of the held-out cases from <out>/metrics/seg.json (target: Dice >= 0.8 within ~10 CPU minutes).

    .venv/bin/python benchmarks/bench_dl.py [--runs 3] [--epochs 2] [--skip-dice] [--dice-epochs N]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SPEC = {"arch": "unet", "params": {"dims": 3, "in_channels": 1, "out_channels": 2, "channels": [8, 16, 32, 64], "strides": [2, 2, 2],
                                   "kernel_size": 3, "up_kernel_size": 3, "num_res_units": 1, "norm": "instance", "act": "prelu",
                                   "dropout": 0.0}}


def make_cases(n=16, size=40, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(*[np.arange(size)] * 3, indexing="ij")
    cases = []
    for i in range(n):
        c = size / 2 + rng.uniform(-4, 4, 3)
        lab = (np.sqrt((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2) < rng.uniform(6, 9)).astype(np.int64)
        img = (40 + 25 * lab + rng.normal(0, 8, lab.shape)).astype(np.float32)
        img = (img - img.mean()) / img.std()
        cases.append({"case": f"b{i}", "image": img[None], "label": lab[None], "val": False, "geometry": {"spacing": [1, 1, 1]}})
    return cases


def radlang_loop(cases, params, seed):
    from radlang.ops.networks import build_network
    from radlang.ops.supervised import train_network

    t = time.perf_counter()
    train_network(cases, build_network, SPEC, params, seed, "segmentation")
    return time.perf_counter() - t


def hand_loop(cases, params, seed):
    import torch
    from monai.data import DataLoader, Dataset
    from monai.losses import DiceCELoss
    from monai.networks.nets import UNet
    from monai.transforms import RandCropByPosNegLabeld
    from monai.utils import set_determinism

    set_determinism(seed)
    p = SPEC["params"]
    net = UNet(spatial_dims=3, in_channels=1, out_channels=2, channels=tuple(p["channels"]), strides=tuple(p["strides"]),
               num_res_units=p["num_res_units"], norm="instance", act="prelu")
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    opt = torch.optim.Adam(net.parameters(), lr=float(params["lr"]))
    data = [{"image": c["image"], "label": c["label"]} for c in cases]
    crop = RandCropByPosNegLabeld(keys=["image", "label"], label_key="label", spatial_size=list(params["patch"]),
                                  pos=1, neg=1, num_samples=int(params["samples"]))
    loader = DataLoader(Dataset(data, crop), batch_size=max(1, int(params["batch"]) // int(params["samples"])), shuffle=True, num_workers=0)
    t = time.perf_counter()
    for _ in range(int(params["epochs"])):
        net.train()
        for batch in loader:
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(batch["image"]), batch["label"])
            loss.backward()
            opt.step()
    set_determinism(None)
    return time.perf_counter() - t


def throughput(runs, epochs):
    import torch

    torch.set_num_threads(max(1, torch.get_num_threads()))
    cases = make_cases()
    params = {"loss": "dice_ce", "optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0, "schedule": "constant", "epochs": epochs,
              "batch": 4, "patch": [32, 32, 32], "sampling": {"kind": "pos_neg", "pos": 1.0, "neg": 1.0}, "samples": 2,
              "slices": False, "normalize": "none", "validate_every": 0, "validation": 0.0, "overlap": 0.25, "sw_batch": 4,
              "device": "cpu", "_divisor": 8}
    crops = len(cases) * params["samples"] * epochs
    hand_loop(cases[:2], {**params, "epochs": 1}, 0)          # warm up both paths (allocator, MKLDNN kernels)
    radlang_loop(cases[:2], {**params, "epochs": 1}, 0)
    r, h = [], []
    for i in range(runs):
        h.append(hand_loop(cases, params, i))
        r.append(radlang_loop(cases, params, i))
    rb, hb = min(r), min(h)
    print(f"training-step throughput, 3D UNet {SPEC['params']['channels']}, batch {params['batch']} x patch 32^3, "
          f"{crops} crops per run, best of {runs}, torch threads {torch.get_num_threads()}:")
    print(f"  radlang      {crops / rb:7.2f} crops/s   ({rb:.2f} s; runs: {', '.join(f'{v:.2f}' for v in r)})")
    print(f"  hand-written {crops / hb:7.2f} crops/s   ({hb:.2f} s; runs: {', '.join(f'{v:.2f}' for v in h)})")
    print(f"  ratio radlang / hand-written = {hb / rb:.3f}   (target >= 0.95)")
    return hb / rb


def held_out_dice(epochs):
    from radlang.backends.executor import run_study
    from radlang.compiler import compile_source

    src = (ROOT / "examples" / "segmentation.rad").read_text()
    if epochs:
        src = re.sub(r"epochs: \d+", f"epochs: {epochs}", src)
    res = compile_source(src, str(ROOT / "examples" / "segmentation.rad"))
    assert res.ok, res.diagnostics
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        t_cpu = time.process_time()
        ctx = run_study(res.study, out=Path(tmp), workers=1, quiet=True)
        wall, cpu = time.perf_counter() - t, time.process_time() - t_cpu
        rep = json.loads((Path(tmp) / "metrics" / "seg.json").read_text())
        hist = ctx.results["fit"]["history"]
    s = rep["per_class"]["1"]
    print(f"held-out phantom segmentation (examples/segmentation.rad, {len(rep['per_case'])} test cases, "
          f"{hist[-1]['epoch']} epochs, best epoch {ctx.results['fit']['best_epoch']}):")
    print(f"  Dice mean {s['dice_mean']:.3f} (sd {s['dice_sd']:.3f}, median {s['dice_median']:.3f}); "
          f"HD95 mean {s['hd95_mean']:.2f} mm, median {s['hd95_median']:.2f} mm")
    print(f"  wall {wall / 60:.1f} min, process CPU {cpu / 60:.1f} min   (target: Dice >= 0.8 within ~10 CPU minutes)")
    return s["dice_mean"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--skip-dice", action="store_true")
    ap.add_argument("--dice-epochs", type=int, default=0, help="override the example's epochs (0: as written)")
    a = ap.parse_args()
    throughput(a.runs, a.epochs)
    if not a.skip_dice:
        held_out_dice(a.dice_epochs)


if __name__ == "__main__":
    main()
