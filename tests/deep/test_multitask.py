"""Multi-task network models (`multitask`): invariants of the loss combinations and the masked heads, on tiny CPU data.

- PCGrad, UPGrad and DualProj on two identical tasks are plain training on their (weighted) sum, CAGrad on (1 + c)/2 of
  each: the two shared gradients are equal, g1 = g2 = g;
  PCGrad projects a task gradient only off one it conflicts with (g_i . g_j < 0), and g . g >= 0, so it returns
  g1 + g2 = 2g, the shared gradient of L1 + L2; each head's own parameters get its own loss's gradient in both;
- torchjd's own UPGrad example (its documented Jacobian and aggregation) holds through radlang's training step;
- uncertainty weighting with the log-variances frozen is `fixed` with weights exp(-s_k)/2 (bit-identical weights);
- a head with missing targets gives the gradient of that head's loss on the other cases, with every case still
  training the other heads (the case is not dropped);
- the Cox head's loss is the negative partial log-likelihood lifelines maximises (Efron's ties);
- two fits give bit-identical weights and predictions; the fitted model survives skops' save and load;
- compile-time and data diagnostics (E291-E295, E345, E536, E537).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
import torch

from radlang.ops.multitask import (
    head_losses,
    multitask_backward,
    multitask_estimator_class,
    multitask_fold_data,
    multitask_module,
    pack_targets,
)
from radlang.ops.netio import train_step

SEGRESNET = {"arch": "segresnet", "params": {"dims": 3, "in_channels": 1, "out_channels": 2, "init_filters": 4,
                                             "blocks_down": [1, 1], "blocks_up": [1], "norm": "batch", "groups": 1,
                                             "upsample": "nontrainable", "dropout": 0.0}}
PARAMS = {"epochs": 3, "batch": 4, "optimizer": "adam", "lr": 1e-2, "weight_decay": 0.0, "schedule": "constant",
          "hidden": 8, "dropout": 0.0, "validation": 0.25, "patience": 2, "combine": "fixed", "task_norm": False, "cagrad_c": 0.5}
SHAPE = [1, 8, 8, 8]


def voxel_table(images, ids):
    names = ["voxel:" + ":".join(map(str, i)) for i in np.ndindex(*images.shape[1:])]
    return pd.DataFrame(images.reshape(len(images), -1).astype(np.float64), columns=names, index=pd.Index(ids, name="case_id"))


def _batch(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn((n, *SHAPE), generator=g)


def _net(heads, seed=0, **kw):
    torch.manual_seed(seed)
    return multitask_module(SEGRESNET, SHAPE, 0, heads, kw.get("hidden", 4), 0.0, kw.get("task_norm", False), kw.get("uncertainty", False))


def _train(net, combine, weights, heads, image, target, steps=3, lr=0.05, cagrad_c=0.5):
    """`steps` SGD steps of radlang's training step (netio.train_step with the multi-task backward)."""
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=lr)
    backward = multitask_backward(net, combine, weights, cagrad_c)
    for _ in range(steps):
        train_step(net, (image, None), target, lambda out, t: (head_losses(out[1], t, heads), out[0]), opt, backward)
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


