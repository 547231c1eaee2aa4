#!/usr/bin/env python3
# A study rendered by radlang for review (UTF-8; no spec text is on these two lines).
#
# Study: Rossi recidivism: elastic-net Cox and a Cox-loss MLP
#
# The stages follow in the order `radlang run` executes them: each one declares its settings as literals
# and calls a function of radlang_runtime.py (beside this file; its sha256 is checked below before it is
# imported). Together they write the same files as `radlang run`, byte for byte.
#
#   python study.py --out DIR      (writes the same files as `radlang run SPEC --out DIR`)
#   python study.py --help         (flags to point the cohorts at other manifests)
#
# spec sha256 d289fadc5257d1a5fa96d288b92420b338b8a861ed0ecf5021b8cf6e684cbca1; radlang 0.1.0; rendered 2000-01-01T00:00:00Z; python <version>.
# Packages, seeds and the study graph: manifest.json. The spec, verbatim: SPEC_TEXT at the end.

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUNTIME_SHA256 = '<sha256 of radlang_runtime.py>'
if hashlib.sha256((HERE / 'radlang_runtime.py').read_bytes()).hexdigest() != RUNTIME_SHA256:
    sys.exit(f"{HERE / 'radlang_runtime.py'} does not match RUNTIME_SHA256: it was edited after the study was rendered")
sys.path.insert(0, str(HERE))
from radlang_runtime import (  # only after its sha256 is checked
    PACKAGES,
    RunContext,
    RunError,
    Stage,
    Study,
    run_dataset,
    run_evaluate,
    run_recipe,
    run_record_sources,
    run_tabular,
    survival_estimator_class,
    write_artefact_manifest,
    write_stage_table,
)

TITLE = 'Rossi recidivism: elastic-net Cox and a Cox-loss MLP'
SPEC_FILE = str((HERE / '<repo>/examples/survival.rad').resolve())
SPEC_PATH = str((HERE / '<repo>/examples/survival.rad').resolve())
SPEC_DIR = str(Path(SPEC_PATH).parent)
STUDY_SEED = 7
STUDY_CONFIG = {'seed': 7, 'out': 'runs/survival', 'workers': 0, 'on_error': 'fail'}
RENDERED_BY = 'radlang 0.1.0 render'


# =====================================================================================
# The study, stage by stage, in the order `radlang run` executes it.
# =====================================================================================


# ---- cohort rossi = dataset(...)   [stateless, seed 1618294221]
#   | cohort rossi = dataset("rossi")
# consumes: nothing
# calls run_dataset: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
def stage_rossi(ctx, args):
    stage = ctx.declare(Stage(
        name='rossi',
        kind='cohort',
        op='dataset',
        params={'name': 'rossi', 'start': 0, 'stop': None, 'site': None},
        seed=1618294221,
        type={'kind': 'Cohort', 'cohort': 'rossi', 'outcome': 'survival', 'channels': 0, 'detail': 'dataset rossi'},
        file=SPEC_PATH,
    ))
    return run_dataset(stage, ctx)


# ---- features clin = tabular(...)   [stateless, seed 2062738593]
#   | features clin = tabular(rossi)
# consumes: cohort <- rossi
# calls run_tabular: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
def stage_clin(ctx, args):
    stage = ctx.declare(Stage(
        name='clin',
        kind='features',
        op='tabular',
        params={'columns': None},
        inputs={'cohort': ['rossi', None]},
        seed=2062738593,
        type={'kind': 'Features', 'cohort': 'rossi', 'outcome': 'survival', 'detail': 'tabular'},
        file=SPEC_PATH,
    ))
    return run_tabular(stage, ctx)


# ---- model deep = survival_mlp(...)   [fitted, seed 352112543]
#   | model deep = survival_mlp(clin, target: rossi.outcome) { hidden: [16], epochs: 300, lr: 0.005 }
# consumes: input <- clin, target <- rossi.outcome
# calls run_recipe: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
# fit on outcome inside the training folds of vdeep
def stage_deep(ctx, args):
    stage = ctx.declare(Stage(
        name='deep',
        kind='model',
        op='survival_mlp',
        params={
            'impute': 'median', 'scale': 'standard', 'search': None, 'class_weight': None, 'hidden': [16], 'epochs': 300,
            'lr': 0.005, 'weight_decay': 0.0001, 'dropout': 0.0,
        },
        inputs={'input': ['clin', None], 'target': ['rossi', 'outcome']},
        seed=352112543,
        type={'kind': 'Model', 'cohort': 'rossi', 'outcome': 'survival', 'detail': 'survival_mlp model'},
        fit='outcome',
        fit_within=['vdeep'],
        file=SPEC_PATH,
    ))
    return run_recipe(stage, ctx)


