"""The server formulas of radlang's federated engine equal Flower's own strategies (flwr.server.strategy): the same
client results over several rounds give the same global weights (FedAvg's weighted average, FedAdam, FedYogi, FedAdagrad)."""

import numpy as np
import pytest

from radlang.ops.fed_engine import server_update, weighted_average
from radlang.ops.fedavg import fed_params

flwr = pytest.importorskip("flwr")


def _flower(strategy, w0, params):
    from flwr.common import ndarrays_to_parameters
    from flwr.server.strategy import FedAdagrad, FedAdam, FedAvg, FedYogi

    init = ndarrays_to_parameters(w0)
    if strategy == "fedavg":
        return FedAvg(initial_parameters=init)
    cls = {"fedadam": FedAdam, "fedyogi": FedYogi, "fedadagrad": FedAdagrad}[strategy]
    kw = {"eta": params["server_lr"], "tau": params["tau"]}
    if strategy != "fedadagrad":
        kw.update(beta_1=params["beta_1"], beta_2=params["beta_2"])
    return cls(initial_parameters=init, **kw)


def _fit_res(weights, n):
    from flwr.common import Code, FitRes, Status, ndarrays_to_parameters

    return FitRes(status=Status(code=Code.OK, message=""), parameters=ndarrays_to_parameters(weights), num_examples=n, metrics={})


@pytest.mark.parametrize("strategy", ["fedavg", "fedadam", "fedyogi", "fedadagrad"])
def test_server_update_equals_flower(strategy):
    from flwr.common import parameters_to_ndarrays

    rng = np.random.default_rng(3)
    w0 = [rng.normal(size=(1, 5)), rng.normal(size=(1,))]
    params = fed_params({"strategy": strategy})
    flower = _flower(strategy, w0, params)
    ours, state = [w.copy() for w in w0], {}
    for rnd in range(1, 6):
        sizes = [30, 12, 55]
        clients = [[w + rng.normal(scale=0.1, size=w.shape) for w in ours] for _ in sizes]
        got, _ = flower.aggregate_fit(rnd, [(None, _fit_res(c, n)) for c, n in zip(clients, sizes)], [])
        flower_w = parameters_to_ndarrays(got)
        ours, state = server_update(strategy, ours, weighted_average(list(zip(clients, sizes))), state, rnd, params)
        for a, b in zip(ours, flower_w):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


def test_fed_params_takes_flowers_defaults():
    """The defaults of the server optimisers are Flower's (FedAdam eta 0.1, FedYogi eta 0.01 and tau 1e-3, ...)."""
    from flwr.server.strategy import FedAdagrad, FedAdam, FedYogi

    w0 = [np.zeros(2)]
    from flwr.common import ndarrays_to_parameters

    for name, cls in (("fedadam", FedAdam), ("fedyogi", FedYogi), ("fedadagrad", FedAdagrad)):
        s = cls(initial_parameters=ndarrays_to_parameters(w0))
        p = fed_params({"strategy": name})
        assert (p["server_lr"], p["beta_1"], p["beta_2"], p["tau"]) == (s.eta, s.beta_1, s.beta_2, s.tau), name