@pytest.mark.parametrize("combine, weights, same_as", [
    # PCGrad leaves two equal gradients alone and sums them
    ("pcgrad", [1.0, 1.0], [1.0, 1.0]),
    # UPGrad and DualProj: the head weights are the preference vector; equal rows lie in their own dual cone, so the
    # aggregation is w1 g + w2 g: `fixed` training with the same weights
    ("upgrad", [1.0, 1.0], [1.0, 1.0]),
    ("upgrad", [0.7, 0.3], [0.7, 0.3]),
    ("dualproj", [1.0, 1.0], [1.0, 1.0]),
    # CAGrad (c = 0.5): the mean gradient g0 = g plus c ||g0|| times the unit vector of the worst task (g itself): 1.5 g,
    # `fixed` training with weights (1 + c) / 2 = 0.75 each
    ("cagrad", [1.0, 1.0], [0.75, 0.75]),
])
def test_aggregators_on_two_identical_tasks_are_training_on_their_weighted_sum(combine, weights, same_as):
    heads = [{"name": "a", "kind": "binary", "col": 0, "outputs": 2}, {"name": "b", "kind": "binary", "col": 1, "outputs": 2}]
    y = torch.tensor([0.0, 1, 1, 0, 1, 0])
    target = torch.stack([y, y], 1)
    image = _batch()
    net_jd = _net(heads)
    net_jd.heads[1].load_state_dict(net_jd.heads[0].state_dict())     # identical tasks: same head, same target
    net_sum = _net(heads)
    net_sum.load_state_dict(net_jd.state_dict())
    # the heads' own parameters get their own loss's unweighted gradient from torchjd, `fixed` scales it by the weight:
    # with weights other than 1 the heads (and so the next steps) differ, and one step compares the shared parameters
    unit = same_as == [1.0, 1.0]
    steps = 3 if unit else 1
    a = _train(net_jd, combine, weights, heads, image, target, steps=steps)
    b = _train(net_sum, "fixed", same_as, heads, image, target, steps=steps)
    for k in a:
        if k.startswith("heads.") and not unit:
            continue
        # torchjd differentiates the two losses in one vmapped backward pass, plain training accumulates them in one:
        # the same sums in another order, and UPGrad/DualProj/CAGrad solve their small problems in float64 (quadprog,
        # cvxpy): the float32 weights agree to float32 rounding (relative 1e-5), not to the bit
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)
    moved = sum(float((a[k] - v).abs().sum()) for k, v in _net(heads).state_dict().items() if v.is_floating_point())
    assert moved > 0   # training changed the weights: the comparison is not between two untouched networks


@pytest.mark.parametrize("combine, weights, step", [
    # torchjd's documented example: UPGrad (uniform preference, 1/m each) aggregates J into [0.2929, 1.9004, 1.9004]
    ("upgrad", [0.5, 0.5], [0.2929, 1.9004, 1.9004]),
    # PCGrad by hand: g1 . g2 = -22 < 0, so g1 -> g1 + 22/38 g2, g2 -> g2 + 22/18 g1; their sum is [0.5848, 3.8012, 3.8012]
    ("pcgrad", [1, 1], [2 + 6 * 22 / 38 - 4 * 22 / 18, 2 + 22 / 38 + 22 / 18, 2 + 22 / 38 + 22 / 18]),
    # MGDA: the least-norm point of the segment between g1 and g2: 0.6 g1 + 0.4 g2 = [0, 1, 1]
    ("mgda", [1, 1], [0.0, 1.0, 1.0]),
    # DualProj by hand: the mean m = [1, 1, 1] has g1 . m = -2 < 0 (g2 . m = 8); its projection onto the dual cone
    # {x: g1 . x >= 0, g2 . x >= 0} is m + (2 / 18) g1 = [5/9, 10/9, 10/9] (then g2 . x = 10 >= 0). torchjd solves
    # the dual QP on the normalised Gramian with 1e-4 added to its diagonal (QuadprogProjector's reg_eps), which
    # moves the result by 7.6e-4 here ([0.5563, 1.1109, 1.1109]): hence the 1e-3 tolerance for this row
    ("dualproj", [0.5, 0.5], [5 / 9, 10 / 9, 10 / 9]),
])
def test_torchjd_aggregator_example_through_the_training_step(combine, weights, step):
    """torchjd's aggregator example (torchjd.aggregation's module doc) aggregates J = [[-4, 1, 1], [6, 1, 1]]. A shared
    parameter w with losses [-4, 1, 1].w and [6, 1, 1].w has that Jacobian: one SGD step (lr 1) from w = 0 through
    radlang's training step must move w by minus the aggregation: UPGrad's is the documented value; the others are
    derived by hand."""

    class Toy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(3))

        def forward(self, x):
            return self.w * x

    net = Toy()
    rows = torch.tensor([[-4.0, 1.0, 1.0], [6.0, 1.0, 1.0]])
    opt = torch.optim.SGD(net.parameters(), lr=1.0)
    backward = multitask_backward(net, combine, weights)
    train_step(net, (torch.ones(3),), rows, lambda shared, r: ([row @ shared for row in r], shared), opt, backward)
    torch.testing.assert_close(-net.w.detach(), torch.tensor(step), rtol=0, atol=1e-3 if combine == "dualproj" else 1e-4)


