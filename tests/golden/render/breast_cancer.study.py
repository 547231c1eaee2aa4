#!/usr/bin/env python3
# A study rendered by radlang for review (UTF-8; no spec text is on these two lines).
#
# Study: Breast cancer: image-derived features, LASSO + logistic
#
# The stages follow in the order `radlang run` executes them: each one declares its settings as literals
# and calls a function of radlang_runtime.py (beside this file; its sha256 is checked below before it is
# imported). Together they write the same files as `radlang run`, byte for byte.
#
#   python study.py --out DIR      (writes the same files as `radlang run SPEC --out DIR`)
#   python study.py --help         (flags to point the cohorts at other manifests)
#
# spec sha256 6037356c0f55f72b79af7c63478593229eef1b5a1f8c1a7ce5f30a004bcecd7c; radlang 0.1.0; rendered 2000-01-01T00:00:00Z; python <version>.
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
    make_correlation,
    make_lasso,
    make_variance,
    run_dataset,
    run_evaluate,
    run_recipe,
    run_record_sources,
    run_tabular,
    write_artefact_manifest,
    write_stage_table,
)

TITLE = 'Breast cancer: image-derived features, LASSO + logistic'
SPEC_FILE = str((HERE / '<repo>/examples/breast_cancer.rad').resolve())
SPEC_PATH = str((HERE / '<repo>/examples/breast_cancer.rad').resolve())
SPEC_DIR = str(Path(SPEC_PATH).parent)
STUDY_SEED = 42
STUDY_CONFIG = {'seed': 42, 'out': 'runs/breast_cancer', 'workers': 0, 'on_error': 'fail'}
RENDERED_BY = 'radlang 0.1.0 render'


# =====================================================================================
# The study, stage by stage, in the order `radlang run` executes it.
# =====================================================================================


# ---- cohort dev = dataset(...)   [stateless, seed 1314544491]
#   | cohort dev = dataset("breast_cancer") { stop: 400 }
# consumes: nothing
# calls run_dataset: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
def stage_dev(ctx, args):
    stage = ctx.declare(Stage(
        name='dev',
        kind='cohort',
        op='dataset',
        params={'name': 'breast_cancer', 'start': 0, 'stop': 400, 'site': None},
        seed=1314544491,
        type={'kind': 'Cohort', 'cohort': 'dev', 'outcome': 'binary', 'channels': 0, 'detail': 'dataset breast_cancer'},
        file=SPEC_PATH,
    ))
    return run_dataset(stage, ctx)


# ---- cohort ext = dataset(...)   [stateless, seed 240572571]
#   | cohort ext = dataset("breast_cancer") { start: 400 }
# consumes: nothing
# calls run_dataset: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
def stage_ext(ctx, args):
    stage = ctx.declare(Stage(
        name='ext',
        kind='cohort',
        op='dataset',
        params={'name': 'breast_cancer', 'start': 400, 'stop': None, 'site': None},
        seed=240572571,
        type={'kind': 'Cohort', 'cohort': 'ext', 'outcome': 'binary', 'channels': 0, 'detail': 'dataset breast_cancer'},
        file=SPEC_PATH,
    ))
    return run_dataset(stage, ctx)


# ---- features feats = tabular(...)   [stateless, seed 140706603]
#   | features feats = tabular(dev)
# consumes: cohort <- dev
# calls run_tabular: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
def stage_feats(ctx, args):
    stage = ctx.declare(Stage(
        name='feats',
        kind='features',
        op='tabular',
        params={'columns': None},
        inputs={'cohort': ['dev', None]},
        seed=140706603,
        type={'kind': 'Features', 'cohort': 'dev', 'outcome': 'binary', 'detail': 'tabular'},
        file=SPEC_PATH,
    ))
    return run_tabular(stage, ctx)


