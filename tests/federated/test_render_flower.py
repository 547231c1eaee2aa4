"""`radlang render --target flower`: the app's files, its engine is the simulation's source, and a study without a
federated stage is a usage error (E750)."""

import ast
import inspect
import json

from radlang.backends.render.flower import render_flower
from radlang.backends.render.literals import RenderError
from radlang.cli import main
from radlang.compiler import compile_source
from radlang.ops import fed_engine

SPEC = """
cohort train = multisite(80) {{ sites: 3, features: 4, split: train }}
cohort test = multisite(80) {{ sites: 3, features: 4, split: test }}
features clin = tabular(train)
{fed}
"""
FED = "federate fed = fedavg(clin, target: train.outcome) { strategy: fedyogi, rounds: 2, seeds: [5, 6], test: test }"


def _study(tmp_path, fed=FED):
    spec = tmp_path / "s.rad"
    spec.write_text(SPEC.format(fed=fed))
    res = compile_source(spec.read_text(), str(spec))
    assert res.ok, [(d.code, d.message) for d in res.diagnostics]
    return res.study


def test_the_flower_app_runs_the_simulations_engine(tmp_path):
    written = render_flower(_study(tmp_path), tmp_path / "app", site_data=True)
    rel = sorted(str(p.relative_to(tmp_path / "app")) for p in written)
    assert rel == ["pyproject.toml", "radlang_fed/__init__.py", "radlang_fed/client_app.py", "radlang_fed/engine.py",
                   "radlang_fed/server_app.py", "radlang_fed/spec.json"] + [f"sites/site{i}/{s}.csv" for i in (1, 2, 3) for s in ("test", "train")]
    engine = (tmp_path / "app" / "radlang_fed" / "engine.py").read_text()
    tree = ast.parse(engine)
    defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert {"client_update", "server_update", "federated_rounds", "weighted_average"} <= defined
    assert inspect.getsource(fed_engine.server_update) in engine           # the very source the simulation runs
    spec = json.loads((tmp_path / "app" / "radlang_fed" / "spec.json").read_text())
    assert spec["sites"] == ["site1", "site2", "site3"] and spec["seeds"] == [5, 6] and spec["features"] == ["f1", "f2", "f3", "f4"]
    assert spec["params"]["strategy"] == "fedyogi" and spec["params"]["tau"] == 1e-3        # Flower's FedYogi default
    toml = (tmp_path / "app" / "pyproject.toml").read_text()
    assert 'serverapp = "radlang_fed.server_app:app"' in toml and 'clientapp = "radlang_fed.client_app:app"' in toml
    header = (tmp_path / "app" / "sites" / "site2" / "train.csv").read_text().split("\n", 1)[0]
    assert header == "f1,f2,f3,f4,outcome"


def test_without_site_data_no_case_is_written(tmp_path):
    written = render_flower(_study(tmp_path), tmp_path / "app")
    assert not any("sites" in p.parts for p in written)


def test_a_study_without_a_federated_stage_is_e750(tmp_path, capsys):
    study = _study(tmp_path, fed="model clf = logistic(clin, target: train.outcome)\nvalidate v = evaluate(clf)")
    try:
        render_flower(study, tmp_path / "app")
    except RenderError as e:
        assert e.code == "E750"
    else:
        raise AssertionError("no E750")
    rc = main(["render", str(tmp_path / "s.rad"), "--target", "flower", "-o", str(tmp_path / "app2")])
    assert rc == 2 and "error[E750]" in capsys.readouterr().err


NETWORK = """
cohort north = phantom(6) {{ size: [16, 16, 16], seed: 1, prefix: "no" }}
cohort south = phantom(6) {{ size: [16, 16, 16], seed: 2, prefix: "so" }}
features img = patches(north) {{ patch: [8, 8, 8] }}
features clin = tabular(north) {{ columns: [age] }}
features both = join(img, clin)
network enc = segresnet(dims: 3, in_channels: 1, out_channels: 2) {{ init_filters: 4, blocks_down: [1, 1], blocks_up: [1], norm: batch }}
{model}
federate fed = fedavg(m) {{ clients: [north.outcome, south.outcome], rounds: 1 }}
"""


def test_a_network_app_carries_the_networks_own_code(tmp_path):
    from radlang.ops import net_models

    spec = tmp_path / "n.rad"
    spec.write_text(NETWORK.format(model="model m = multitask(both, target: north.outcome, network: enc) { heads: [binary(mal, target: "
                                         "north.outcome), continuous(age, target: north.clinical, column: age)] }"))
    res = compile_source(spec.read_text(), str(spec))
    assert res.ok, [(d.code, d.message) for d in res.diagnostics]
    render_flower(res.study, tmp_path / "app", site_data=True)
    engine = (tmp_path / "app" / "radlang_fed" / "engine.py").read_text()
    assert inspect.getsource(net_models.fit_network) in engine          # the network trains with the operator's own loop
    app = json.loads((tmp_path / "app" / "radlang_fed" / "spec.json").read_text())
    assert app["net"]["op"] == "multitask" and app["net"]["n_image"] == 512 and app["net"]["n_tab"] == 1
    assert [h["name"] for h in app["net"]["heads"]] == ["mal", "age"] and app["target_columns"] == ["target0", "target1"]
    assert app["outcome_columns"] == ["outcome"] and app["sites"] == ["north", "south"]
    assert '"monai", "torchsurv", "torchjd"' in (tmp_path / "app" / "pyproject.toml").read_text()
    header = (tmp_path / "app" / "sites" / "south" / "train.csv").read_text().split("\n", 1)[0].split(",")
    assert header[0] == "voxel:0:0:0:0" and header[-3:] == ["age", "target0", "target1"] and len(header) == 515
