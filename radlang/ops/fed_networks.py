"""Torch networks in the federated engine (radlang/ops/fed_engine.py): a `cnn` model (an image backbone, adaptive
pooling, an MLP head, with an optional tabular branch: intermediate fusion) or a `multitask` model (one backbone,
named heads) trained by `fedavg` across sites.

Nothing about the networks is written here: the modules are the operators' own factories (`fusion_module`,
radlang/ops/net_models.py; `multitask_module`, radlang/ops/multitask.py), the losses theirs (cross-entropy;
`head_losses` with `multitask_backward`'s loss combination), and a client's local epochs are `fit_network`'s (the
same training loop, optimiser and schedule as a centralised fit, without its inner validation split). This module
only adapts them to the engine's interface: a site's cases are one matrix X (the patch's voxels, then the tabular
columns) and a target matrix y, and a client update is `update(make, loss_fn, weights, X, y, params, seed)`.

`net` is a plain dict (so the Flower app and the rendered script can carry it): {"op": "cnn" | "multitask",
"spec": the network's {arch, params}, "hyper": the model's settings, "shape": [C, *spatial] of the patch,
"n_image": voxel columns, "n_tab": tabular columns, "n_outputs": classes (cnn), "heads": the multi-task heads with
their columns, classes and standardisation fixed for the whole federation (multitask)}.

Every function is self-contained (radlang/registry.py).
"""

from __future__ import annotations

from radlang.ops.fed_engine import (
    client_update,
    fed_loss,
    fed_model,
    get_weights,
    pooled_scaling,
    predict_scores,
    set_weights,
    site_moments,
)
from radlang.ops.multitask import head_losses, multitask_backward, multitask_module
from radlang.ops.net_models import fit_network, fusion_module
from radlang.ops.netio import batched_outputs


def net_factory(net):
    """A zero-argument factory of the federated network: the `cnn` operator's fusion module or the `multitask`
    operator's multi-task module, built from the model's own settings."""
    def make():
        p = net["hyper"]
        if net["op"] == "multitask":
            return multitask_module(net["spec"], net["shape"], net["n_tab"], net["heads"], p["hidden"], p["dropout"],
                                    p["task_norm"], p["combine"] == "uncertainty")
        return fusion_module(net["spec"], net["shape"] if net["n_image"] else None, net["n_tab"], net["n_outputs"],
                             p["hidden"], p["dropout"])

    return make


def net_loss(net):
    """The network's training loss as the engine calls it, loss(output, target): `cnn` the mean cross-entropy of the
    class index; `multitask` the heads' losses (masked where a head's target is missing) with the shared vector, for
    `multitask_backward` to combine."""
    def loss(out, target):
        import torch

        if net["op"] == "multitask":
            return head_losses(out[1], target, net["heads"]), out[0]
        return torch.nn.functional.cross_entropy(out, target)

    return loss


def net_arrays(net, X):
    """The image batch [N, C, *spatial] (float32) and the tabular batch [N, n_tab] (float32, or None) of a site's X."""
    import numpy as np

    X = np.asarray(X)
    k = int(net["n_image"])
    image = X[:, :k].astype(np.float32).reshape((len(X),) + tuple(int(v) for v in net["shape"])) if k else None
    tab = X[:, k:].astype(np.float32) if int(net["n_tab"]) else None
    return image, tab


def net_target(net, y):
    """The training target of fit_network: the class index (int64) for `cnn`, the packed heads' targets (float32,
    NaN where missing) for `multitask`."""
    import numpy as np

    y = np.asarray(y)
    return y.astype(np.float32) if net["op"] == "multitask" else y[:, 0].astype(np.int64)


def proximal_backward(model, mu, backward=None):
    """A training step's backward pass with FedProx's proximal term mu/2 * ||w - w_global||^2 (Li et al. 2020), w_global
    the weights the local training started from: after the model's own backward (`backward`, or loss.backward()) each
    parameter's gradient gets mu * (w - w_global). Returns the loss with the proximal term, as reported."""
    anchor = [p.detach().clone() for p in model.parameters()]

    def step(out):
        import torch

        loss = backward(out) if backward is not None else out
        if backward is None:
            out.backward()
        prox = 0.0
        with torch.no_grad():
            for p, a in zip(model.parameters(), anchor):
                if p.grad is not None:
                    p.grad.add_(p - a, alpha=float(mu))
                prox += float(torch.sum((p - a) ** 2))
        return loss.detach() + float(mu) / 2.0 * prox

    return step


