"""radlang's classes that a saved model may name have one list, predict.trusted_classes: `radlang predict` (and SHAP,
which loads models the same way) lets skops load those and the types of predict.TRUSTED_MODULES, nothing else; the
rendered script, where radlang cannot be imported, makes exactly those importable by their names (the SHAP
explainer's stand-ins). Every class a radlang module builds on demand for saved models is on the list."""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import pkgutil
from types import SimpleNamespace

import pytest
from render_helpers import compile_text, run_script

import radlang.ops
from radlang.predict import TRUSTED_MODULES, PredictError, load_model, trusted_classes

SHAP = """study "stand-ins" { seed: 5 }
cohort dev = dataset("breast_cancer") { stop: 40 }
features f = tabular(dev)
model clf = logistic(f, target: dev.outcome)
validate v = evaluate(clf) { cv: stratified_kfold(2), bootstrap: 0, metrics: [auc] }
explain why = shap(v) { explainer: partition, max_evals: 50 }
"""

# Run with radlang unimportable (render_helpers.run_script): imports the runtime of a rendered study, installs the SHAP
# explainer's stand-ins and prints every class each stand-in module holds, by the name skops records for it.
STAND_INS = """import json, sys
sys.path.insert(0, sys.argv[1])
import radlang_runtime
radlang_runtime._importable_estimator_classes()
print(json.dumps(sorted(f"{v.__module__}.{v.__qualname__}" for m, mod in list(sys.modules.items()) if m.startswith("radlang.")
                        for v in vars(mod).values() if isinstance(v, type))))
"""


def _built_on_demand():
    """`module.Class` of every class a radlang.ops module's `__getattr__` builds (the names it answers, among the
    strings in its source), each checked to carry that very name."""
    names = set()
    for info in pkgutil.iter_modules(radlang.ops.__path__, "radlang.ops."):
        mod = importlib.import_module(info.name)
        hook = vars(mod).get("__getattr__")
        if hook is None:
            continue
        for s in {n.value for n in ast.walk(ast.parse(inspect.getsource(hook))) if isinstance(n, ast.Constant) and isinstance(n.value, str)}:
            try:
                cls = hook(s)
            except AttributeError:
                continue
            assert isinstance(cls, type) and f"{cls.__module__}.{cls.__qualname__}" == f"{mod.__name__}.{s}", (mod.__name__, s, cls)
            names.add(f"{mod.__name__}.{s}")
    return names


def test_every_class_radlang_builds_for_saved_models_is_trusted():
    trusted = trusted_classes()
    assert _built_on_demand() == set(trusted)
    for name, factory in trusted.items():
        module, _, cls = name.rpartition(".")
        assert factory() is getattr(importlib.import_module(module), cls), name   # the class a saved model's name resolves to


def test_the_rendered_script_stands_in_for_exactly_the_trusted_classes(tmp_path):
    from radlang.backends.render.script import render_to_dir

    folder = render_to_dir(compile_text(SHAP, tmp_path / "s.rad"), tmp_path / "review")
    (tmp_path / "stand_ins.py").write_text(STAND_INS, encoding="utf-8")
    proc = run_script(tmp_path / "stand_ins.py", str(folder))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.splitlines()[-1]) == sorted(trusted_classes())


class _Skops:
    """skops.io as load_model sees it, for a file naming `types`: loads returns what it was told to trust."""

    def __init__(self, types):
        self.types = types

    def get_untrusted_types(self, data):
        return list(self.types)

    def loads(self, data, trusted):
        return sorted(trusted)


STAGE = SimpleNamespace(name="v", span=None)


def test_predict_loads_exactly_the_trusted_classes_and_libraries(monkeypatch):
    from radlang.ops import fold_engine

    libraries = ["sklearn.pipeline.Pipeline", "sksurv.linear_model.CoxPHSurvivalAnalysis", "numpy.dtype", "scipy.sparse._csr.csr_matrix"]
    assert all(t.startswith(TRUSTED_MODULES) for t in libraries)
    monkeypatch.setattr(fold_engine, "skops_io", lambda: _Skops([*trusted_classes(), *libraries]))
    assert load_model(b"PK", STAGE) == sorted([*trusted_classes(), *libraries])
    for other in ("builtins.eval", "radlang.ops.select.Other", "radlang.predict.trusted_classes", "sklearnx.Estimator", "os.system"):
        monkeypatch.setattr(fold_engine, "skops_io", lambda other=other: _Skops([*trusted_classes(), other]))
        with pytest.raises(PredictError) as e:
            load_model(b"PK", STAGE)
        assert [d.code for d in e.value.diagnostics] == ["E735"] and e.value.diagnostics[0].message.endswith(f"does not load: {other}")


class Outsider:
    """A class no list trusts."""

    def __init__(self, kind="variance"):
        self.kind = kind


def test_a_saved_model_naming_another_class_is_refused_and_a_trusted_one_loads():
    import numpy as np
    import pandas as pd

    from radlang.ops.fold_engine import skops_io
    from radlang.ops.select import selector_class

    X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 1.0, 1.0, 1.0]})
    selector = selector_class()(kind="variance", params={"min": 0.0}).fit(X)
    loaded = load_model(skops_io().dumps(selector), STAGE)
    assert type(loaded) is selector_class() and np.array_equal(loaded.support_, selector.support_) and list(loaded.support_) == [True, False]
    with pytest.raises(PredictError) as e:
        load_model(skops_io().dumps([selector, Outsider()]), STAGE)
    assert e.value.diagnostics[0].code == "E735" and e.value.diagnostics[0].message.endswith(f"does not load: {__name__}.Outsider")
