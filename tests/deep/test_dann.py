"""DANN (`dann`, radlang/ops/dann.py): invariants of the gradient reversal layer and of domain-adversarial training, on
tiny CPU data.

- the gradient reversal layer is the identity forward and -lambda x the incoming gradient backward (double precision,
  gradcheck-style: the analytic Jacobian against -lambda x the numerical one of the identity);
- lambda follows Ganin et al.'s 2/(1+exp(-10p))-1 (values at p = 0, 0.5, 1) or a stated constant;
- with lambda = 0 (and no target images) DANN's label network is bit-identical to `cnn`'s source-only training: the
  domain head is built from its own generator (the global random stream is restored), it gets its own Adam state, and
  the reversed gradient it sends back is -0 x g, which adds nothing;
- two fits are bit-identical, with the held-out site's unlabelled images too;
- the held-out rows reach the fit through the fold engine only when `target_unlabelled` is set, never their outcomes;
- planted leakage: random labels, pure-noise images, leave-one-site-out: the pooled AUC's 95% CI holds 0.5;
- compile-time diagnostics: no site column (E296), a one-site phantom (E297), k-fold validation (E540).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from radlang.ops.dann import dann_estimator_class, ganin_lambda, reverse_gradient
from radlang.ops.net_models import net_estimator_class
from tests.deep.test_net_models import SEGRESNET, voxel_table

PARAMS = {"epochs": 3, "batch": 4, "optimizer": "adam", "lr": 1e-2, "weight_decay": 0.0, "schedule": "constant",
          "hidden": 8, "dropout": 0.0, "validation": 0.25, "patience": 2}
DANN = {**PARAMS, "reversal": "ganin", "domain_hidden": 4, "target_unlabelled": False}


def test_reversal_is_identity_forward_and_minus_lambda_gradient_backward():
    """Double precision: the forward is x itself; the analytic Jacobian (autograd, through the backward) is -lambda x
    the numerical Jacobian of the forward (central differences, as torch.autograd.gradcheck takes them)."""
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    eps = 1e-6
    numerical = torch.zeros(12, 12, dtype=torch.float64)
    with torch.no_grad():
        for i in range(12):
            d = torch.zeros(12, dtype=torch.float64)
            d[i] = eps
            d = d.reshape(3, 4)
            numerical[:, i] = ((reverse_gradient(x + d, 0.5) - reverse_gradient(x - d, 0.5)) / (2 * eps)).flatten()
    torch.testing.assert_close(numerical, torch.eye(12, dtype=torch.float64), rtol=0, atol=1e-9)
    for lam in (0.0, 0.37, 1.0, 2.5):
        assert torch.equal(reverse_gradient(x, lam), x)
        analytic = torch.autograd.functional.jacobian(lambda t, lam=lam: reverse_gradient(t, lam), x).reshape(12, 12)
        torch.testing.assert_close(analytic, -lam * numerical, rtol=0, atol=1e-9)
        g = torch.randn(3, 4, dtype=torch.float64)
        (gx,) = torch.autograd.grad(reverse_gradient(x, lam), x, g)
        assert torch.equal(gx, g * -lam)
    # with lambda = -1 the layer is the plain identity, forward and backward: gradcheck itself holds
    assert torch.autograd.gradcheck(lambda t: reverse_gradient(t, -1.0), (x,))


def test_ganin_schedule():
    assert ganin_lambda(0.0) == 0.0
    assert ganin_lambda(0.5) == pytest.approx(2 / (1 + math.exp(-5)) - 1, abs=1e-15)
    assert ganin_lambda(1.0) == pytest.approx(0.999909204262595, abs=1e-15)
    assert ganin_lambda(0.3, 0.25) == 0.25


def _sites(n, k=2, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.normal(size=(n, 1, 8, 8, 8)).astype(np.float32)
    y = rng.integers(0, 2, n)
    X = voxel_table(images)
    sites = {cid: f"s{i % k}" for i, cid in enumerate(X.index)}
    return X, y, {"sites": sites, "patients": {cid: cid for cid in X.index}}


def test_lambda_zero_is_source_only_training_bit_for_bit():
    X, y, info = _sites(16)
    cnn = net_estimator_class()(network=SEGRESNET, params=PARAMS, seed=5, fold_inputs=info).fit(X, y)
    dann = dann_estimator_class()(network=SEGRESNET, params={**DANN, "reversal": 0.0}, seed=5, fold_inputs=info).fit(X, y)
    assert sorted(dann.weights_) == sorted(cnn.weights_)
    for k in cnn.weights_:
        assert dann.weights_[k].tobytes() == cnn.weights_[k].tobytes(), k
    assert dann.predict_proba(X).tobytes() == cnn.predict_proba(X).tobytes()
    # and the reversal does act when lambda > 0: the backbone's weights move differently
    adv = dann_estimator_class()(network=SEGRESNET, params={**DANN, "reversal": 1.0}, seed=5, fold_inputs=info).fit(X, y)
    assert any(adv.weights_[k].tobytes() != cnn.weights_[k].tobytes() for k in cnn.weights_ if k.startswith("backbone."))


def test_two_fits_are_bit_identical_with_target_images():
    X, y, info = _sites(24, 3)
    src = [cid for cid in X.index if info["sites"][cid] != "s2"]
    tgt = [cid for cid in X.index if info["sites"][cid] == "s2"]
    cls = dann_estimator_class()
    p = {**DANN, "target_unlabelled": True}
    y_src = y[[X.index.get_loc(c) for c in src]]
    fits = [cls(network=SEGRESNET, params=p, seed=3, fold_inputs=info).fit(X.loc[src], y_src, unlabelled=X.loc[tgt]) for _ in range(2)]
    a, b = fits
    assert a.domains_ == ["s0", "s1", "s2"]          # the held-out site is the third domain
    for k in a.weights_:
        assert a.weights_[k].tobytes() == b.weights_[k].tobytes(), k
    assert not hasattr(a, "_unlabelled")              # the held-out rows are not kept in the fitted model
    # without `target_unlabelled` the held-out rows are ignored: two training sites only
    c = cls(network=SEGRESNET, params=DANN, seed=3, fold_inputs=info).fit(X.loc[src], y_src, unlabelled=X.loc[tgt])
    assert c.domains_ == ["s0", "s1"]


def test_fold_engine_hands_only_held_out_features_to_the_model():
    """run_fold gives a DANN with `target_unlabelled` the held-out rows' features; their outcomes are not passed (the
    fit's signature takes none), and shuffling them leaves the fit bit-identical."""
    from sklearn.pipeline import Pipeline

    from radlang.ops.fold_engine import run_fold
    from radlang.predict import load_model

    X, y, info = _sites(24, 3)
    tr = np.flatnonzero([info["sites"][c] != "s2" for c in X.index])
    te = np.flatnonzero([info["sites"][c] == "s2" for c in X.index])

    def build(seed):
        est = dann_estimator_class()(network=SEGRESNET, params={**DANN, "target_unlabelled": True}, seed=seed, fold_inputs=info)
        return Pipeline([("model", est)])

    job = {"build": (build, (2,)), "X": X, "y": y, "train": tr, "test": te, "outcome": "binary", "rule": None, "save_model": True}
    a = run_fold(job)
    b = run_fold({**job, "y": np.where(np.isin(np.arange(len(y)), te), 1 - y, y)})   # the held-out labels flipped
    assert load_model(a["model_bytes"], None).steps[-1][1].domains_ == ["s0", "s1", "s2"]
    assert a["test"].tobytes() == b["test"].tobytes()


