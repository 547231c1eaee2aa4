"""`radlang plan` of a network model that `fedavg` trains says how fedavg trains it (rounds of local epochs from the
global weights, all of a site's cases, no early stopping: fed_networks.net_update), not the early stopping on an inner
validation split that the model's own fit (a validation's) uses."""

from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("monai")

from radlang.backends.plan import plan_json
from radlang.compiler import compile_source

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "federated_network.rad"


def _notes(text):
    res = compile_source(text, str(EXAMPLE))
    assert res.ok, res.diagnostics
    stages = {s["name"]: s for s in plan_json(res.study)["stages"]}
    return [n["text"] for n in stages["fused"]["notes"]]


def test_a_cnn_trained_by_fedavg_is_planned_as_fedavg_trains_it():
    notes = _notes(EXAMPLE.read_text(encoding="utf-8"))
    assert not any("early stopping on" in t for t in notes)
    assert ("trained by `fed` (fedavg): 5 rounds x 1 local epoch(s) at each site on all its cases in mini-batches of 8, from the "
            "global weights with a fresh adam optimiser (lr 0.003) and `constant` schedule each round; no early stopping") in notes
    assert any(t.startswith("training memory ≈ ") and t.endswith(")") for t in notes)


def test_the_plan_follows_the_federation_settings():
    text = (EXAMPLE.read_text(encoding="utf-8")
            .replace("{ hidden: 8, lr: 3e-3 }", "{ hidden: 8, lr: 3e-3, optimizer: sgd, schedule: cosine }")
            .replace("strategy: fedavg", "strategy: fedprox").replace("local_epochs: 1", "local_epochs: 2").replace("batch: 8", "batch: 0"))
    notes = _notes(text)
    assert ("trained by `fed` (fedprox): 5 rounds x 2 local epoch(s) at each site on all its cases in one batch of the site's cases, "
            "from the global weights with a fresh sgd optimiser (lr 0.003) and `cosine` schedule each round, FedProx's proximal "
            "term (mu 0.01); no early stopping") in notes
    assert not any("early stopping on" in t for t in notes)


def test_a_cnn_that_a_validation_fits_keeps_its_early_stopping_line():
    """Without `fedavg`, the model is fit by `evaluate` (the same network and data, the federation replaced)."""
    text = EXAMPLE.read_text(encoding="utf-8")
    text = text[:text.index("federate fed = fedavg")] + "validate v = evaluate(fused) { cv: stratified_kfold(3), metrics: [auc], bootstrap: 0 }\n"
    notes = _notes(text)
    assert any(t.startswith("training memory ≈ ") and t.endswith("; early stopping on 20% of each fit's patients") for t in notes)
    assert not any("trained by" in t for t in notes)


def test_a_fedavg_trained_network_is_planned_with_fedavgs_batch_and_scaling():
    """The memory line uses the federation's mini-batch, and the tabular branch is standardised by the federation (per-site
    sums), not inside folds; with `standardize: none` it is used as it is."""
    text = EXAMPLE.read_text(encoding="utf-8")
    notes = _notes(text.replace("batch: 8\n}", "batch: 4\n}"))
    assert any(t.startswith("training memory ≈ ") and " for batch 4 " in t for t in notes)
    assert ("tabular branch: 1 column(s) of `both`, standardised by `fed` with the federation's mean and SD (from per-site "
            "sums), not imputed") in notes
    notes = _notes(text.replace("batch: 8\n}", "batch: 8\n  standardize: none\n}"))
    assert "tabular branch: 1 column(s) of `both`, used by `fed` as they are (`standardize: none`), not imputed" in notes
    assert not any("inside each fold" in t for t in notes)
