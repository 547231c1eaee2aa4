"""Benchmark: network models (intermediate fusion, a 2-head multi-task model, DANN) through radlang.

1. Training-step throughput, side by side in one process: radlang's network estimator (`RadNetClassifier.fit`, what
   `evaluate` runs in every training fold for a `cnn` model on a join of image patches and a tabular table: column
   split, tabular standardisation, seeded batches, `train_step`) against a hand-written PyTorch loop with the same
   model (`fusion_module`: the MONAI backbone, adaptive pooling, the MLP head), data, batch, loss and optimiser
   (a TensorDataset + shuffled DataLoader). One intra-op thread in both. Alternating runs, best of N; the ratio is
   radlang samples/s over hand-written samples/s (target >= 0.95).
   The same for a 2-head multi-task model (`RadMultiTaskModel.fit`: a binary and a 3-class head on one backbone,
   fixed loss weights) against a hand-written loop with the same `multitask_module`, data, batch, two cross-entropies
   summed with the same weights, and optimiser.
2. Memory: `plan`'s training-memory estimate for one step of each model (`training_memory`, on PyTorch's meta
   device) against the measured peak resident memory of that step in a fresh process (VmHWM reset right before it),
   target within ±30%.
3. DANN (radlang/ops/dann.py), the same two measurements: `RadDANNClassifier.fit` on two source sites with the third
   site's images unlabelled (what `evaluate` runs in a leave-one-site-out fold with `target_unlabelled: true`) against
   a hand-written loop over the same model (`dann_module`: the fusion network, the gradient reversal layer, the site
   head), data, batches (a shuffled DataLoader of source rows, a random target batch of the same size), losses,
   Ganin's lambda schedule and optimiser; and `plan`'s estimate for one DANN step (`memory_module`) against its
   measured peak.
4. A multi-task model with a segmentation (decoder) head: `plan`'s estimate for one step of a UNet with a binary head
   and the decoder's DiceCELoss against the mask (`multitask_plan_estimate`) against its measured peak.

    .venv/bin/python benchmarks/bench_deep_kinds.py [--runs 3] [--epochs 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SPEC = {"arch": "resnet", "params": {"dims": 3, "in_channels": 1, "out_channels": 2, "depth": 10, "widen_factor": 0.25}}
PARAMS = {"epochs": 3, "batch": 8, "optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0, "schedule": "constant",
          "hidden": 32, "dropout": 0.0, "validation": 0.0, "patience": 5}
PATCH, N_TAB = [16, 16, 16], 20
UNET = {"arch": "unet", "params": {"dims": 3, "in_channels": 1, "out_channels": 2, "channels": [8, 16, 32], "strides": [2, 2],
                                   "kernel_size": 3, "up_kernel_size": 3, "dropout": 0.0, "num_res_units": 1, "norm": "instance",
                                   "act": "prelu"}}


def make_data(n=64, seed=0):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    images = rng.normal(size=(n, 1, *PATCH)).astype(np.float32)
    tab = rng.normal(size=(n, N_TAB))
    names = ["voxel:" + ":".join(map(str, i)) for i in np.ndindex(1, *PATCH)]
    X = pd.DataFrame(images.reshape(n, -1).astype(np.float64), columns=names, index=[f"c{i}" for i in range(n)])
    X = pd.concat([X, pd.DataFrame(tab, columns=[f"f{j}" for j in range(N_TAB)], index=X.index)], axis=1)
    return X, rng.integers(0, 2, n)


def radlang_fit(X, y, params, seed=0):
    from radlang.ops.net_models import net_estimator_class

    t = time.perf_counter()
    net_estimator_class()(network=SPEC, params=params, seed=seed).fit(X, y)
    return time.perf_counter() - t


def hand_fit(X, y, params, seed=0):
    """The same model and data trained by a plain PyTorch loop (standardised tabular columns, shuffled batches)."""
    import numpy as np
    import torch

    from radlang.ops.net_models import fusion_module

    t = time.perf_counter()
    vox = [c for c in X.columns if c.startswith("voxel:")]
    tab_cols = [c for c in X.columns if not c.startswith("voxel:")]
    image = torch.from_numpy(X[vox].to_numpy(np.float32).reshape(len(X), 1, *PATCH))
    t_np = X[tab_cols].to_numpy()
    tab = torch.from_numpy(((t_np - t_np.mean(0)) / t_np.std(0)).astype(np.float32))
    target = torch.from_numpy(np.asarray(y, dtype=np.int64))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    net = fusion_module(SPEC, [1, *PATCH], N_TAB, 2, params["hidden"], params["dropout"])
    opt = torch.optim.Adam(net.parameters(), lr=params["lr"])
    loss_fn = torch.nn.CrossEntropyLoss()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(image, tab, target), batch_size=params["batch"], shuffle=True)
    for _ in range(params["epochs"]):
        net.train()
        for xi, xt, yb in loader:
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(xi, xt), yb)
            loss.backward()
            opt.step()
    torch.set_num_threads(threads)
    return time.perf_counter() - t


DANN = {"reversal": "ganin", "domain_hidden": 16, "target_unlabelled": True}


def dann_data(X):
    """Three sites, a third each; the last is the held-out (target) site."""
    sites = {cid: f"s{i % 3}" for i, cid in enumerate(X.index)}
    src = [c for c in X.index if sites[c] != "s2"]
    tgt = [c for c in X.index if sites[c] == "s2"]
    return sites, src, tgt


def radlang_dann_fit(X, y, params, seed=0):
    from radlang.ops.dann import dann_estimator_class

    sites, src, tgt = dann_data(X)
    y_src = y[[X.index.get_loc(c) for c in src]]
    t = time.perf_counter()
    dann_estimator_class()(network=SPEC, params={**params, **DANN}, seed=seed, fold_inputs={"sites": sites}).fit(
        X.loc[src], y_src, unlabelled=X.loc[tgt])
    return time.perf_counter() - t


def hand_dann_fit(X, y, params, seed=0):
    """The same DANN trained by a plain PyTorch loop: source batches from a shuffled DataLoader, a random target batch
    of the same size each step, label + site cross-entropy, lambda by Ganin's schedule."""
    import math

    import numpy as np
    import torch

    from radlang.ops.dann import dann_module
    from radlang.ops.net_models import fusion_module

    sites, src, tgt = dann_data(X)
    t = time.perf_counter()
    vox = [c for c in X.columns if c.startswith("voxel:")]
    tab_cols = [c for c in X.columns if not c.startswith("voxel:")]
    Xs, Xt = X.loc[src], X.loc[tgt]
    image = torch.from_numpy(Xs[vox].to_numpy(np.float32).reshape(len(Xs), 1, *PATCH))
    target_image = torch.from_numpy(Xt[vox].to_numpy(np.float32).reshape(len(Xt), 1, *PATCH))
    t_np = Xs[tab_cols].to_numpy()
    tab = torch.from_numpy(((t_np - t_np.mean(0)) / t_np.std(0)).astype(np.float32))
    target = torch.from_numpy(np.asarray(y[[X.index.get_loc(c) for c in src]], dtype=np.int64))
    site = torch.tensor([int(sites[c][1]) for c in src])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    net = dann_module(fusion_module(SPEC, [1, *PATCH], N_TAB, 2, params["hidden"], params["dropout"]), 3, DANN["domain_hidden"], seed)
    opt = torch.optim.Adam(net.parameters(), lr=params["lr"])
    ce = torch.nn.CrossEntropyLoss()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(image, tab, target, site), batch_size=params["batch"], shuffle=True)
    steps, step = params["epochs"] * len(loader), 0
    for _ in range(params["epochs"]):
        net.train()
        for xi, xt, yb, sb in loader:
            pick = torch.randperm(len(target_image))[:len(yb)]
            lam = 2.0 / (1.0 + math.exp(-10.0 * step / max(steps - 1, 1))) - 1.0
            opt.zero_grad(set_to_none=True)
            label, dom = net(torch.cat([xi, target_image[pick]]), xt, len(yb), lam)
            loss = ce(label, yb) + ce(dom, torch.cat([sb, torch.full((len(pick),), 2)]))
            loss.backward()
            opt.step()
            step += 1
    torch.set_num_threads(threads)
    return time.perf_counter() - t