# ---- select keep = variance(...)   [fitted, seed 1605733939]
#   | select keep = variance(feats) { min: 0.0 }
# consumes: input <- feats
# calls run_recipe: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
# fit on data inside the training folds of v
def stage_keep(ctx, args):
    stage = ctx.declare(Stage(
        name='keep',
        kind='select',
        op='variance',
        params={'min': 0.0},
        inputs={'input': ['feats', None]},
        seed=1605733939,
        type={'kind': 'Features', 'cohort': 'dev', 'outcome': 'binary', 'detail': 'variance selection'},
        fit='data',
        fit_within=['v'],
        file=SPEC_PATH,
    ))
    return run_recipe(stage, ctx)


# ---- select nored = correlation(...)   [fitted, seed 1897486107]
#   | select nored = correlation(keep) { max: 0.95 }
# consumes: input <- keep
# calls run_recipe: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
# fit on data inside the training folds of v
def stage_nored(ctx, args):
    stage = ctx.declare(Stage(
        name='nored',
        kind='select',
        op='correlation',
        params={'max': 0.95, 'method': 'pearson'},
        inputs={'input': ['keep', None]},
        seed=1897486107,
        type={'kind': 'Features', 'cohort': 'dev', 'outcome': 'binary', 'detail': 'correlation selection'},
        fit='data',
        fit_within=['v'],
        file=SPEC_PATH,
    ))
    return run_recipe(stage, ctx)


# ---- select sig = lasso(...)   [fitted, seed 2125230116]
#   | select sig = lasso(nored, target: dev.outcome) { cv: 5 }
# consumes: input <- nored, target <- dev.outcome
# calls run_recipe: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
# fit on outcome inside the training folds of v
def stage_sig(ctx, args):
    stage = ctx.declare(Stage(
        name='sig',
        kind='select',
        op='lasso',
        params={'cv': 5, 'n_alphas': 10, 'scoring': 'neg_log_loss', 'max_features': None, 'min_features': 1},
        inputs={'input': ['nored', None], 'target': ['dev', 'outcome']},
        seed=2125230116,
        type={'kind': 'Features', 'cohort': 'dev', 'outcome': 'binary', 'detail': 'lasso selection'},
        fit='outcome',
        fit_within=['v'],
        file=SPEC_PATH,
    ))
    return run_recipe(stage, ctx)


# ---- model clf = logistic(...)   [fitted, seed 353799636]
#   | model clf = logistic(sig, target: dev.outcome) { C: 1.0 }
# consumes: input <- sig, target <- dev.outcome
# calls run_recipe: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
# fit on outcome inside the training folds of v
def stage_clf(ctx, args):
    stage = ctx.declare(Stage(
        name='clf',
        kind='model',
        op='logistic',
        params={
            'impute': 'median', 'scale': 'standard', 'search': None, 'class_weight': None, 'C': 1.0, 'penalty': 'l2',
            'l1_ratio': None, 'max_iter': 1000,
        },
        inputs={'input': ['sig', None], 'target': ['dev', 'outcome']},
        seed=353799636,
        type={'kind': 'Model', 'cohort': 'dev', 'outcome': 'binary', 'detail': 'logistic model'},
        fit='outcome',
        fit_within=['v'],
        file=SPEC_PATH,
    ))
    return run_recipe(stage, ctx)


def fold_pipeline_v(fold):
    """What `v` fits in every training fold (and on every training case for its final model); `fold`: what the data decide."""
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    return Pipeline([
        ('impute', SimpleImputer(strategy='median', keep_empty_features=True)),
        ('keep', make_variance({'min': 0.0}, 1605733939, fold['inputs']['keep'])),
        ('nored', make_correlation({'max': 0.95, 'method': 'pearson'}, 1897486107, fold['inputs']['nored'])),
        ('sig', make_lasso({'cv': 5, 'n_alphas': 10, 'scoring': 'neg_log_loss', 'max_features': None, 'min_features': 1}, 2125230116,
                           fold['inputs']['sig'])),
        ('scale', StandardScaler()),
        ('model', LogisticRegression(max_iter=1000, class_weight=None, random_state=353799636, C=1.0)),
    ]).set_output(transform='pandas')