def test_uncertainty_with_frozen_log_variances_is_fixed_weights():
    heads = [{"name": "a", "kind": "binary", "col": 0, "outputs": 2}, {"name": "g", "kind": "multiclass", "col": 1, "outputs": 3},
             {"name": "r", "kind": "continuous", "col": 2, "outputs": 1}]
    target = torch.tensor([[0, 2, 0.3], [1, 0, -1.2], [1, 1, 0.5], [0, 2, 2.0], [1, 0, -0.1], [0, 1, 0.0]])
    image = _batch(seed=3)
    unc = _net(heads, seed=4, uncertainty=True)
    with torch.no_grad():
        unc.log_vars.copy_(torch.tensor([0.7, -0.4, 1.3]))
    unc.log_vars.requires_grad_(False)
    weights = (torch.exp(-unc.log_vars) / 2).tolist()      # the float32 values exp(-s_k)/2
    fixed = _net(heads, seed=4)
    fixed.load_state_dict({k: v for k, v in unc.state_dict().items() if k != "log_vars"})
    a = _train(unc, "uncertainty", [1, 1, 1], heads, image, target)
    b = _train(fixed, "fixed", weights, heads, image, target)
    for k in b:
        assert torch.equal(a[k], b[k]), k


def test_a_missing_target_masks_its_head_only():
    heads = [{"name": "a", "kind": "binary", "col": 0, "outputs": 2}, {"name": "g", "kind": "multiclass", "col": 1, "outputs": 3}]
    nan = float("nan")
    target = torch.tensor([[0, 2], [1, nan], [1, 1], [0, nan], [1, 0], [0, 1]])
    image = _batch(seed=5)
    net = _net(heads, seed=6)
    net.train()
    _, outs = net(image, None)
    loss = (torch.tensor([1.0, 0.5]) * torch.stack(head_losses(outs, target, heads))).sum()
    got = torch.autograd.grad(loss, list(net.parameters()), allow_unused=True, retain_graph=True)
    keep = torch.tensor([0, 2, 4, 5])     # the cases with a grade
    ref = (torch.nn.functional.cross_entropy(outs[0], target[:, 0].long())                 # every case trains head a
           + 0.5 * torch.nn.functional.cross_entropy(outs[1][keep], target[keep, 1].long()))   # head g: its cases only
    want = torch.autograd.grad(ref, list(net.parameters()), allow_unused=True, retain_graph=True)
    n = 0
    for g, w in zip(got, want):
        assert (g is None) == (w is None)
        if g is not None:
            assert torch.equal(g, w)
            n += 1
    assert n > 10
    # and a case without a grade still moves the backbone: dropping it from the batch changes the gradient
    drop = (torch.nn.functional.cross_entropy(outs[0][keep], target[keep, 0].long())
            + 0.5 * torch.nn.functional.cross_entropy(outs[1][keep], target[keep, 1].long()))
    other = torch.autograd.grad(drop, [net.heads[0][0].weight])[0]
    assert not torch.allclose(other, got[next(i for i, (name, _) in enumerate(net.named_parameters()) if name == "heads.0.0.weight")])


def test_cox_head_loss_is_lifelines_partial_likelihood():
    from lifelines import CoxPHFitter

    rng = np.random.default_rng(0)
    n = 40
    x = rng.normal(size=n)
    time = np.round(rng.exponential(np.exp(-0.8 * x)) * 10) + 1      # rounded: tied times, Efron's correction matters
    event = (rng.uniform(size=n) < 0.7).astype(float)
    cph = CoxPHFitter().fit(pd.DataFrame({"x": x, "T": time, "E": event}), "T", "E")
    beta = float(cph.params_["x"])
    out = torch.tensor(beta * x, dtype=torch.float64)[:, None]
    heads = [{"name": "risk", "kind": "survival", "col": 0, "outputs": 1}]
    target = torch.tensor(np.stack([time, event], 1))
    loss = head_losses([out], target, heads)[0]
    # the head's loss is per event: times the events, minus lifelines' maximised log partial likelihood
    assert float(loss) * event.sum() == pytest.approx(-cph.log_likelihood_, rel=1e-6)
    # and lifelines' estimate is where the loss is lowest: a step either way raises it
    for db in (-0.01, 0.01):
        moved = head_losses([torch.tensor((beta + db) * x)[:, None]], target, heads)[0]
        assert float(moved) > float(loss)