# ---- model enet = cox(...)   [fitted, seed 584667265]
#   | model enet = cox(clin, target: rossi.outcome) { alpha: 0.05, l1_ratio: 0.5 }
# consumes: input <- clin, target <- rossi.outcome
# calls run_recipe: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
# fit on outcome inside the training folds of v
def stage_enet(ctx, args):
    stage = ctx.declare(Stage(
        name='enet',
        kind='model',
        op='cox',
        params={'impute': 'median', 'scale': 'standard', 'search': None, 'class_weight': None, 'alpha': 0.05, 'l1_ratio': 0.5},
        inputs={'input': ['clin', None], 'target': ['rossi', 'outcome']},
        seed=584667265,
        type={'kind': 'Model', 'cohort': 'rossi', 'outcome': 'survival', 'detail': 'cox model'},
        fit='outcome',
        fit_within=['v'],
        file=SPEC_PATH,
    ))
    return run_recipe(stage, ctx)


def fold_pipeline_v(fold):
    """What `v` fits in every training fold (and on every training case for its final model); `fold`: what the data decide."""
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    return Pipeline([
        ('impute', SimpleImputer(strategy='median', keep_empty_features=True)),
        ('scale', StandardScaler()),
        ('model', survival_estimator_class()(kind='cox', seed=584667265, alpha=0.05, l1_ratio=0.5)),
    ]).set_output(transform='pandas')


# ---- validate v = evaluate(...)   [stateless, seed 1748437080]
#   | validate v = evaluate(enet) {
#   |   cv: kfold(5, repeats: 2)
#   |   horizons: [13, 26, 39]
#   |   bootstrap: 500
#   | }
# consumes: model <- enet
# calls run_evaluate: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
# fit on outcome
def stage_v(ctx, args):
    stage = ctx.declare(Stage(
        name='v',
        kind='validate',
        op='evaluate',
        params={
            'cv': {'kind': 'kfold', 'k': 5, 'repeats': 2, 'groups': None, 'seed': None}, 'metrics': None,
            'horizons': [13.0, 26.0, 39.0], 'ibs_points': 50, 'threshold': None, 'threshold_cv': 3, 'bootstrap': 500,
            'ci': 0.95, 'calibration_bins': 10, 'net_benefit_range': [0.01, 0.99, 0.01],
        },
        inputs={'model': ['enet', None]},
        seed=1748437080,
        type={'kind': 'Evaluation', 'cohort': 'rossi', 'outcome': 'survival', 'detail': 'evaluation'},
        fit='outcome',
        extra={'refit': {'model': 'enet', 'sources': ['clin'], 'nodes': ['enet'], 'edges': [['clin', 'enet', 'input']]}},
        file=SPEC_PATH,
    ))
    return run_evaluate(stage, ctx, pipeline=fold_pipeline_v)


def fold_pipeline_vdeep(fold):
    """What `vdeep` fits in every training fold (and on every training case for its final model); `fold`: what the data
    decide."""
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    return Pipeline([
        ('impute', SimpleImputer(strategy='median', keep_empty_features=True)),
        ('scale', StandardScaler()),
        ('model', survival_estimator_class()(kind='survival_mlp', seed=352112543, hidden=(16,), epochs=300, lr=0.005,
                                           weight_decay=0.0001, dropout=0.0)),
    ]).set_output(transform='pandas')


# ---- validate vdeep = evaluate(...)   [stateless, seed 1569943863]
#   | validate vdeep = evaluate(deep) {
#   |   cv: kfold(5, repeats: 2)
#   |   horizons: [13, 26, 39]
#   |   bootstrap: 500
#   | }
# consumes: model <- deep
# calls run_evaluate: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
# fit on outcome
def stage_vdeep(ctx, args):
    stage = ctx.declare(Stage(
        name='vdeep',
        kind='validate',
        op='evaluate',
        params={
            'cv': {'kind': 'kfold', 'k': 5, 'repeats': 2, 'groups': None, 'seed': None}, 'metrics': None,
            'horizons': [13.0, 26.0, 39.0], 'ibs_points': 50, 'threshold': None, 'threshold_cv': 3, 'bootstrap': 500,
            'ci': 0.95, 'calibration_bins': 10, 'net_benefit_range': [0.01, 0.99, 0.01],
        },
        inputs={'model': ['deep', None]},
        seed=1569943863,
        type={'kind': 'Evaluation', 'cohort': 'rossi', 'outcome': 'survival', 'detail': 'evaluation'},
        fit='outcome',
        extra={'refit': {'model': 'deep', 'sources': ['clin'], 'nodes': ['deep'], 'edges': [['clin', 'deep', 'input']]}},
        file=SPEC_PATH,
    ))
    return run_evaluate(stage, ctx, pipeline=fold_pipeline_vdeep)


