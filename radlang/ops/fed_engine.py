"""The federated engine: local client updates, server aggregation (FedAvg, FedProx, FedAdam, FedYogi, FedAdagrad)
and the in-process simulation of the rounds. It is model-agnostic: a model is a zero-argument factory returning a
torch module plus a loss `loss(output, y) -> scalar tensor`, so any torch network (a classifier, a fusion or a
multi-task model) plugs in the same way as the linear, logistic and Cox models of `fed_model`.

Every function is self-contained (radlang/registry.py): the renderer inlines them into the rendered script, and
the Flower app that `radlang render --target flower` emits carries the same source, so the simulation and a
deployment compute the same numbers. The server formulas are Flower's (flwr.server.strategy.fedopt and its
subclasses, Reddi et al. 2021, "Adaptive Federated Optimization"); tests/federated/test_strategies.py holds them
equal to Flower's own strategies.
"""

from __future__ import annotations


def fed_model(kind, n_features, n_outputs):
    """A zero-argument factory of the torch module of a federated model (float64, so two targets agree to 1e-12):
    `linear` (regression) and `logistic` (binary: one logit; multiclass: one per class) are affine maps,
    `cox` a linear risk score without intercept (the partial likelihood has none)."""
    def make():
        import torch

        return torch.nn.Linear(int(n_features), int(n_outputs), bias=kind != "cox").double()

    return make


def fed_loss(kind, n_outputs):
    """The training loss of a federated model: `linear` mean squared error, `logistic` binary / multiclass
    cross-entropy, `cox` the negative Breslow partial log-likelihood per event (FLamby's baseline loss for
    Fed-TCGA-BRCA). For `cox`, y is [time, event]; a batch without events contributes 0."""
    def loss(out, y):
        import torch

        if kind == "linear":
            return torch.mean((out.view(-1) - y.view(-1)) ** 2)
        if kind == "logistic":
            if int(n_outputs) == 1:
                return torch.nn.functional.binary_cross_entropy_with_logits(out.view(-1), y.view(-1))
            return torch.nn.functional.cross_entropy(out, y.view(-1).long())
        order = torch.argsort(y[:, 0], descending=True, stable=True)
        risk, event = out.view(-1)[order], y[order, 1]
        log_at_risk = torch.logcumsumexp(risk, 0)
        return -torch.sum((risk - log_at_risk) * event) / torch.clamp(torch.sum(event), min=1.0)

    return loss


def get_weights(model):
    """The model's state as a list of float64 numpy arrays (state_dict order: parameters and buffers)."""
    return [v.detach().cpu().numpy().astype("float64", copy=True) for v in model.state_dict().values()]


def set_weights(model, weights):
    import torch

    keys = list(model.state_dict().keys())
    model.load_state_dict({k: torch.as_tensor(w).to(model.state_dict()[k].dtype) for k, w in zip(keys, weights)})


def client_seed(seed, rnd, site):
    """The seed of one client's update in one round: from the study seed, the round and the site's name (never its
    position), so the order in which clients are listed does not change anything."""
    import zlib

    return zlib.crc32(f"{int(seed)}:{int(rnd)}:{site}".encode()) & 0x7FFFFFFF


def client_update(make, loss_fn, weights, X, y, params, seed):
    """One client's local training from the global `weights` on its own cases only: `local_epochs` epochs of SGD
    (`lr`) over mini-batches of `batch` cases (0: the whole site), in a seeded order; with `strategy: fedprox` the
    proximal term mu/2 * ||w - w_global||^2 is added to every batch loss (Li et al. 2020).
    Returns {"weights", "n", "loss"}: the loss is the mean training loss of the last local epoch."""
    import numpy as np
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(int(seed))
    model = make()
    set_weights(model, weights)
    anchor = {k: v.detach().clone() for k, v in model.named_parameters()}
    opt = torch.optim.SGD(model.parameters(), lr=float(params["lr"]))
    Xt = torch.as_tensor(np.asarray(X, dtype=np.float64))
    yt = torch.as_tensor(np.asarray(y, dtype=np.float64))
    n = len(Xt)
    bs = int(params.get("batch") or 0) or n
    prox = params["strategy"] == "fedprox"
    mu = float(params.get("mu") or 0.0)
    rng = np.random.default_rng(int(seed))
    mean_loss = float("nan")
    for _ in range(int(params["local_epochs"])):
        order = rng.permutation(n) if bs < n else np.arange(n)
        total = 0.0
        for start in range(0, n, bs):
            idx = torch.as_tensor(order[start:start + bs])
            loss = loss_fn(model(Xt[idx]), yt[idx])
            if prox:
                loss = loss + mu / 2.0 * sum(torch.sum((p - anchor[k]) ** 2) for k, p in model.named_parameters())
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        mean_loss = total / n
    out = get_weights(model)
    if not (np.isfinite(mean_loss) and all(np.isfinite(w).all() for w in out)):
        raise FloatingPointError(f"local training diverged (last epoch's loss {mean_loss})")
    return {"weights": out, "n": n, "loss": mean_loss}


