"""Federated networks (`fedavg` of a `cnn` or `multitask` model, radlang/ops/fed_networks.py) and one cohort per site
(`clients:`): exact equivalences on a tiny CNN, the check-time diagnostics, a client cohort with other columns, and a
multi-task network over a site column end to end (test_network_render.py: a fused CNN's run equal to its render)."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("monai")

from radlang.backends.executor import RunError, run_study
from radlang.compiler import compile_source
from radlang.ops.fed_engine import client_seed, federated_rounds, get_weights, set_weights
from radlang.ops.fed_networks import federation_heads, net_factory, net_loss, net_scores, net_update
from radlang.ops.fedavg import fed_params, federated_study
from radlang.ops.multitask import pack_targets
from radlang.ops.net_models import fit_network
from radlang.ops.netio import metrics_json

SEGRESNET = {"arch": "segresnet", "params": {"dims": 3, "in_channels": 1, "out_channels": 2, "init_filters": 4,
                                             "blocks_down": [1, 1], "blocks_up": [1], "norm": "batch", "groups": 1,
                                             "upsample": "nontrainable", "dropout": 0.0}}
HYPER = {"epochs": 30, "batch": 8, "optimizer": "adam", "lr": 1e-2, "weight_decay": 0.0, "schedule": "constant",
         "hidden": 8, "dropout": 0.0, "validation": 0.2, "patience": 5}


def _net(n_tab=0, op="cnn", heads=None):
    return {"op": op, "spec": SEGRESNET, "hyper": dict(HYPER, **({"combine": "fixed", "task_norm": False} if op == "multitask" else {})),
            "shape": [1, 8, 8, 8], "n_image": 512, "n_tab": n_tab, "n_outputs": 2, "heads": heads}


def _site(n, seed, n_tab=0):
    """n cases: 8^3 patches (a bright blob in class 1) and n_tab tabular columns; y the class as [n, 1]."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    img = rng.normal(size=(n, 8, 8, 8))
    img[:, 2:6, 2:6, 2:6] += 1.5 * y[:, None, None, None]
    X = np.column_stack([img.reshape(n, -1), rng.normal(size=(n, n_tab)) + y[:, None]]) if n_tab else img.reshape(n, -1)
    return X, y.astype(float).reshape(-1, 1)


def _params(**kw):
    return fed_params({"strategy": "fedavg", "rounds": 2, "local_epochs": 1, "batch": 0, "model": "cnn", "standardize": "federated",
                       "references": True, **kw})


def test_one_client_one_epoch_full_batch_is_centralised_training():
    """FedAvg of one client, one local epoch on the whole site as one batch, is the `cnn` operator's own training
    (fit_network, no validation split) of one epoch from the same initial weights and seed (1e-7; here exactly)."""
    net = _net(n_tab=2)
    X, y = _site(12, 0, n_tab=2)
    make, loss = net_factory(net), net_loss(net)
    fed = federated_rounds({"only": (X, y)}, make, loss, _params(rounds=1), seed=3, update=net_update(net))
    model = make()
    set_weights(model, fed["initial"])
    image = X[:, :512].astype(np.float32).reshape(12, 1, 8, 8, 8)
    tab = X[:, 512:].astype(np.float32)
    rows = np.arange(12)
    fit_network(model, image, tab, y[:, 0].astype(np.int64), rows, rows[:0], {**HYPER, "epochs": 1, "batch": 12, "validation": 0.0},
                client_seed(3, 1, "only"))
    central = get_weights(model)
    assert len(fed["weights"]) == len(central)
    assert any(not np.array_equal(a, b) for a, b in zip(fed["initial"], central))        # training moved the weights
    for a, b in zip(fed["weights"], central):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-7)


def test_client_order_changes_nothing_and_fedprox_mu_zero_is_fedavg():
    net = _net(n_tab=1)
    clients = {"a": _site(6, 1, 1), "b": _site(8, 2, 1), "c": _site(4, 3, 1)}
    make, loss, update = net_factory(net), net_loss(net), net_update(net)
    p = _params(batch=4)
    one = federated_rounds(clients, make, loss, p, seed=2, update=update)
    two = federated_rounds(dict(reversed(list(clients.items()))), make, loss, p, seed=2, update=update)
    assert all(np.array_equal(x, z) for x, z in zip(one["weights"], two["weights"])) and one["history"] == two["history"]
    prox0 = federated_rounds(clients, make, loss, _params(batch=4, strategy="fedprox", mu=0.0), seed=2, update=update)
    assert all(np.array_equal(x, z) for x, z in zip(one["weights"], prox0["weights"]))
    prox = federated_rounds(clients, make, loss, _params(batch=4, strategy="fedprox", mu=10.0), seed=2, update=update)
    assert not all(np.array_equal(x, z) for x, z in zip(one["weights"], prox["weights"]))   # mu does act
    # the proximal pull keeps the clients nearer the global model they started from
    assert sum(c["drift"] for c in prox["history"][0]["clients"].values()) < sum(c["drift"] for c in one["history"][0]["clients"].values())