def _cohort(n=16, seed=7):
    rng = np.random.default_rng(seed)
    images = rng.normal(size=(n,) + tuple(SHAPE)).astype(np.float32)
    y = rng.integers(0, 2, n)
    images[y == 1, :, 2:6, 2:6, 2:6] += 1.5
    ids = [f"c{i:02d}" for i in range(n)]
    grade = {cid: float(1 + (i % 3)) for i, cid in enumerate(ids) if i % 5 != 0}    # some cases have no grade
    return voxel_table(images, ids), y, ids, grade


HEADS = [{"name": "malignancy", "kind": "binary", "weight": 1.0, "primary": True},
         {"name": "grade", "kind": "multiclass", "weight": 0.5, "primary": False}]


@pytest.mark.parametrize("combine", ["uncertainty", "pcgrad", "upgrad", "dualproj", "cagrad"])
def test_two_fits_are_bit_identical_and_survive_skops(combine):
    from radlang.ops.fold_engine import model_artefact
    from radlang.predict import load_model

    X, y, _, grade = _cohort()
    cls = multitask_estimator_class()
    params = {**PARAMS, "heads": HEADS, "combine": combine, "task_norm": True}
    a = cls(network=SEGRESNET, params=params, seed=3, fold_inputs={"heads": {"grade": grade}}).fit(X, y)
    b = cls(network=SEGRESNET, params=params, seed=3, fold_inputs={"heads": {"grade": grade}}).fit(X, y)
    assert sorted(a.weights_) == sorted(b.weights_)
    for k in a.weights_:
        assert a.weights_[k].tobytes() == b.weights_[k].tobytes(), k
    assert ("log_vars" in a.weights_) == (combine == "uncertainty")
    p = a.predict_proba(X)
    assert p.tobytes() == b.predict_proba(X).tobytes()
    heads = a.predict_heads(X)
    assert heads["grade"].shape == (len(X), 3) and np.allclose(heads["grade"].sum(1), 1)
    assert a.n_validation_ == 4
    loaded = load_model(model_artefact(a), None)
    assert loaded.predict_proba(X).tobytes() == p.tobytes()


def test_fold_data_reads_each_head_and_names_bad_columns():
    class Stage:
        name = "mt"
        span = None
        params: ClassVar[dict] = {"heads": [{"name": "malignancy", "kind": "binary", "target": "train.outcome", "weight": 1.0},
                            {"name": "grade", "kind": "multiclass", "target": "train.clinical", "column": "grade", "weight": 1.0},
                            {"name": "risk", "kind": "survival", "target": "train.clinical", "time": "os", "event": "died", "weight": 1.0}]}

    data = pd.DataFrame({"case_id": ["a", "b", "c"], "outcome": [0, 1, 1], "clinical.grade": [1, None, 3],
                         "clinical.os": [5.0, 7.0, 2.0], "clinical.died": [1, 0, 1]})
    data.attrs["radlang"] = {"name": "train", "source": "t.csv"}
    got, diags = multitask_fold_data(Stage, data, None, [])
    assert diags == []
    assert got["heads"]["grade"] == {"a": 1.0, "c": 3.0}      # b has no grade: masked, not dropped
    assert got["heads"]["risk"]["c"] == [2.0, 1.0]
    bad = data.assign(**{"clinical.grade": [1, 2.5, 3], "clinical.died": [1, 2, 0]}).drop(columns=["clinical.os"])
    bad.attrs["radlang"] = data.attrs["radlang"]
    _, diags = multitask_fold_data(Stage, bad, None, [])
    assert sorted(d.code for d in diags) == ["E536", "E537"]
    assert "`os`" in next(d.message for d in diags if d.code == "E536")
    assert "`b`" in next(d.message for d in diags if d.code == "E537")


def test_pack_targets_classes_from_the_rows_given():
    heads = [{"name": "g", "kind": "multiclass"}, {"name": "r", "kind": "continuous"}, {"name": "b", "kind": "binary"}]
    arr, out = pack_targets(heads, {"g": {"a": 2.0, "b": 5.0}, "r": {"a": 1.0, "b": 3.0, "c": 5.0}, "b": {"a": 1.0, "c": 1.0}}, ["a", "b", "c"])
    assert out[0]["classes"] == [2.0, 5.0] and out[0]["outputs"] == 2
    assert np.isnan(arr[2, 0]) and arr[0, 0] == 0 and arr[1, 0] == 1
    assert out[1]["mean"] == 3.0 and np.allclose(arr[:, 1], np.array([-2, 0, 2]) / np.std([1, 3, 5]))
    # a binary head whose rows hold only 1s still predicts class 1 in its second output
    assert out[2]["classes"] == [0.0, 1.0] and arr[0, 2] == 1 and np.isnan(arr[1, 2])