def weighted_average(results):
    """FedAvg's aggregate: the average of the clients' weights weighted by their number of cases (Flower's
    `flwr.server.strategy.aggregate.aggregate`). results: [(weights, n)] in the order of the sites' names."""
    from functools import reduce

    import numpy as np

    total = sum(n for _, n in results)
    return [reduce(np.add, layer) / total for layer in zip(*[[w * n for w in ws] for ws, n in results])]


def server_update(strategy, current, average, state, rnd, params):
    """The server's new global weights from the clients' weighted average. fedavg / fedprox: the average itself;
    fedadam, fedyogi, fedadagrad: a server optimiser step on the pseudo-gradient delta = average - current, as
    in Flower (FedOpt: eta, beta_1, beta_2, tau; FedAdam's bias-corrected eta uses round `rnd`, counted from 1).
    Returns (new weights, new state {"m": [...], "v": [...]})."""
    import numpy as np

    if strategy in ("fedavg", "fedprox"):
        return [np.array(w, dtype=np.float64) for w in average], state
    eta, tau = float(params["server_lr"]), float(params["tau"])
    b1, b2 = float(params["beta_1"]), float(params["beta_2"])
    delta = [a - c for a, c in zip(average, current)]
    m = state.get("m") or [np.zeros_like(d) for d in delta]
    v = state.get("v") or [np.zeros_like(d) for d in delta]
    m = [np.multiply(b1, x) + (1 - b1) * d for x, d in zip(m, delta)]
    if strategy == "fedadagrad":
        v = [x + np.multiply(d, d) for x, d in zip(v, delta)]
    elif strategy == "fedyogi":
        v = [x - (1.0 - b2) * np.multiply(d, d) * np.sign(x - np.multiply(d, d)) for x, d in zip(v, delta)]
    else:
        v = [b2 * x + (1 - b2) * np.multiply(d, d) for x, d in zip(v, delta)]
    if strategy == "fedadam":
        eta = eta * np.sqrt(1 - np.power(b2, rnd + 1.0)) / (1 - np.power(b1, rnd + 1.0))
    new = [c + eta * x / (np.sqrt(z) + tau) for c, x, z in zip(current, m, v)]
    return new, {"m": m, "v": v}


def pick_clients(sites, rnd, params, seed):
    """The sites taking part in round `rnd`: all of them, or with `fraction` < 1 a seeded sample of
    max(min_clients, ceil(fraction * sites)), listed by name."""
    import math

    import numpy as np

    sites = sorted(sites)
    frac = float(params.get("fraction") or 1.0)
    if frac >= 1.0:
        return sites
    k = max(int(params.get("min_clients") or 1), math.ceil(frac * len(sites)))
    rng = np.random.default_rng([int(seed), int(rnd)])
    return sorted(rng.choice(sites, size=min(k, len(sites)), replace=False).tolist())


def weight_distance(a, b):
    import numpy as np

    return float(np.sqrt(sum(float(np.sum((x - y) ** 2)) for x, y in zip(a, b))))


def federated_rounds(clients, make, loss_fn, params, seed, train_round=None, clock=None, update=None):
    """Run the rounds: each selected client trains on its own data from the global weights, the server averages by
    case count (sites in name order) and applies the strategy. `train_round(sites, weights, rnd) -> (results, failed)`
    trains one round's clients (by default `update` on `clients[site]`, one site after another, each from the
    same global weights; a Flower ServerApp sends them messages instead); `update` is `client_update` unless given
    (a network's, radlang/ops/fed_networks.py `net_update`, has the same interface); results: {site: {"weights", "n", "loss"}},
    failed: {site: error}. A failed client is named; the round goes on without it while at least `min_clients`
    (default: every selected client) succeed; otherwise the rounds stop there and the result holds "stopped":
    {round, failed, ok, need} (see `stop_message`).

    clients: {site: (X, y)} (only the names are read when `train_round` is given). Returns {"weights": the final
    global weights, "initial": the initial ones, "history": per round the sites that failed and, per client, {n,
    loss, drift} with drift = ||w_k - w_global|| to the round's new global model}. `clock` (a dict), when given,
    collects the seconds spent in the clients' training ("local") and in everything else ("server")."""
    import time

    import torch

    def train_here(sites, weights, rnd):
        results, failed = {}, {}
        for site in sites:
            X, y = clients[site]
            try:
                results[site] = (update or client_update)(make, loss_fn, weights, X, y, params, client_seed(seed, rnd, site))
            except Exception as e:  # noqa: BLE001  a client's crash is reported by site; the round decides whether to go on
                failed[site] = f"{type(e).__name__}: {e}"
        return results, failed

    train_round = train_round or train_here
    torch.manual_seed(int(seed))
    current = get_weights(make())
    initial = [w.copy() for w in current]
    state, history = {}, []
    t_local = 0.0
    t0 = time.perf_counter()
    for rnd in range(1, int(params["rounds"]) + 1):
        chosen = pick_clients(list(clients), rnd, params, seed)
        need = int(params.get("min_clients") or len(chosen))
        t1 = time.perf_counter()
        results, failed = train_round(chosen, current, rnd)
        t_local += time.perf_counter() - t1
        if len(results) < need:
            return {"weights": current, "initial": initial, "history": history,
                    "stopped": {"round": rnd, "failed": dict(sorted(failed.items())), "ok": len(results), "need": need}}
        average = weighted_average([(results[s]["weights"], results[s]["n"]) for s in sorted(results)])
        current, state = server_update(params["strategy"], current, average, state, rnd, params)
        history.append({"round": rnd, "failed": dict(sorted(failed.items())),
                        "clients": {s: {"n": results[s]["n"], "loss": results[s]["loss"],
                                        "drift": weight_distance(results[s]["weights"], current)} for s in sorted(results)}})
    if clock is not None:
        clock["local"] = clock.get("local", 0.0) + t_local
        clock["server"] = clock.get("server", 0.0) + (time.perf_counter() - t0 - t_local)
    return {"weights": current, "initial": initial, "history": history}


