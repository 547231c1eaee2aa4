"""Exact equivalences of the federated engine (radlang/ops/fed_engine.py)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from radlang.ops.fed_engine import (
    fed_loss,
    fed_model,
    federated_rounds,
    get_weights,
    set_weights,
    stop_message,
    weighted_average,
)
from radlang.ops.fedavg import fed_params


def _data(n, p=4, seed=0, kind="logistic"):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    if kind == "cox":
        return X, np.column_stack([rng.exponential(100.0, n) + 1.0, rng.random(n) < 0.6]).astype(float)
    return X, (rng.random(n) < 1 / (1 + np.exp(-X[:, 0]))).astype(float).reshape(-1, 1)


def _params(**kw):
    return fed_params({"strategy": "fedavg", "rounds": 4, "local_epochs": 1, "batch": 0, "lr": 0.1, **kw})


@pytest.mark.parametrize("kind", ["logistic", "cox", "linear"])
def test_one_client_full_batch_fedavg_is_centralised_training(kind):
    """One client, one local epoch per round, the whole site as one batch: R rounds of FedAvg are R epochs of
    full-batch gradient descent on the pooled data, written here as a plain torch loop (1e-7)."""
    X, y = _data(40, kind=kind)
    if kind == "linear":
        y = X @ np.array([[1.0], [-2.0], [0.5], [0.0]]) + 0.1
    make, loss = fed_model(kind, 4, 1), fed_loss(kind, 1)
    fed = federated_rounds({"only": (X, y)}, make, loss, _params(), seed=5)
    torch.manual_seed(5)
    model = make()
    set_weights(model, fed["initial"])
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(4):
        opt.zero_grad()
        loss(model(torch.as_tensor(X)), torch.as_tensor(y)).backward()
        opt.step()
    for a, b in zip(fed["weights"], get_weights(model)):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-7)


def _sites(sizes, kind="logistic"):
    return {f"s{i}": _data(n, seed=i + 1, kind=kind) for i, n in enumerate(sizes)}


def test_fedprox_with_mu_zero_is_fedavg():
    make, loss = fed_model("cox", 4, 1), fed_loss("cox", 1)
    clients = _sites([30, 20, 45], "cox")
    a = federated_rounds(clients, make, loss, _params(batch=8), seed=2)
    b = federated_rounds(clients, make, loss, _params(strategy="fedprox", mu=0.0, batch=8), seed=2)
    assert all(np.array_equal(x, z) for x, z in zip(a["weights"], b["weights"]))
    c = federated_rounds(clients, make, loss, _params(strategy="fedprox", mu=1.0, batch=8), seed=2)
    assert not all(np.array_equal(x, z) for x, z in zip(a["weights"], c["weights"]))   # mu does act


def test_equal_client_sizes_weighted_average_is_the_plain_mean():
    rng = np.random.default_rng(0)
    results = [([rng.normal(size=(2, 3)), rng.normal(size=2)], 17) for _ in range(4)]
    avg = weighted_average(results)
    for i, layer in enumerate(avg):
        np.testing.assert_allclose(layer, np.mean([w[i] for w, _ in results], axis=0), rtol=0, atol=1e-15)


@pytest.mark.parametrize("strategy", ["fedavg", "fedadam"])
def test_client_order_does_not_change_the_result(strategy):
    make, loss = fed_model("logistic", 4, 1), fed_loss("logistic", 1)
    clients = _sites([25, 31, 12, 40])
    p = _params(strategy=strategy, batch=5, fraction=0.75, min_clients=2)
    a = federated_rounds(clients, make, loss, p, seed=9)
    b = federated_rounds(dict(reversed(list(clients.items()))), make, loss, p, seed=9)
    assert all(np.array_equal(x, z) for x, z in zip(a["weights"], b["weights"]))
    assert a["history"] == b["history"]
    assert [sorted(h["clients"]) for h in a["history"]] != [sorted(clients)] * 4   # the fraction did sample


def test_a_crashing_client_is_named_or_left_out_as_min_clients_allows():
    make, loss = fed_model("logistic", 4, 1), fed_loss("logistic", 1)
    clients = _sites([20, 20, 20])
    X, y = clients["s1"]
    X = X.copy()
    X[0, 0] = np.inf                      # its local training diverges in round 1
    clients["s1"] = (X, y)
    stopped = federated_rounds(clients, make, loss, _params(), seed=1)["stopped"]
    assert stopped["round"] == 1 and list(stopped["failed"]) == ["s1"] and (stopped["ok"], stopped["need"]) == (2, 3)
    assert stop_message(stopped).startswith("round 1: site `s1`: FloatingPointError: local training diverged")
    ok = federated_rounds(clients, make, loss, _params(min_clients=2), seed=1)
    assert [sorted(h["clients"]) for h in ok["history"]] == [["s0", "s2"]] * 4
    assert all(list(h["failed"]) == ["s1"] for h in ok["history"])
