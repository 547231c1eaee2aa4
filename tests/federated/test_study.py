"""Federated studies end to end: outputs, bad input (each a diagnostic naming the site, never a hang), the privacy
boundary in `check`, and run = render."""

import json

import numpy as np
import pandas as pd
import pytest

from radlang.backends.executor import RunError, run_study
from radlang.compiler import compile_source

pytest.importorskip("torch")

FED = "federate fed = fedavg(clin, target: train.outcome) {{ rounds: 3, batch: 8, lr: 0.05{extra} }}"


def _compile(src, path):
    path.write_text(src)
    res = compile_source(src, str(path))
    assert res.ok, [(d.code, d.message) for d in res.diagnostics]
    return res.study


def _table(path, sites, y, seed=0):
    rng = np.random.default_rng(seed)
    n = len(sites)
    df = pd.DataFrame({"case": [f"c{i:03d}" for i in range(n)], "hospital": sites, "y": y,
                       "a": rng.normal(size=n), "b": rng.normal(size=n)})
    df.to_csv(path, index=False)
    return path


def _spec(table, extra="", test=None):
    lines = [f'cohort train = table("{table}") {{ id: case, outcome: y as binary, site: hospital }}']
    if test:
        lines.append(f'cohort test = table("{test}") {{ id: case, outcome: y as binary, site: hospital }}')
        extra += ", test: test"
    return "\n".join(lines + ["features clin = tabular(train)", FED.format(extra=extra)]) + "\n"


def _run_error(tmp_path, src):
    study = _compile(src, tmp_path / "s.rad")
    with pytest.raises(RunError) as e:
        run_study(study, out=tmp_path / "out", workers=1, quiet=True)
    return [(d.code, d.message) for d in e.value.diagnostics]