SPEC = """
study "s" {{ seed: 1 }}
cohort train = phantom(12) {{ size: [16, 16, 16], grades: 3 }}
cohort other = phantom(12, seed: 5) {{ size: [16, 16, 16], grades: 3 }}
features img = patches(train) {{ patch: [16, 16, 16] }}
network enc = resnet(dims: 3, in_channels: 1, out_channels: 2) {{ depth: 10 }}
model mt = multitask(img, target: train.outcome, network: enc) {{ heads: [{heads}] }}
validate v = evaluate(mt) {{ cv: stratified_kfold(2) }}
"""


@pytest.mark.parametrize("heads, code", [
    ("binary(m, target: train.outcome), multiclass(grade)", "E291"),
    ("binary(m, target: train.outcome), multiclass(grade, target: train.clinical)", "E291"),
    ("binary(m, target: train.outcome), survival(risk, target: train.clinical, time: os)", "E291"),
    ("binary(m, target: train.outcome), multiclass(grade, target: other.clinical, column: grade)", "E292"),
    ("multiclass(grade, target: train.clinical, column: grade), continuous(age, target: train.clinical, column: age)", "E293"),
    ("binary(m, target: train.outcome), binary(m2, target: train.outcome)", "E293"),
    ("multiclass(m, target: train.outcome), continuous(age, target: train.clinical, column: age)", "E294"),
    ("binary(m, target: train.outcome), continuous(age, target: train.image)", "E294"),
    ("binary(m, target: train.outcome), continuous(m, target: train.clinical, column: age)", "E295"),
    ("binary(m, target: train.outcome)", "E345"),
])
def test_compile_time_diagnostics(heads, code):
    from radlang.compiler import compile_source

    res = compile_source(SPEC.format(heads=heads).encode(), "s.rad")
    errors = [d for d in res.diagnostics if d.severity == "error"]
    assert [d.code for d in errors] == [code], [(d.code, d.message) for d in errors]
    assert errors[0].hint and errors[0].span.line == 7


def test_a_valid_spec_compiles():
    from radlang.compiler import compile_source

    heads = "binary(m, target: train.outcome), multiclass(grade, target: train.clinical, column: grade, weight: 0.5)"
    res = compile_source(SPEC.format(heads=heads).encode(), "s.rad")
    assert res.ok, [(d.code, d.message) for d in res.diagnostics]


def test_survival_heads_fit_as_primary_and_as_another_head():
    from sksurv.util import Surv

    X, y, ids, _ = _cohort()
    rng = np.random.default_rng(2)
    time = rng.exponential(10, len(ids)) + 1
    event = rng.uniform(size=len(ids)) < 0.7
    risk = {cid: [float(t), float(e)] for cid, t, e in zip(ids, time, event) if cid != "c03"}   # c03: no follow-up
    cls = multitask_estimator_class()
    heads = [HEADS[0], {"name": "risk", "kind": "survival", "weight": 1.0, "primary": False}]
    aux = cls(network=SEGRESNET, params={**PARAMS, "heads": heads}, seed=1, fold_inputs={"heads": {"risk": risk}}).fit(X, y)
    out = aux.predict_heads(X)
    assert out["risk"].shape == (len(X),) and np.isfinite(out["risk"]).all()
    assert aux.predict_proba(X).shape == (len(X), 2)
    # a survival primary head: `evaluate` gives scikit-survival's structured target and reads `predict` as the risk
    heads = [{"name": "risk", "kind": "survival", "weight": 1.0, "primary": True},
             {"name": "malignancy", "kind": "binary", "weight": 1.0, "primary": False}]
    prim = cls(network=SEGRESNET, params={**PARAMS, "heads": heads}, seed=1,
               fold_inputs={"heads": {"malignancy": dict(zip(ids, y.astype(float)))}}).fit(X, Surv.from_arrays(event, time))
    assert prim.predict(X).tobytes() == prim.predict_heads(X)["risk"].tobytes()