def stop_message(stopped):
    """The sentence naming the round that could not go on, and its failed sites with their errors."""
    what = "; ".join(f"site `{s}`: {m}" for s, m in sorted(stopped["failed"].items()))
    return f"round {stopped['round']}: {what} ({stopped['ok']} client(s) succeeded, {stopped['need']} needed)"


def site_moments(X):
    """What a site shares to standardise features without pooling cases: its case count and the per-feature sums
    of x and x^2 (aggregate statistics only)."""
    import numpy as np

    X = np.asarray(X, dtype=np.float64)
    return {"n": len(X), "sum": X.sum(axis=0).tolist(), "sumsq": (X ** 2).sum(axis=0).tolist()}


def pooled_scaling(moments):
    """The federation-wide mean and standard deviation of every feature from the sites' moments (a constant
    feature gets sd 1), applied by every client to its own cases."""
    import numpy as np

    n = sum(m["n"] for m in moments)
    s = np.sum([m["sum"] for m in moments], axis=0)
    q = np.sum([m["sumsq"] for m in moments], axis=0)
    mean = s / n
    var = np.maximum(q / n - mean ** 2, 0.0) * n / max(n - 1, 1)
    sd = np.sqrt(var)
    sd[sd < 1e-12] = 1.0
    return mean, sd


def predict_scores(make, weights, X):
    """The model's score for each case: the linear predictor (risk for `cox`, logit for binary `logistic`) as a
    1-D array, or (cases x classes) logits for a multiclass model."""
    import numpy as np
    import torch

    model = make()
    set_weights(model, weights)
    with torch.no_grad():
        out = model(torch.as_tensor(np.asarray(X, dtype=np.float64))).numpy()
    return out[:, 0] if out.shape[1] == 1 else out


def score_metric(kind, y, scores):
    """The test metric of a federated model: `cox` the C-index (lifelines `concordance_index`, risk as the negated
    prediction), `logistic` the AUC (one-vs-rest for several classes), `linear` the RMSE. None when undefined
    (a test set without events, or with one class)."""
    import numpy as np

    y = np.asarray(y, dtype=np.float64)
    if kind == "cox":
        from lifelines.utils import concordance_index

        if y[:, 1].sum() == 0:
            return None
        return float(concordance_index(y[:, 0], -scores, y[:, 1]))
    if kind == "logistic":
        from sklearn.metrics import roc_auc_score

        labels = np.unique(y)
        if len(labels) < 2:
            return None
        if np.ndim(scores) == 1:
            return float(roc_auc_score(y, scores))
        p = np.exp(scores - scores.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        return float(roc_auc_score(y, p[:, labels.astype(int)] / p[:, labels.astype(int)].sum(axis=1, keepdims=True), multi_class="ovr"))
    return float(np.sqrt(np.mean((y.reshape(-1) - np.asarray(scores).reshape(-1)) ** 2)))


def federation_scaling(moments, skip, standardize, width):
    """The mean and SD every client standardises its X with: the first `skip` columns (a network's image columns)
    unchanged (mean 0, SD 1), the other `width` from the sites' moments (`pooled_scaling`) with `standardize:
    federated`, else unchanged too."""
    import numpy as np

    if standardize == "federated" and width:
        mean, sd = pooled_scaling(moments)
    else:
        mean, sd = np.zeros(width), np.ones(width)
    return np.concatenate([np.zeros(skip), mean]), np.concatenate([np.ones(skip), sd])