def test_a_federated_study_of_a_network_is_deterministic_bytes():
    net = _net(n_tab=1)
    clients = {"a": _site(6, 1, 1), "b": _site(6, 2, 1)}
    test = {"a": _site(6, 4, 1), "b": _site(6, 5, 1)}
    runs = [metrics_json(federated_study(clients, test, "logistic", 1, _params(), [1], net=net)) for _ in range(2)]
    assert runs[0] == runs[1]
    study = json.loads(runs[0])
    assert study["scaling"]["mean"][:512] == [0.0] * 512 and study["scaling"]["sd"][:512] == [1.0] * 512   # images as they are
    assert study["scaling"]["sd"][512] != 1.0                                           # the tabular column: federated
    assert set(study["seeds"][0]["local"]) == {"a", "b"} and 0 <= study["seeds"][0]["federated"]["pooled"] <= 1


def test_multitask_heads_are_fixed_for_the_federation_and_a_missing_target_is_masked():
    heads = [{"name": "m", "kind": "binary", "weight": 1.0, "primary": True},
             {"name": "g", "kind": "multiclass", "weight": 0.5, "primary": False},
             {"name": "age", "kind": "continuous", "weight": 0.5, "primary": False}]
    values = [{"m": {"1": 0.0, "2": 1.0}, "g": {"1": 1.0, "2": 2.0}, "age": {"1": 50.0, "2": 70.0}},
              {"m": {"3": 1.0, "4": 0.0}, "g": {"3": 3.0}, "age": {"3": 60.0, "4": 80.0}}]
    fixed = federation_heads(heads, values)
    assert fixed[1]["classes"] == [1.0, 2.0, 3.0] and fixed[1]["outputs"] == 3            # the union of the sites' grades
    assert fixed[2]["mean"] == 65.0 and fixed[2]["sd"] == pytest.approx(np.std([50, 70, 60, 80], ddof=1))
    y, _ = pack_targets(fixed, values[1], ["3", "4"])
    assert y[0, 1] == 2 and np.isnan(y[1, 1])                                              # case 4 has no grade: masked
    net = _net(op="multitask", heads=fixed)
    clients = {"a": (_site(4, 1)[0], pack_targets(fixed, values[0], ["1", "2"] * 1)[0].repeat(2, axis=0)),
               "b": (_site(4, 2)[0], y.repeat(2, axis=0))}
    fed = federated_rounds(clients, net_factory(net), net_loss(net), _params(model="multitask"), seed=1, update=net_update(net))
    assert all(np.isfinite(w).all() for w in fed["weights"])
    assert net_scores(net)(net_factory(net), fed["weights"], clients["a"][0]).shape == (4,)   # the primary (binary) head's score


PHANTOM = '{{ size: [16, 16, 16], effect: 2.0, seed: {seed}, prefix: "{p}" }}'
NET = ("features img = patches(north) { patch: [8, 8, 8] }\n"
       "network enc = segresnet(dims: 3, in_channels: 1, out_channels: 2) { init_filters: 4, blocks_down: [1, 1], blocks_up: [1], norm: batch }\n")


def _cohorts(names, n=8):
    return "".join(f"cohort {c} = phantom({n}) " + PHANTOM.format(seed=i + 1, p=c[:2]) + "\n" for i, c in enumerate(names))


def _codes(src):
    return [d.code for d in compile_source(src, "<t>").diagnostics if d.is_error]