# ---- validate v = evaluate(...)   [stateless, seed 1981343404]
#   | validate v = evaluate(clf) {
#   |   cv: stratified_kfold(5, repeats: 3)
#   |   external: ext
#   |   metrics: [auc, roc, sensitivity, specificity, brier, calibration, net_benefit]
#   |   threshold: sensitivity >= 0.9
#   |   bootstrap: 1000
#   | }
# consumes: external <- ext, model <- clf
# calls run_evaluate: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
# fit on outcome
def stage_v(ctx, args):
    stage = ctx.declare(Stage(
        name='v',
        kind='validate',
        op='evaluate',
        params={
            'cv': {'kind': 'stratified_kfold', 'k': 5, 'repeats': 3, 'groups': None, 'seed': None},
            'metrics': ['auc', 'roc', 'sensitivity', 'specificity', 'brier', 'calibration', 'net_benefit'], 'horizons': None,
            'ibs_points': 50, 'threshold': {'metric': 'sensitivity', 'op': '>=', 'value': 0.9}, 'threshold_cv': 3,
            'bootstrap': 1000, 'ci': 0.95, 'calibration_bins': 10, 'net_benefit_range': [0.01, 0.99, 0.01],
        },
        inputs={'external': ['ext', None], 'model': ['clf', None]},
        seed=1981343404,
        type={'kind': 'Evaluation', 'cohort': 'dev', 'outcome': 'binary', 'detail': 'evaluation'},
        fit='outcome',
        extra={
            'refit': {
                'model': 'clf', 'sources': ['feats'], 'nodes': ['keep', 'nored', 'sig', 'clf'],
                'edges': [['feats', 'keep', 'input'], ['keep', 'nored', 'input'], ['nored', 'sig', 'input'], ['sig', 'clf', 'input']],
            },
        },
        file=SPEC_PATH,
    ))
    return run_evaluate(stage, ctx, pipeline=fold_pipeline_v)


# The stages in the order `radlang run` executes them.
STAGES = [
    ('dev', stage_dev),
    ('ext', stage_ext),
    ('feats', stage_feats),
    ('keep', stage_keep),
    ('nored', stage_nored),
    ('sig', stage_sig),
    ('clf', stage_clf),
    ('v', stage_v),
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
    args.out = Path(args.out) if args.out else _resolve('runs/breast_cancer')
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


SPEC_SHA256 = '6037356c0f55f72b79af7c63478593229eef1b5a1f8c1a7ce5f30a004bcecd7c'
SPEC_TEXT = (
    '# Breast cancer (Wisconsin diagnostic): 30 image-derived features of fine-needle aspirate images,\n'
    '# malignant vs benign. Development on the first 400 cases, external validation on the other 169.\n'
    'study "Breast cancer: image-derived features, LASSO + logistic" {\n'
    '  seed: 42\n'
    '  out: "runs/breast_cancer"\n'
    '}\n'
    '\n'
    'cohort dev = dataset("breast_cancer") { stop: 400 }\n'
    'cohort ext = dataset("breast_cancer") { start: 400 }\n'
    '\n'
    'features feats = tabular(dev)\n'
    'select keep = variance(feats) { min: 0.0 }\n'
    'select nored = correlation(keep) { max: 0.95 }\n'
    'select sig = lasso(nored, target: dev.outcome) { cv: 5 }\n'
    'model clf = logistic(sig, target: dev.outcome) { C: 1.0 }\n'
    '\n'
    'validate v = evaluate(clf) {\n'
    '  cv: stratified_kfold(5, repeats: 3)\n'
    '  external: ext\n'
    '  metrics: [auc, roc, sensitivity, specificity, brier, calibration, net_benefit]\n'
    '  threshold: sensitivity >= 0.9\n'
    '  bootstrap: 1000\n'
    '}\n'
)


if __name__ == "__main__":
    raise SystemExit(main())