def net_update(net):
    """The client update of a federated network, with client_update's interface: from the global `weights`, the
    model's own training loop (fit_network: its optimiser, learning rate and schedule) for `local_epochs` epochs over
    the site's cases in mini-batches of `batch` (0: the whole site), no early stopping; FedProx adds the proximal
    gradient. Returns {"weights", "n", "loss"} (the loss of the last local epoch)."""
    def update(make, loss_fn, weights, X, y, params, seed):
        import numpy as np
        import torch

        model = make()
        set_weights(model, weights)
        n = len(X)
        image, tab = net_arrays(net, X)
        target = net_target(net, y)
        local = {**net["hyper"], "epochs": int(params["local_epochs"]), "batch": int(params.get("batch") or 0) or n,
                 "validation": 0.0}
        backward, score = None, None
        if net["op"] == "multitask":
            w = [h["weight"] for h in net["heads"]]
            backward = multitask_backward(model, net["hyper"]["combine"], w, net["hyper"]["cagrad_c"])

            def score(out, tgt):
                return (torch.tensor([float(v) for v in w]) * torch.stack(head_losses(out[1], tgt, net["heads"]))).sum()
        if params["strategy"] == "fedprox":
            backward = proximal_backward(model, float(params.get("mu") or 0.0), backward)
        rows = np.arange(n)
        _, history = fit_network(model, image, tab, target, rows, rows[:0], local, seed, loss_fn=loss_fn, backward=backward, score=score)
        out = get_weights(model)
        loss = history[-1]["loss"]
        if not (np.isfinite(loss) and all(np.isfinite(v).all() for v in out)):
            raise FloatingPointError(f"local training diverged (last epoch's loss {loss})")
        return {"weights": out, "n": n, "loss": loss}

    return update


def net_scores(net):
    """predict(make, weights, X) -> the score of each case, as score_metric reads it: a binary model's logit of
    class 1 against class 0, a multiclass model's logits, a survival head's log relative hazard (`multitask`: the
    primary head's). One intra-op thread, batches of 64, evaluation mode."""
    def predict(make, weights, X):
        model = make()
        set_weights(model, weights)
        model.eval()
        image, tab = net_arrays(net, X)
        primary = next((k for k, h in enumerate(net.get("heads") or []) if h["primary"]), None)

        def outputs(xi, xt):
            o = model(xi, xt)
            return o[1][primary] if primary is not None else o

        out = batched_outputs(outputs, image, tab, len(X))
        if out.shape[1] == 1:
            return out[:, 0]
        return out[:, 1] - out[:, 0] if out.shape[1] == 2 else out

    return predict


def federation_heads(heads, site_values):
    """The multi-task heads fixed for the whole federation from what each site shares: a classification head's
    classes (the union of the sites' labels), a continuous head's mean and SD (from each site's count and sums of the
    values it has). site_values: [{head: {case id: value}}] per site. Returns the heads with `col` and `outputs`."""
    import numpy as np

    out = []
    for h in heads:
        h = dict(h)
        vals = [np.asarray(list(v.get(h["name"], {}).values()), dtype=np.float64) for v in site_values]
        if h["kind"] == "multiclass":
            h["classes"] = sorted({float(x) for v in vals for x in v})
        elif h["kind"] == "binary":
            h["classes"] = [0.0, 1.0]
        elif h["kind"] == "continuous":
            mean, sd = pooled_scaling([site_moments(v.reshape(-1, 1)) for v in vals if len(v)])
            h["mean"], h["sd"] = float(mean[0]), float(sd[0])
        out.append(h)
    col = 0
    for h in out:
        h["col"] = col
        col += 2 if h["kind"] == "survival" else 1
        h["outputs"] = 1 if h["kind"] in ("survival", "continuous") else max(len(h["classes"]), 2)
    return out


def engine_parts(kind, n_features, n_outputs, net=None):
    """(make, loss, update, predict) of a federated model: a network's (`net`) or the linear model of `kind`
    (fed_model, fed_loss, client_update, predict_scores). The simulation and both Flower apps build them here."""
    if net:
        return net_factory(net), net_loss(net), net_update(net), net_scores(net)
    return fed_model(kind, n_features, n_outputs), fed_loss(kind, n_outputs), client_update, predict_scores