def test_a_federated_run_writes_metrics_drift_weights_and_the_boundary(tmp_path):
    sites = ["A"] * 20 + ["B"] * 14 + ["C"] * 10
    y = [i % 2 for i in range(44)]
    train = _table(tmp_path / "train.csv", sites, y)
    test = _table(tmp_path / "test.csv", ["A"] * 6 + ["B"] * 6 + ["C"] * 6, [i % 2 for i in range(18)], seed=1)
    study = _compile(_spec(train, ", seeds: [1, 2]", test=test), tmp_path / "s.rad")
    run_study(study, out=tmp_path / "out", workers=1, quiet=True)
    m = json.loads((tmp_path / "out" / "metrics" / "fed_federated.json").read_text())
    assert [r["seed"] for r in m["seeds"]] == [1, 2] and m["metric"] == "auc" and m["model"] == "logistic"
    first = m["seeds"][0]
    assert set(first["federated"]["sites"]) == {"A", "B", "C"} and 0 <= first["federated"]["pooled"] <= 1
    assert set(first["local"]) == {"A", "B", "C"} and "pooled" in first["centralised"]
    assert [h["round"] for h in first["history"]] == [1, 2, 3]
    assert {s: c["n"] for s, c in first["history"][0]["clients"].items()} == {"A": 20, "B": 14, "C": 10}
    assert all(c["drift"] > 0 for h in first["history"] for c in h["clients"].values())
    assert m["boundary"]["case_level_data"] == "none" and "weights" in m["boundary"]["clients_to_server"]
    assert json.loads((tmp_path / "out" / "run.json").read_text())["boundary"] == {"fed": m["boundary"]}   # the run manifest
    assert set(m["summary"]) == {"federated", "centralised", "local A", "local B", "local C"}
    assert (tmp_path / "out" / "metrics" / "fed_drift.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    w = json.loads((tmp_path / "out" / "models" / "fed.json").read_text())
    assert sorted(w["weights"]) == ["1", "2"] and len(w["weights"]["1"][0][0]) == 2


def test_one_site_only(tmp_path):
    got = _run_error(tmp_path, _spec(_table(tmp_path / "t.csv", ["A"] * 12, [0, 1] * 6)))
    assert [c for c, _ in got] == ["E611"] and "site `A`" in got[0][1]


def test_a_site_with_one_outcome_class(tmp_path):
    got = _run_error(tmp_path, _spec(_table(tmp_path / "t.csv", ["A"] * 8 + ["B"] * 6, [0, 1] * 4 + [0] * 6)))
    assert [c for c, _ in got] == ["E613"] and "site `B`" in got[0][1] and "one class" in got[0][1]


def test_a_case_without_a_site_and_a_test_site_without_training_cases(tmp_path):
    got = _run_error(tmp_path, _spec(_table(tmp_path / "t.csv", ["A"] * 6 + [""] + ["B"] * 6, [0, 1] * 6 + [1])))
    assert [c for c, _ in got] == ["E610"] and "case `c006`" in got[0][1]
    train = _table(tmp_path / "t.csv", ["A"] * 6 + ["B"] * 6, [0, 1] * 6)
    test = _table(tmp_path / "u.csv", ["A"] * 4 + ["Z"] * 4, [0, 1] * 4)
    got = _run_error(tmp_path, _spec(train, test=test))
    assert [c for c, _ in got] == ["E612"] and "site `Z`" in got[0][1] and "no training case" in got[0][1]


def test_a_crashing_client_stops_the_round_naming_the_site_or_is_left_out(tmp_path, monkeypatch):
    from radlang.ops import fed_engine, fed_networks

    path = _table(tmp_path / "t.csv", ["A"] * 8 + ["B"] * 8 + ["C"] * 8, [0, 1] * 12)
    df = pd.read_csv(path)
    df.loc[df["hospital"] == "B", "a"] = 1234.5           # marks B's cases: its client crashes (below)
    df.to_csv(path, index=False)
    update = fed_engine.client_update

    def crashing_at_b(make, loss_fn, weights, X, y, params, seed):
        if (X[:, 0] == 1234.5).all():
            raise FloatingPointError("local training diverged (a crash planted at site B)")
        return update(make, loss_fn, weights, X, y, params, seed)

    monkeypatch.setattr(fed_networks, "client_update", crashing_at_b)     # what engine_parts hands the rounds
    got = _run_error(tmp_path, _spec(path, ", standardize: none"))
    assert [c for c, _ in got] == ["E690"] and "round 1: site `B`" in got[0][1] and "(2 client(s) succeeded, 3 needed)" in got[0][1]
    study = _compile(_spec(path, ", min_clients: 2, standardize: none"), tmp_path / "s2.rad")
    ctx = run_study(study, out=tmp_path / "out2", workers=1, quiet=True)
    assert [w[:4] for w in ctx.cache.warnings] == ["W690"] * 3 and "round 1: site `B` failed" in ctx.cache.warnings[0]
    m = json.loads((tmp_path / "out2" / "metrics" / "fed_federated.json").read_text())
    assert all(sorted(h["clients"]) == ["A", "C"] and list(h["failed"]) == ["B"] for h in m["seeds"][0]["history"])


def test_a_missing_feature_value_names_the_case_and_column_before_any_round(tmp_path):
    """One NaN at one site would reach the federation's mean and SD and make every site's training diverge (E690 at
    every site); nothing is imputed, so it is reported as the data problem it is, with the cohort's file."""
    path = _table(tmp_path / "t.csv", ["A"] * 8 + ["B"] * 8 + ["C"] * 8, [0, 1] * 12)
    df = pd.read_csv(path)
    df.loc[3, "a"] = np.nan
    df.loc[10, ["a", "b"]] = np.nan
    df.to_csv(path, index=False)
    got = _run_error(tmp_path, _spec(path))
    assert [c for c, _ in got] == ["E614", "E614"]
    assert f"cohort `train` ({path}): site `A`, case `c003`: no finite value in `a`" in got[0][1]
    assert "site `B`, case `c010`: no finite value in `a`, `b`" in got[1][1]
    assert not (tmp_path / "out" / "metrics").exists()


def test_missing_site_column_is_a_check_error(tmp_path):
    src = ('cohort train = dataset("breast_cancer") { stop: 60 }\nfeatures clin = tabular(train)\n'
           + FED.format(extra="") + "\n")
    res = compile_source(src, "<t>")
    assert [d.code for d in res.diagnostics if d.is_error] == ["E286"]


def test_privacy_boundary_names_the_stages_that_pool_cases(tmp_path):
    train = _table(tmp_path / "t.csv", ["A"] * 8 + ["B"] * 8, [0, 1] * 8)
    src = (f'cohort train = table("{train}") {{ id: case, outcome: y as binary, site: hospital }}\n'
           "features raw = tabular(train)\n"
           "select clin = lasso(raw, target: train.outcome) { cv: 2 }\n"
           + FED.format(extra="") + "\n"
           "model clf = logistic(raw, target: train.outcome)\n"
           "validate v = evaluate(clf) { cv: stratified_kfold(2), bootstrap: 10 }\n")
    res = compile_source(src, str(tmp_path / "s.rad"))
    errs = [(d.code, d.message, d.hint) for d in res.diagnostics if d.is_error]
    assert [c for c, _, _ in errs] == ["E529", "E530"]
    assert "`clin` (lasso) upstream" in errs[0][1] and "make `clin` per-site" in errs[0][2]
    assert errs[1][1].startswith("`v` (evaluate) resamples or cross-validates the pooled cases of `train`")
    assert "make `clf`, `v` per-site or federated" in errs[1][2]


def test_settings_that_contradict_the_strategy():
    src = ('cohort train = multisite(60) { split: train }\nfeatures clin = tabular(train)\n'
           "federate fed = fedavg(clin, target: train.outcome) { strategy: fedavg, mu: 0.1, server_lr: 0.1 }\n")
    res = compile_source(src, "<t>")
    assert [d.code for d in res.diagnostics if d.is_error] == ["E306"]