def test_planted_leakage_random_labels_leave_one_site_out():
    from radlang.ops.clinical_metrics import binary_metrics

    X, y, info = _sites(36, 3, seed=11)
    site = np.asarray([info["sites"][c] for c in X.index])
    p = np.empty(len(y))
    cls = dann_estimator_class()
    for s in ("s0", "s1", "s2"):
        tr, te = np.flatnonzero(site != s), np.flatnonzero(site == s)
        m = cls(network=SEGRESNET, params={**DANN, "epochs": 2, "target_unlabelled": True}, seed=0, fold_inputs=info)
        p[te] = m.fit(X.iloc[tr], y[tr], unlabelled=X.iloc[te]).predict_proba(X.iloc[te])[:, 1]
    m = binary_metrics(y, p, p >= 0.5, X.index.to_numpy(), {"metrics": ["auc"], "bootstrap": 500, "ci": 0.95}, 0)
    assert m["auc"]["ci_low"] < 0.5 < m["auc"]["ci_high"]


# ----------------------------------------------------------------------------------------------
# compile-time diagnostics

NET = ("network enc = resnet(dims: 3) { depth: 10, widen_factor: 0.125 }\nfeatures img = patches(train) { patch: [16, 16, 16] }\n"
       "model m = dann(img, target: train.outcome, network: enc)\n")