MT_HEADS = [{"name": "malignancy", "kind": "binary", "weight": 1.0, "primary": True},
            {"name": "grade", "kind": "multiclass", "weight": 0.5, "primary": False}]


def mt_params(params):
    return {**params, "heads": MT_HEADS, "combine": "fixed", "task_norm": False}


def radlang_fit_mt(X, y, grade, params, seed=0):
    from radlang.ops.multitask import multitask_estimator_class

    t = time.perf_counter()
    multitask_estimator_class()(network=SPEC, params=mt_params(params), seed=seed,
                                fold_inputs={"heads": {"grade": dict(zip(X.index, grade.astype(float)))}}).fit(X, y)
    return time.perf_counter() - t


def hand_fit_mt(X, y, grade, params, seed=0):
    """The same 2-head model and data trained by a plain PyTorch loop: the sum of the heads' weighted cross-entropies."""
    import numpy as np
    import torch

    from radlang.ops.multitask import multitask_module

    t = time.perf_counter()
    vox = [c for c in X.columns if c.startswith("voxel:")]
    tab_cols = [c for c in X.columns if not c.startswith("voxel:")]
    image = torch.from_numpy(X[vox].to_numpy(np.float32).reshape(len(X), 1, *PATCH))
    t_np = X[tab_cols].to_numpy()
    tab = torch.from_numpy(((t_np - t_np.mean(0)) / t_np.std(0)).astype(np.float32))
    ya, yg = torch.from_numpy(np.asarray(y, dtype=np.int64)), torch.from_numpy(np.asarray(grade, dtype=np.int64))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    heads = [{**h, "outputs": 2 if h["kind"] == "binary" else 3} for h in MT_HEADS]
    net = multitask_module(SPEC, [1, *PATCH], N_TAB, heads, params["hidden"], params["dropout"], False, False)
    opt = torch.optim.Adam(net.parameters(), lr=params["lr"])
    ce = torch.nn.CrossEntropyLoss()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(image, tab, ya, yg), batch_size=params["batch"], shuffle=True)
    for _ in range(params["epochs"]):
        net.train()
        for xi, xt, a, g in loader:
            opt.zero_grad(set_to_none=True)
            _, (oa, og) = net(xi, xt)
            loss = 1.0 * ce(oa, a) + 0.5 * ce(og, g)
            loss.backward()
            opt.step()
    torch.set_num_threads(threads)
    return time.perf_counter() - t


