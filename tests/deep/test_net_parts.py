"""A network model's fold pipeline carries its backbone, loss, optimiser and learning-rate schedule as code (make_cnn_code,
make_dann_code, make_multitask_code, written by models.pipeline_source): the estimator trains with exactly those objects, and one built without them runs the
same generated code, so the two give bit-identical weights. On tiny CPU data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from radlang.ops.dann import make_dann
from radlang.ops.models import pipeline_from_source, pipeline_source, recipe_factories
from radlang.ops.multitask import make_multitask
from radlang.ops.net_models import make_cnn, network_parts_code
from radlang.ops.networks import network_call

SEGRESNET = {"arch": "segresnet", "params": {"dims": 3, "in_channels": 1, "out_channels": 2, "init_filters": 4,
                                             "blocks_down": [1, 1], "blocks_up": [1], "norm": "batch", "groups": 1,
                                             "upsample": "nontrainable", "dropout": 0.0}}
HYPER = {"epochs": 2, "batch": 4, "optimizer": "sgd", "lr": 1e-2, "weight_decay": 1e-4, "schedule": "constant",
         "hidden": 4, "dropout": 0.0, "validation": 0.25, "patience": 2}


def _data(n=16, seed=0):
    rng = np.random.default_rng(seed)
    cols = ["voxel:0:" + ":".join(map(str, i)) for i in np.ndindex(8, 8, 8)]
    X = pd.DataFrame(rng.normal(size=(n, len(cols))), columns=cols, index=pd.Index([f"c{i:02d}" for i in range(n)], name="case_id"))
    X["age"] = rng.normal(size=n)
    return X, np.array([0, 1] * (n // 2))


def _from_source(factory, params, fold_inputs, seed=4):
    """The fold pipeline's estimator, built from pipeline_source's code (as `radlang run` and study.py do)."""
    source = pipeline_source("fp", {"source": "x", "columns": []}, "net", params, seed, factory)
    fold = {"model": fold_inputs, "classes": params["classes"], "inputs": {}, "columns": {}, "branches": None}
    return source, pipeline_from_source(source, "fp", recipe_factories({"source": "x"}, factory), fold).steps[-1][1]


def _digest(weights):
    return {k: np.asarray(v).tobytes() for k, v in weights.items()}


def test_the_fold_pipeline_shows_the_monai_constructor_loss_and_optimiser_and_trains_as_without_them():
    params = {"impute": None, "scale": None, "search": None, "hyper": HYPER, "networks": {"network": SEGRESNET},
              "head": "classification", "classes": 2}
    source, est = _from_source(make_cnn, params, {"outcome": "binary", "patients": {}})
    name, _ = network_call(SEGRESNET)
    assert f"backbone=lambda: monai.networks.nets.{name}(spatial_dims=3," in source
    assert "loss=torch.nn.CrossEntropyLoss()" in source
    assert "optimizer=lambda parameters: torch.optim.SGD(parameters, lr=0.01, momentum=0.99, nesterov=True," in source
    assert "scheduler=lambda optimizer: None" in source      # `schedule: constant`
    assert type(est.backbone()).__name__ == name and isinstance(est.loss, torch.nn.CrossEntropyLoss)
    X, y = _data()
    given = est.fit(X, y)
    built = make_cnn(params, 4, {"outcome": "binary", "patients": {}})
    assert built.backbone is None and built.loss is None and built.optimizer is None and built.scheduler is None
    built.fit(X, y)
    assert _digest(given.weights_) == _digest(built.weights_)
    assert np.array_equal(given.predict_proba(X), built.predict_proba(X))


def test_the_estimator_trains_with_the_optimiser_it_is_given():
    """An optimiser with learning rate 0 leaves every trained parameter at its seeded initial value."""
    params = {"impute": None, "scale": None, "search": None, "hyper": {**HYPER, "validation": 0.0}, "networks": {"network": SEGRESNET},
              "head": "classification", "classes": 2}
    X, y = _data()
    est = make_cnn(params, 4, {"outcome": "binary", "patients": {}}, optimizer=lambda ps: torch.optim.SGD(ps, lr=0.0)).fit(X, y)
    moved = make_cnn(params, 4, {"outcome": "binary", "patients": {}}).fit(X, y)
    still = {k for k, v in est.weights_.items() if "running" not in k and "num_batches" not in k}
    torch.manual_seed(4)        # fit's seeded construction
    fresh = {k: v.numpy() for k, v in est._module().state_dict().items()}
    assert all(np.array_equal(est.weights_[k], fresh[k]) for k in still)
    assert any(not np.array_equal(moved.weights_[k], fresh[k]) for k in still)


def test_a_multitask_pipeline_passes_one_loss_per_head_and_trains_as_without_them():
    heads = [{"name": "grade", "kind": "binary", "weight": 1.0, "target": "train.outcome"},
             {"name": "size", "kind": "continuous", "weight": 0.5, "target": "train.clinical"}]
    hyper = {**HYPER, "heads": heads, "combine": "fixed", "cagrad_c": 0.5, "task_norm": False}
    params = {"impute": None, "scale": None, "search": None, "hyper": hyper, "networks": {"network": SEGRESNET},
              "head": "classification", "classes": 2}
    X, y = _data(seed=1)
    info = {"outcome": "binary", "patients": {}, "heads": {"size": dict(zip(X.index, np.linspace(0, 1, len(X))))}}
    source, est = _from_source(make_multitask, params, info)
    regression = network_parts_code(SEGRESNET, HYPER, "regression")["loss"]
    assert f"losses={{'grade': torch.nn.CrossEntropyLoss(), 'size': {regression}}}" in " ".join(source.split())
    assert list(est.losses) == ["grade", "size"] and isinstance(est.losses["grade"], torch.nn.CrossEntropyLoss)
    given = est.fit(X, y)
    built = make_multitask(params, 4, info).fit(X, y)
    assert _digest(given.weights_) == _digest(built.weights_)


def _lr_per_epoch(scheduler, lr, epochs):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    sched, out = scheduler(opt), []
    for _ in range(epochs):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


@pytest.mark.parametrize(("factory", "schedule", "expected"), [
    (make_cnn, "cosine", "scheduler=lambda optimizer: torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=3)"),
    (make_cnn, "step", "scheduler=lambda optimizer: torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.1)"),
    (make_dann, "ganin", ("scheduler=lambda optimizer: torch.optim.lr_scheduler.LambdaLR(optimizer, "
                          "lr_lambda=lambda epoch: 1 / (1 + 10 * epoch / 3) ** 0.75)")),
])
def test_the_fold_pipeline_states_the_learning_rate_schedule_it_trains_with(factory, schedule, expected):
    """The schedule is a keyword of the estimator in the pipeline's text, the estimator built from that text holds it,
    it anneals the rate as the schedule says (Ganin et al.'s lr / (1 + 10 p)^0.75, p = epoch / epochs), and training
    with it gives the weights an estimator built without it gets (which runs the same generated code)."""
    hyper = {**HYPER, "epochs": 3, "schedule": schedule, "patience": 3, "domain_hidden": 4, "reversal": "ganin",
             "target_unlabelled": False}
    params = {"impute": None, "scale": None, "search": None, "hyper": hyper, "networks": {"network": SEGRESNET},
              "head": "classification", "classes": 2}
    X, y = _data()
    info = {"outcome": "binary", "patients": {}, "sites": {c: f"s{i % 2}" for i, c in enumerate(X.index)}}
    source, est = _from_source(factory, params, info)
    assert expected in " ".join(source.split()).replace("( ", "(")
    if schedule == "ganin":
        assert _lr_per_epoch(est.scheduler, 0.01, 3) == [0.01 * (1 / (1 + 10 * e / 3) ** 0.75) for e in range(3)]   # LambdaLR: lr x factor
    given = est.fit(X, y)
    built = factory(params, 4, info)
    assert built.scheduler is None
    built.fit(X, y)
    assert _digest(given.weights_) == _digest(built.weights_)


def test_the_estimator_trains_with_the_schedule_it_is_given():
    """A schedule that sets the rate to 0 from the first step leaves every trained parameter at its seeded initial value,
    although the optimiser given has a rate of 0.01."""
    params = {"impute": None, "scale": None, "search": None, "hyper": {**HYPER, "validation": 0.0}, "networks": {"network": SEGRESNET},
              "head": "classification", "classes": 2}
    X, y = _data()
    est = make_cnn(params, 4, {"outcome": "binary", "patients": {}},
                   scheduler=lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, lambda epoch: 0.0)).fit(X, y)
    still = {k for k, v in est.weights_.items() if "running" not in k and "num_batches" not in k}
    torch.manual_seed(4)        # fit's seeded construction
    fresh = {k: v.numpy() for k, v in est._module().state_dict().items()}
    assert all(np.array_equal(est.weights_[k], fresh[k]) for k in still)