@pytest.mark.parametrize("body, code", [
    # a model that is not a network
    ("features t = tabular(north)\nmodel m = logistic(t, target: north.outcome)\nfederate f = fedavg(m) { clients: [north.outcome, south.outcome] }", "E541"),
    # the network's own settings given to fedavg
    (NET + "model m = cnn(img, target: north.outcome, network: enc)\nfederate f = fedavg(m) { lr: 0.1, clients: [north.outcome, south.outcome] }", "E542"),
    (NET + "model m = cnn(img, target: north.outcome, network: enc)\nfederate f = fedavg(m, target: north.outcome) { clients: [north.outcome, south.outcome] }", "E542"),
    (NET + "model m = cnn(img, target: north.outcome, network: enc)\nfederate f = fedavg(m) { batch: 1, clients: [north.outcome, south.outcome] }", "E543"),
    # a cohort reused, one client, not an outcome, features of another cohort, tests that do not pair
    ("features t = tabular(north)\nfederate f = fedavg(t) { clients: [north.outcome, south.outcome, north.outcome] }", "E544"),
    ("features t = tabular(north)\nfederate f = fedavg(t) { clients: [north.outcome, south.outcome], tests: [north.outcome, east.outcome] }", "E544"),
    ("features t = tabular(north)\nfederate f = fedavg(t) { clients: [north.outcome] }", "E546"),
    ("features t = tabular(north)\nfederate f = fedavg(t) { clients: [north.outcome, south.image] }", "E547"),
    ("features t = tabular(north)\nfederate f = fedavg(t)", "E547"),
    ("features t = tabular(east)\nfederate f = fedavg(t) { clients: [north.outcome, south.outcome] }", "E548"),
    ("features t = tabular(north)\nfederate f = fedavg(t) { clients: [north.outcome, south.outcome], tests: [east.outcome] }", "E549"),
    # (and `north` has no site column for a federation without `clients`)
    ("features t = tabular(north)\nfederate f = fedavg(t, target: north.outcome) { tests: [east.outcome] }", "E286 E549"),
])
def test_check_time_diagnostics(body, code):
    assert _codes(_cohorts(["north", "south", "east"]) + body + "\n") == code.split()


def test_client_cohorts_with_another_outcome_or_other_columns_are_e545():
    src = ("cohort north = multisite(60) { features: 4, split: train }\ncohort south = multisite(60) { features: 5, split: train }\n"
           "cohort east = multisite(60) { features: 4, outcome: continuous, split: train }\nfeatures t = tabular(north)\n")
    assert _codes(src + "federate f = fedavg(t) { clients: [north.outcome, south.outcome] }\n") == ["E545"]
    assert _codes(src + "federate f = fedavg(t) { clients: [north.outcome, east.outcome] }\n") == ["E545"]
    assert _codes(src.replace("features: 5", "features: 4") + "federate f = fedavg(t) { clients: [north.outcome, south.outcome] }\n") == []


def _study(tmp_path, src):
    path = tmp_path / "s.rad"
    path.write_text(src)
    res = compile_source(src, str(path))
    assert res.ok, [(d.code, d.message) for d in res.diagnostics]
    return res.study


def test_a_client_cohort_whose_features_lack_a_column_names_it(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("case,y,x1,x2\n" + "".join(f"a{i},{i % 2},{i},{i * 0.5}\n" for i in range(8)))
    b.write_text("case,y,x1\n" + "".join(f"b{i},{i % 2},{i}\n" for i in range(8)))
    src = (f'cohort north = table("{a}") {{ id: case, outcome: y as binary }}\ncohort south = table("{b}") {{ id: case, outcome: y as binary }}\n'
           "features t = tabular(north)\nfederate fed = fedavg(t) { clients: [north.outcome, south.outcome], rounds: 1 }\n")
    with pytest.raises(RunError) as e:
        run_study(_study(tmp_path, src), out=tmp_path / "out", workers=1, quiet=True)
    got = [(d.code, d.message) for d in e.value.diagnostics]
    assert [c for c, _ in got] == ["E545"] and "cohort `south`" in got[0][1] and "missing x2" in got[0][1]


def test_a_multitask_model_federated_over_a_site_column_runs(tmp_path):
    """A multi-task network over the sites of one cohort: each site packs its own heads' targets (a continuous head
    standardised with the federation's mean and SD) and the primary head is scored per site."""
    src = ('cohort train = phantom(12) { size: [16, 16, 16], effect: 2.0, sites: 2, seed: 1 }\n'
           'cohort test = phantom(8) { size: [16, 16, 16], effect: 2.0, sites: 2, seed: 2 }\n'
           "features img = patches(train) { patch: [8, 8, 8] }\n"
           "network enc = segresnet(dims: 3, in_channels: 1, out_channels: 2) { init_filters: 4, blocks_down: [1, 1], blocks_up: [1], norm: batch }\n"
           "model m = multitask(img, target: train.outcome, network: enc) { heads: [binary(mal, target: train.outcome), "
           "continuous(age, target: train.clinical, column: age)], combine: uncertainty, hidden: 4 }\n"
           "federate fed = fedavg(m) { rounds: 1, batch: 0, test: test, references: false }\n")
    run_study(_study(tmp_path, src), out=tmp_path / "out", workers=1, quiet=True)
    m = json.loads((tmp_path / "out" / "metrics" / "fed_federated.json").read_text())
    assert m["model"] == "multitask" and m["metric"] == "auc" and sorted(m["seeds"][0]["federated"]["sites"]) == ["site1", "site2"]
    assert m["network"]["n_tab"] == 0 and m["boundary"]["standardisation"] == "nothing"          # no tabular branch