def probe(batch, kind="fusion"):
    """One training step's peak resident memory (run in a fresh process) and plan's estimate for it."""
    import gc

    import torch

    from radlang.ops.net_models import fusion_module
    from radlang.ops.networks import training_memory

    def status(field):
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError(field)

    from radlang.ops.dann import dann_module, memory_module

    torch.set_num_threads(1)
    rows = 2 * batch if kind == "dann" else batch        # DANN: a target batch as large as the labelled one
    x, t, y = torch.randn((rows, 1, *PATCH)), torch.randn((batch, N_TAB)), torch.randint(0, 2, (batch,))
    if kind == "segmentation":
        from radlang.ops.multitask import multitask_module, multitask_plan_estimate, segmentation_loss

        heads = [{"name": "malignancy", "kind": "binary", "weight": 1.0, "primary": True, "outputs": 2},
                 {"name": "lesion", "kind": "segmentation", "weight": 1.0, "primary": False, "outputs": 2}]
        est = multitask_plan_estimate(UNET, [1, *PATCH], N_TAB, heads, {**PARAMS, "heads": heads, "combine": "fixed", "task_norm": False}, batch)[1]
        torch.manual_seed(0)
        net = multitask_module(UNET, [1, *PATCH], N_TAB, heads, 32, 0.0, False, False)
        mask = (torch.rand((batch, 1, *PATCH)) > 0.8).float()

        def loss_of():
            _, (oa, seg) = net(x, t)
            return torch.nn.functional.cross_entropy(oa, y) + segmentation_loss(seg, mask)
    elif kind == "multitask":
        from radlang.ops.multitask import multitask_module, multitask_plan_estimate

        heads = [{**h, "outputs": 2 if h["kind"] == "binary" else 3} for h in MT_HEADS]
        est = multitask_plan_estimate(SPEC, [1, *PATCH], N_TAB, heads, mt_params(PARAMS), batch)[1]
        torch.manual_seed(0)
        net = multitask_module(SPEC, [1, *PATCH], N_TAB, heads, 32, 0.0, False, False)
        g = torch.randint(0, 3, (batch,))

        def loss_of():
            _, (oa, og) = net(x, t)
            return torch.nn.functional.cross_entropy(oa, y) + 0.5 * torch.nn.functional.cross_entropy(og, g)
    else:
        with torch.device("meta"):
            meta_net = fusion_module(SPEC, [1, *PATCH], N_TAB, 2, 32, 0.0)
            inputs = (torch.empty((rows, 1, *PATCH)), torch.empty((batch, N_TAB)))
            est = training_memory(*(memory_module(meta_net, *inputs, batch, DANN["domain_hidden"]) if kind == "dann" else (meta_net, inputs)))
        torch.manual_seed(0)
        net = fusion_module(SPEC, [1, *PATCH], N_TAB, 2, 32, 0.0)
        if kind == "dann":
            net = dann_module(net, 3, DANN["domain_hidden"], 0)
        s = torch.randint(0, 3, (rows,))

        def loss_of():
            if kind == "dann":
                label, dom = net(x, t, batch, 0.5)
                return torch.nn.functional.cross_entropy(label, y) + torch.nn.functional.cross_entropy(dom, s)
            return torch.nn.functional.cross_entropy(net(x, t), y)
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    gc.collect()
    before = status("VmRSS")
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    opt.zero_grad()
    loss = loss_of()
    loss.backward()
    opt.step()
    print(json.dumps({"measured": status("VmHWM") - before, "estimate": est["train_bytes"]}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--memory-batch", type=int, default=64)
    ap.add_argument("--probe", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--probe-kind", default="fusion", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.probe is not None:
        return probe(a.probe, a.probe_kind)
    import numpy as np

    X, y = make_data()
    grade = np.random.default_rng(1).integers(0, 3, len(X))
    params = {**PARAMS, "epochs": a.epochs}
    n_src = len(dann_data(X)[1])
    kinds = (("intermediate fusion", "fusion", lambda p: radlang_fit(X, y, p), lambda p: hand_fit(X, y, p), len(X)),
             ("2-head multi-task", "multitask", lambda p: radlang_fit_mt(X, y, grade, p), lambda p: hand_fit_mt(X, y, grade, p), len(X)),
             ("DANN", "dann", lambda p: radlang_dann_fit(X, y, p), lambda p: hand_dann_fit(X, y, p), n_src))
    for label, kind, ours, theirs, n in kinds:
        ours({**params, "epochs": 1})      # warm-up: imports, allocator
        theirs({**params, "epochs": 1})
        rl, hw = [], []
        for _ in range(a.runs):
            rl.append(ours(params))
            hw.append(theirs(params))
        samples = n * a.epochs
        r, h = samples / min(rl), samples / min(hw)
        print(f"{label} training: radlang {r:.1f} samples/s, hand-written {h:.1f} samples/s, ratio {r / h:.3f} (target >= 0.95)")
    for label, kind, *_ in (*kinds, ("segmentation head (multi-task UNet)", "segmentation")):
        runs = []
        for _ in range(3):
            out = subprocess.run([sys.executable, __file__, "--probe", str(a.memory_batch), "--probe-kind", kind],
                                 capture_output=True, text=True, check=True)
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        m = min(runs, key=lambda x: x["measured"])       # the allocator only adds to a step's peak: the smallest probe
        print(f"{label} training memory (batch {a.memory_batch}{' + as many target images' if kind == 'dann' else ''}): "
              f"plan {m['estimate'] / 2**20:.1f} MB, measured peak {m['measured'] / 2**20:.1f} MB, "
              f"ratio {m['estimate'] / m['measured']:.2f} (target 0.7-1.3)")


if __name__ == "__main__":
    main()