def codes(text):
    from radlang.compiler import compile_source

    return sorted({d.code for d in compile_source(text, "t.rad").diagnostics if d.severity == "error"})


@pytest.mark.parametrize("cohort,validate,code", [
    ("manifest(\"d.csv\") { image: ct, mask: roi, outcome: y as binary }", "cv: none", "E296"),
    ("phantom(20) { sites: 1, size: [16, 16, 16] }", "cv: leave_one_site_out", "E297"),
    ("phantom(30) { sites: 3, size: [16, 16, 16] }", "cv: stratified_kfold(3)", "E540"),
])
def test_bad_input_is_a_compile_time_diagnostic(cohort, validate, code):
    text = f'study "s" {{ seed: 1 }}\ncohort train = {cohort}\n' + NET + f"validate v = evaluate(m) {{ {validate} }}\n"
    assert code in codes(text)


def test_a_leave_one_site_out_dann_compiles():
    text = 'study "s" { seed: 1 }\ncohort train = phantom(30) { sites: 3, size: [16, 16, 16] }\n' + NET
    assert codes(text + "validate v = evaluate(m) { cv: leave_one_site_out }\n") == []


def test_leave_one_site_out_run_records_the_transductive_use(tmp_path):
    """Through `radlang run`: sites reach the fitted model through `fold_data`, each held-out site is predicted, and
    the target site's unlabelled use is named in manifest.json; the final model predicts like a `cnn`."""
    import json

    from tests.validation._validation_util import metrics, predictions, run_spec

    src = ('study "s" { seed: 1 }\ncohort train = phantom(12) { sites: 3, size: [16, 16, 16], effect: 2.0 }\n'
           "network enc = resnet(dims: 3) { depth: 10, widen_factor: 0.125 }\nfeatures img = patches(train) { patch: [16, 16, 16] }\n"
           "model m = dann(img, target: train.outcome, network: enc) { epochs: 1, batch: 4, validation: 0, target_unlabelled: true }\n"
           "validate v = evaluate(m) { cv: leave_one_site_out, metrics: [auc], bootstrap: 10 }\n")
    out = tmp_path / "out"
    run_spec(src, tmp_path / "s.rad", out)
    manifest = json.loads((out / "manifest.json").read_text())
    v = next(s for s in manifest["stages"] if s["name"] == "v")
    assert list(v["transductive"]) == ["m"]
    assert sorted(metrics(out)["per_site"]) == ["site1", "site2", "site3"]
    assert len(predictions(out)) == 12
    assert (out / "models" / "v.skops").exists()


def test_ganin_learning_rate_annealing():
    """`schedule: ganin` is Ganin et al. (JMLR 2016)'s annealing lr_p = lr_0 / (1 + 10 p)^0.75, p = epoch / epochs, and
    the rendered script states it as that formula."""
    from radlang.ops.netio import make_scheduler, training_code

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.01)
    sched = make_scheduler(opt, "ganin", 12)
    for epoch in range(12):
        assert math.isclose(opt.param_groups[0]["lr"], 0.01 / (1 + 10 * epoch / 12) ** 0.75, rel_tol=1e-12)
        opt.step()
        sched.step()
    params = {"optimizer": "sgd", "lr": 0.01, "weight_decay": 0.0, "schedule": "ganin", "epochs": 12}
    assert training_code(params, 0)[1] == ("torch.optim.lr_scheduler.LambdaLR(optimizer, "
                                           "lr_lambda=lambda epoch: 1 / (1 + 10 * epoch / 12) ** 0.75)")