# The stages in the order `radlang run` executes them.
STAGES = [
    ('rossi', stage_rossi),
    ('clin', stage_clin),
    ('deep', stage_deep),
    ('enet', stage_enet),
    ('v', stage_v),
    ('vdeep', stage_vdeep),
]


def _resolve(path):
    """A path from the spec is relative to the spec's folder."""
    p = Path(path)
    return p if p.is_absolute() else Path(SPEC_DIR) / p


def run(args):
    """Run every stage in order; returns the run context (ctx.results holds each stage's value)."""
    if hashlib.sha256(SPEC_TEXT.encode()).hexdigest() != SPEC_SHA256:
        sys.exit("SPEC_TEXT does not match SPEC_SHA256: this script was edited after it was rendered")
    args.out.mkdir(parents=True, exist_ok=True)
    ctx = RunContext(Study(TITLE, STUDY_SEED, SPEC_PATH, STUDY_CONFIG), args.out, on_error=STUDY_CONFIG.get("on_error", "fail"))
    t_all = time.perf_counter()
    for name, stage_fn in STAGES:
        t0 = time.perf_counter()
        ctx.results[name] = stage_fn(ctx, args)
        write_stage_table(ctx, name, ctx.results[name])
        ctx.timings[name] = round(time.perf_counter() - t0, 4)
    ctx.timings["total"] = round(time.perf_counter() - t_all, 4)
    write_run_record(ctx)
    write_artefact_manifest(ctx, SPEC_SHA256)
    return ctx


def write_run_record(ctx):
    """run.json, as `radlang run` writes it: the spec's hash, seeds, inputs, exclusions, versions, timings."""
    record = {
        "study": TITLE,
        **run_record_sources(ctx, SPEC_PATH, SPEC_TEXT),
        "seed": STUDY_SEED,
        "stages": [{"name": s.name, "op": s.op, "seed": s.seed, "seconds": ctx.timings.get(s.name)} for s in ctx.study.stages],
        "excluded_cases": ctx.excluded,
        "warnings": ctx.warnings,
        "versions": {"python": sys.version.split()[0], **PACKAGES},
        "platform": platform.platform(),
        "rendered_by": RENDERED_BY,
        "total_seconds": ctx.timings.get("total"),
    }
    if ctx.boundary:
        record["boundary"] = ctx.boundary
    tmp = Path(ctx.out) / ".run.json.tmp"
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(Path(ctx.out) / "run.json")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=TITLE)
    parser.add_argument("--out", default=None, help="output folder (default: the spec's `out`, relative to the spec's folder)")
    args = parser.parse_args(argv)
    args.out = Path(args.out) if args.out else _resolve('runs/survival')
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        ctx = run(args)
    except RunError as e:
        for d in e.diagnostics:
            print(f"error[{d.code}]: {d.message}" + (f"\n  hint: {d.hint}" if d.hint else ""), file=sys.stderr)
        return 1
    print(f"done; outputs in {args.out}", file=sys.stderr)
    for line in getattr(ctx, "summary", ()):
        print(line, file=sys.stderr)
    return 0


SPEC_SHA256 = 'd289fadc5257d1a5fa96d288b92420b338b8a861ed0ecf5021b8cf6e684cbca1'
SPEC_TEXT = (
    '# Recidivism after release from prison (Rossi et al. 1980, shipped with lifelines): weeks to re-arrest over one\n'
    '# year of follow-up, 432 men, 7 covariates. An elastic-net Cox model and a Cox-loss neural network, each validated\n'
    "# by repeated cross-validation with every fit inside the training folds: Harrell's and Uno's C, the time-dependent\n"
    '# AUC, Brier score and calibration at 3, 6 and 9 months, the integrated Brier score, and Kaplan-Meier curves of the\n'
    "# risk groups split at each training fold's median risk, with the log-rank test.\n"
    'study "Rossi recidivism: elastic-net Cox and a Cox-loss MLP" {\n'
    '  seed: 7\n'
    '  out: "runs/survival"\n'
    '}\n'
    '\n'
    'cohort rossi = dataset("rossi")\n'
    'features clin = tabular(rossi)\n'
    '\n'
    'model enet = cox(clin, target: rossi.outcome) { alpha: 0.05, l1_ratio: 0.5 }\n'
    'model deep = survival_mlp(clin, target: rossi.outcome) { hidden: [16], epochs: 300, lr: 0.005 }\n'
    '\n'
    'validate v = evaluate(enet) {\n'
    '  cv: kfold(5, repeats: 2)\n'
    '  horizons: [13, 26, 39]\n'
    '  bootstrap: 500\n'
    '}\n'
    '\n'
    'validate vdeep = evaluate(deep) {\n'
    '  cv: kfold(5, repeats: 2)\n'
    '  horizons: [13, 26, 39]\n'
    '  bootstrap: 500\n'
    '}\n'
)


if __name__ == "__main__":
    raise SystemExit(main())
