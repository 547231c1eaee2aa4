"""The fold pipeline in study.py is the code the study runs: the validation stage's function passes it to `run_evaluate`,
and it is the very source `radlang run` runs (models.pipeline_source, written once). The estimator it builds has the
parameters of the final model `radlang run` fits and saves."""

from __future__ import annotations

import ast
import json

import pytest
from render_helpers import compile_text, run_script

from radlang.backends.executor import run_study
from radlang.backends.render.script import render_to_dir
from radlang.ops.evaluation_run import fold_pipeline_code

SPEC = """study "folds" { seed: 3 }
cohort dev = dataset("breast_cancer") { stop: 120 }
cohort ext = dataset("breast_cancer") { start: 500 }
features f = tabular(dev)
select keep = variance(f) { min: 0.0 }
select sig = lasso(keep, target: dev.outcome) { cv: 3, max_features: 5 }
model clf = logistic(sig, target: dev.outcome) { C: 0.3, penalty: l1 }
validate v = evaluate(clf) { cv: "none", external: ext, metrics: [auc], bootstrap: 0 }
"""


def _params(est):
    """Every parameter of an estimator and of the estimators inside it, estimators by type; the fold-only inputs
    (patients, raters) are left out: the saved model drops them."""
    out = {}
    for k, v in sorted(est.get_params(deep=True).items()):
        if k.split("__")[-1] == "fold_inputs":
            continue
        if hasattr(v, "get_params"):
            v = type(v).__name__
        elif isinstance(v, list) and v and isinstance(v[0], tuple):   # a Pipeline's steps: their names
            v = [x[0] for x in v]
        out[k] = json.dumps(v, sort_keys=True, default=repr)   # nan == nan; skops stores dicts with sorted keys
    return out


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("folds")
    (d / "folds.rad").write_text(SPEC, encoding="utf-8")
    study = compile_text(SPEC, d / "folds.rad")
    run_study(study, out=d / "run", workers=1, quiet=True)
    return d, study, render_to_dir(study, d / "review", date="2000-01-01T00:00:00Z")


def test_study_py_holds_the_source_radlang_run_runs(folder):
    d, study, review = folder
    text = (review / "study.py").read_text(encoding="utf-8")
    tree = ast.parse(text)
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "fold_pipeline_v")
    (_, name, source), = fold_pipeline_code(study.stage("v"), study)
    assert name == "fold_pipeline_v" and ast.get_source_segment(text, fn) + "\n" == source
    # the stage passes it to the evaluation: it is what the study fits, not a comment
    stage_v = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "stage_v")
    assert ast.unparse(stage_v.body[-1]) == "return run_evaluate(stage, ctx, pipeline=fold_pipeline_v)"
    assert "('keep', make_variance({'min': 0.0}, " in source and "('sig', make_lasso({'cv': 3, " in source
    assert "LogisticRegression(max_iter=1000, class_weight=None, random_state=" in source


def test_rendered_pipeline_has_the_parameters_of_the_model_radlang_run_fits(folder):
    import skops.io as sio

    from radlang.ops.select import make_lasso, make_variance

    d, study, review = folder
    data = (d / "run" / "models" / "v.skops").read_bytes()
    fitted = sio.loads(data, trusted=sio.get_untrusted_types(data=data))
    text = (review / "study.py").read_text(encoding="utf-8")
    fn = next(n for n in ast.parse(text).body if isinstance(n, ast.FunctionDef) and n.name == "fold_pipeline_v")
    scope = {"make_variance": make_variance, "make_lasso": make_lasso}
    exec(ast.get_source_segment(text, fn), scope)  # noqa: S102 -- the rendered study's own function
    built = scope["fold_pipeline_v"]({"inputs": {"keep": None, "sig": None}, "model": None, "columns": {}, "classes": 2, "branches": None})
    assert [n for n, _ in built.steps] == ["impute", "keep", "sig", "scale", "model"]
    assert _params(built) == _params(fitted)
    assert built.named_steps["model"].get_params()["solver"] == "liblinear"   # `fold['classes']` decided it: 2 classes
    # a pipeline that differs in one setting is caught
    built.named_steps["sig"].params = {**built.named_steps["sig"].params, "cv": 4}
    assert _params(built) != _params(fitted)


def test_the_rendered_study_runs_its_pipeline(folder):
    d, study, review = folder
    proc = run_script(review / "study.py", "--out", str(d / "script"))
    assert proc.returncode == 0, proc.stderr
    assert (d / "script" / "models" / "v.skops").read_bytes() == (d / "run" / "models" / "v.skops").read_bytes()
