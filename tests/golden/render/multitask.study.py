#!/usr/bin/env python3
# A study rendered by radlang for review (UTF-8; no spec text is on these two lines).
#
# Study: Multi-task heads: malignancy, grade and stage from one backbone
#
# The stages follow in the order `radlang run` executes them: each one declares its settings as literals
# and calls a function of radlang_runtime.py (beside this file; its sha256 is checked below before it is
# imported). Together they write the same files as `radlang run`, byte for byte.
#
#   python study.py --out DIR      (writes the same files as `radlang run SPEC --out DIR`)
#   python study.py --help         (flags to point the cohorts at other manifests)
#
# spec sha256 b6cb3f200f0f551fdaf973e7ad7e1081bd78347cfe2419cd8d026981ae33fe3b; radlang 0.1.0; rendered 2000-01-01T00:00:00Z; python <version>.
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
    make_multitask,
    run_evaluate,
    run_network,
    run_patches,
    run_phantom,
    run_recipe,
    run_record_sources,
    write_artefact_manifest,
    write_stage_table,
)

TITLE = 'Multi-task heads: malignancy, grade and stage from one backbone'
SPEC_FILE = str((HERE / '<repo>/examples/multitask.rad').resolve())
SPEC_PATH = str((HERE / '<repo>/examples/multitask.rad').resolve())
SPEC_DIR = str(Path(SPEC_PATH).parent)
STUDY_SEED = 11
STUDY_CONFIG = {'seed': 11, 'out': 'runs/multitask', 'workers': 0, 'on_error': 'fail'}
RENDERED_BY = 'radlang 0.1.0 render'


# =====================================================================================
# The study, stage by stage, in the order `radlang run` executes it.
# =====================================================================================


# ---- network enc = resnet(...)   [stateless, seed 2044681778]
#   | network enc = resnet(dims: 3, in_channels: 1, out_channels: 2) { depth: 10, widen_factor: 0.125 }
# consumes: nothing
# calls run_network: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
def stage_enc(ctx, args):
    stage = ctx.declare(Stage(
        name='enc',
        kind='network',
        op='resnet',
        params={'dims': 3, 'in_channels': 1, 'out_channels': 2, 'depth': 10, 'widen_factor': 0.125},
        seed=2044681778,
        type={
            'kind': 'Network', 'dims': 3, 'channels': 1, 'head': 'classification', 'classes': 2, 'divisor': 16,
            'detail': '3D ResNet10',
        },
        file=SPEC_PATH,
    ))
    # the library object these settings make:
    #   monai.networks.nets.resnet10(
    #       spatial_dims=3,
    #       n_input_channels=1,
    #       num_classes=2,
    #       widen_factor=0.125,
    #   )
    return run_network(stage, ctx)


# ---- cohort train = phantom(...)   [stateless, seed 1141493750]
#   | cohort train = phantom(60) { effect: 1.5, size: [24, 24, 24], grades: 3, stage_effect: 1.5 }
# consumes: nothing
# calls run_phantom: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
def stage_train(ctx, args):
    stage = ctx.declare(Stage(
        name='train',
        kind='cohort',
        op='phantom',
        params={
            'cases': 60, 'seed': None, 'effect': 1.5, 'sites': 1, 'site_shift': 0.0, 'noise': 8.0, 'size': [24, 24, 24],
            'spacing': [1.0, 1.0, 1.0], 'prefix': None, 'site_effect': 1.0, 'site_blur': 0.0, 'grades': 3, 'stage_effect': 1.5,
            'outcome': 'malignant',
        },
        seed=1141493750,
        type={
            'kind': 'Cohort', 'cohort': 'train', 'outcome': 'binary', 'dims': 3, 'channels': 1, 'has_mask': True,
            'detail': 'phantom',
        },
        file=SPEC_PATH,
    ))
    return run_phantom(stage, ctx)


# ---- features img = patches(...)   [stateless, seed 759019028]
#   | features img = patches(train) { patch: [16, 16, 16], spacing: [1mm, 1mm, 1mm] }
# consumes: cohort <- train
# calls run_patches: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
def stage_img(ctx, args):
    stage = ctx.declare(Stage(
        name='img',
        kind='features',
        op='patches',
        params={
            'patch': [16, 16, 16], 'dims': 3, 'slices': None, 'spacing': [1.0, 1.0, 1.0], 'crop': 'roi', 'mask_channel': False,
            'mask_target': False, 'normalize': 'zscore',
        },
        inputs={'cohort': ['train', None]},
        seed=759019028,
        type={
            'kind': 'Features', 'cohort': 'train', 'dims': 3, 'channels': 1, 'patch': (16, 16, 16),
            'detail': '3D image patches 16x16x16, 1 channel(s)',
        },
        file=SPEC_PATH,
    ))
    return run_patches(stage, ctx)


# ---- model fixed = multitask(...)   [fitted, seed 309000226]
#   | model fixed = multitask(img, target: train.outcome, network: enc) {
#   |   heads: [binary(malignancy, target: train.outcome),
#   |           multiclass(grade, target: train.clinical, column: grade, weight: 0.5),
#   |           multiclass(stage, target: train.clinical, column: stage, weight: 0.5)]
#   |   combine: fixed
#   |   epochs: 12
#   |   batch: 8
#   |   hidden: 16
#   |   patience: 3
#   | }
# consumes: input <- img, network <- enc, target <- train.outcome
# calls run_recipe: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
# fit on outcome inside the training folds of fixed_weights
def stage_fixed(ctx, args):
    stage = ctx.declare(Stage(
        name='fixed',
        kind='model',
        op='multitask',
        params={
            'heads': [
                {'kind': 'binary', 'name': 'malignancy', 'target': 'train.outcome', 'column': None, 'weight': 1.0},
                {'kind': 'multiclass', 'name': 'grade', 'target': 'train.clinical', 'column': 'grade', 'weight': 0.5},
                {'kind': 'multiclass', 'name': 'stage', 'target': 'train.clinical', 'column': 'stage', 'weight': 0.5},
            ],
            'combine': 'fixed', 'cagrad_c': 0.5, 'task_norm': False, 'epochs': 12, 'batch': 8, 'optimizer': 'adam', 'lr': 0.001,
            'weight_decay': 0.0, 'schedule': 'constant', 'hidden': 16, 'dropout': 0.0, 'validation': 0.2, 'patience': 3,
        },
        inputs={'input': ['img', None], 'network': ['enc', None], 'target': ['train', 'outcome']},
        seed=309000226,
        type={
            'kind': 'Model', 'cohort': 'train', 'outcome': 'binary', 'head': 'classification', 'patch': (16, 16, 16),
            'detail': 'multitask model',
        },
        fit='outcome',
        fit_within=['fixed_weights'],
        file=SPEC_PATH,
    ))
    return run_recipe(stage, ctx)


def fold_pipeline_fixed_weights(fold):
    """What `fixed_weights` fits in every training fold (and on every training case for its final model); `fold`: what the data
    decide."""
    from sklearn.pipeline import Pipeline
    import monai.networks.nets
    import torch
    return Pipeline([
        ('model', make_multitask({'impute': None, 'scale': None, 'search': None, 'hyper': {'heads': [{'kind': 'binary',
                                 'name': 'malignancy', 'target': 'train.outcome', 'column': None, 'weight': 1.0}, {'kind': 'multiclass',
                                 'name': 'grade', 'target': 'train.clinical', 'column': 'grade', 'weight': 0.5}, {'kind': 'multiclass',
                                 'name': 'stage', 'target': 'train.clinical', 'column': 'stage', 'weight': 0.5}], 'combine': 'fixed',
                                 'cagrad_c': 0.5, 'task_norm': False, 'epochs': 12, 'batch': 8, 'optimizer': 'adam', 'lr': 0.001,
                                 'weight_decay': 0.0, 'schedule': 'constant', 'hidden': 16, 'dropout': 0.0, 'validation': 0.2,
                                 'patience': 3}, 'networks': {'network': {'arch': 'resnet', 'params': {'dims': 3, 'in_channels': 1,
                                 'out_channels': 2, 'depth': 10, 'widen_factor': 0.125}}}, 'head': 'classification',
                                 'classes': fold['classes']}, 309000226, fold['model'],
                                 backbone=lambda: monai.networks.nets.resnet10(spatial_dims=3, n_input_channels=1, num_classes=2,
                                                                               widen_factor=0.125),
                                 losses={'malignancy': torch.nn.CrossEntropyLoss(), 'grade': torch.nn.CrossEntropyLoss(),
                                         'stage': torch.nn.CrossEntropyLoss()},
                                 optimizer=lambda parameters: torch.optim.Adam(parameters, lr=0.001, weight_decay=0.0),
                                 scheduler=lambda optimizer: None)),
    ]).set_output(transform='pandas')


# ---- validate fixed_weights = evaluate(...)   [stateless, seed 1355930315]
#   | validate fixed_weights = evaluate(fixed) {
#   |   cv: stratified_kfold(4, seed: 1)
#   |   metrics: [auc, brier, calibration]
#   |   bootstrap: 200
#   | }
# consumes: model <- fixed
# calls run_evaluate: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
# fit on outcome
def stage_fixed_weights(ctx, args):
    stage = ctx.declare(Stage(
        name='fixed_weights',
        kind='validate',
        op='evaluate',
        params={
            'cv': {'kind': 'stratified_kfold', 'k': 4, 'repeats': 1, 'groups': None, 'seed': 1},
            'metrics': ['auc', 'brier', 'calibration'], 'horizons': None, 'ibs_points': 50, 'threshold': None,
            'threshold_cv': 3, 'bootstrap': 200, 'ci': 0.95, 'calibration_bins': 10, 'net_benefit_range': [0.01, 0.99, 0.01],
        },
        inputs={'model': ['fixed', None]},
        seed=1355930315,
        type={
            'kind': 'Evaluation', 'cohort': 'train', 'outcome': 'binary', 'head': 'classification', 'patch': (16, 16, 16),
            'detail': 'evaluation',
        },
        fit='outcome',
        extra={'refit': {'model': 'fixed', 'sources': ['img'], 'nodes': ['fixed'], 'edges': [['img', 'fixed', 'input']]}},
        file=SPEC_PATH,
    ))
    return run_evaluate(stage, ctx, pipeline=fold_pipeline_fixed_weights)


# ---- model pcgrad = multitask(...)   [fitted, seed 1761549482]
#   | model pcgrad = multitask(img, target: train.outcome, network: enc) like fixed { combine: pcgrad, task_norm: true }
# consumes: input <- img, network <- enc, target <- train.outcome
# calls run_recipe: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
# fit on outcome inside the training folds of gradient_surgery
def stage_pcgrad(ctx, args):
    stage = ctx.declare(Stage(
        name='pcgrad',
        kind='model',
        op='multitask',
        params={
            'heads': [
                {'kind': 'binary', 'name': 'malignancy', 'target': 'train.outcome', 'column': None, 'weight': 1.0},
                {'kind': 'multiclass', 'name': 'grade', 'target': 'train.clinical', 'column': 'grade', 'weight': 0.5},
                {'kind': 'multiclass', 'name': 'stage', 'target': 'train.clinical', 'column': 'stage', 'weight': 0.5},
            ],
            'combine': 'pcgrad', 'cagrad_c': 0.5, 'task_norm': True, 'epochs': 12, 'batch': 8, 'optimizer': 'adam', 'lr': 0.001,
            'weight_decay': 0.0, 'schedule': 'constant', 'hidden': 16, 'dropout': 0.0, 'validation': 0.2, 'patience': 3,
        },
        inputs={'input': ['img', None], 'network': ['enc', None], 'target': ['train', 'outcome']},
        seed=1761549482,
        type={
            'kind': 'Model', 'cohort': 'train', 'outcome': 'binary', 'head': 'classification', 'patch': (16, 16, 16),
            'detail': 'multitask model',
        },
        fit='outcome',
        fit_within=['gradient_surgery'],
        file=SPEC_PATH,
    ))
    return run_recipe(stage, ctx)


def fold_pipeline_gradient_surgery(fold):
    """What `gradient_surgery` fits in every training fold (and on every training case for its final model); `fold`: what the
    data decide."""
    from sklearn.pipeline import Pipeline
    import monai.networks.nets
    import torch
    return Pipeline([
        ('model', make_multitask({'impute': None, 'scale': None, 'search': None, 'hyper': {'heads': [{'kind': 'binary',
                                 'name': 'malignancy', 'target': 'train.outcome', 'column': None, 'weight': 1.0}, {'kind': 'multiclass',
                                 'name': 'grade', 'target': 'train.clinical', 'column': 'grade', 'weight': 0.5}, {'kind': 'multiclass',
                                 'name': 'stage', 'target': 'train.clinical', 'column': 'stage', 'weight': 0.5}], 'combine': 'pcgrad',
                                 'cagrad_c': 0.5, 'task_norm': True, 'epochs': 12, 'batch': 8, 'optimizer': 'adam', 'lr': 0.001,
                                 'weight_decay': 0.0, 'schedule': 'constant', 'hidden': 16, 'dropout': 0.0, 'validation': 0.2,
                                 'patience': 3}, 'networks': {'network': {'arch': 'resnet', 'params': {'dims': 3, 'in_channels': 1,
                                 'out_channels': 2, 'depth': 10, 'widen_factor': 0.125}}}, 'head': 'classification',
                                 'classes': fold['classes']}, 1761549482, fold['model'],
                                 backbone=lambda: monai.networks.nets.resnet10(spatial_dims=3, n_input_channels=1, num_classes=2,
                                                                               widen_factor=0.125),
                                 losses={'malignancy': torch.nn.CrossEntropyLoss(), 'grade': torch.nn.CrossEntropyLoss(),
                                         'stage': torch.nn.CrossEntropyLoss()},
                                 optimizer=lambda parameters: torch.optim.Adam(parameters, lr=0.001, weight_decay=0.0),
                                 scheduler=lambda optimizer: None)),
    ]).set_output(transform='pandas')


# ---- validate gradient_surgery = evaluate(...)   [stateless, seed 1077034049]
#   | validate gradient_surgery = evaluate(pcgrad) {
#   |   cv: stratified_kfold(4, seed: 1)
#   |   metrics: [auc, brier, calibration]
#   |   bootstrap: 200
#   | }
# consumes: model <- pcgrad
# calls run_evaluate: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
# fit on outcome
def stage_gradient_surgery(ctx, args):
    stage = ctx.declare(Stage(
        name='gradient_surgery',
        kind='validate',
        op='evaluate',
        params={
            'cv': {'kind': 'stratified_kfold', 'k': 4, 'repeats': 1, 'groups': None, 'seed': 1},
            'metrics': ['auc', 'brier', 'calibration'], 'horizons': None, 'ibs_points': 50, 'threshold': None,
            'threshold_cv': 3, 'bootstrap': 200, 'ci': 0.95, 'calibration_bins': 10, 'net_benefit_range': [0.01, 0.99, 0.01],
        },
        inputs={'model': ['pcgrad', None]},
        seed=1077034049,
        type={
            'kind': 'Evaluation', 'cohort': 'train', 'outcome': 'binary', 'head': 'classification', 'patch': (16, 16, 16),
            'detail': 'evaluation',
        },
        fit='outcome',
        extra={'refit': {'model': 'pcgrad', 'sources': ['img'], 'nodes': ['pcgrad'], 'edges': [['img', 'pcgrad', 'input']]}},
        file=SPEC_PATH,
    ))
    return run_evaluate(stage, ctx, pipeline=fold_pipeline_gradient_surgery)


# ---- model uncertainty = multitask(...)   [fitted, seed 135274635]
#   | model uncertainty = multitask(img, target: train.outcome, network: enc) like fixed { combine: uncertainty }
# consumes: input <- img, network <- enc, target <- train.outcome
# calls run_recipe: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
# fit on outcome inside the training folds of uncertainty_weighting
def stage_uncertainty(ctx, args):
    stage = ctx.declare(Stage(
        name='uncertainty',
        kind='model',
        op='multitask',
        params={
            'heads': [
                {'kind': 'binary', 'name': 'malignancy', 'target': 'train.outcome', 'column': None, 'weight': 1.0},
                {'kind': 'multiclass', 'name': 'grade', 'target': 'train.clinical', 'column': 'grade', 'weight': 0.5},
                {'kind': 'multiclass', 'name': 'stage', 'target': 'train.clinical', 'column': 'stage', 'weight': 0.5},
            ],
            'combine': 'uncertainty', 'cagrad_c': 0.5, 'task_norm': False, 'epochs': 12, 'batch': 8, 'optimizer': 'adam',
            'lr': 0.001, 'weight_decay': 0.0, 'schedule': 'constant', 'hidden': 16, 'dropout': 0.0, 'validation': 0.2,
            'patience': 3,
        },
        inputs={'input': ['img', None], 'network': ['enc', None], 'target': ['train', 'outcome']},
        seed=135274635,
        type={
            'kind': 'Model', 'cohort': 'train', 'outcome': 'binary', 'head': 'classification', 'patch': (16, 16, 16),
            'detail': 'multitask model',
        },
        fit='outcome',
        fit_within=['uncertainty_weighting'],
        file=SPEC_PATH,
    ))
    return run_recipe(stage, ctx)


def fold_pipeline_uncertainty_weighting(fold):
    """What `uncertainty_weighting` fits in every training fold (and on every training case for its final model); `fold`: what
    the data decide."""
    from sklearn.pipeline import Pipeline
    import monai.networks.nets
    import torch
    return Pipeline([
        ('model', make_multitask({'impute': None, 'scale': None, 'search': None, 'hyper': {'heads': [{'kind': 'binary',
                                 'name': 'malignancy', 'target': 'train.outcome', 'column': None, 'weight': 1.0}, {'kind': 'multiclass',
                                 'name': 'grade', 'target': 'train.clinical', 'column': 'grade', 'weight': 0.5}, {'kind': 'multiclass',
                                 'name': 'stage', 'target': 'train.clinical', 'column': 'stage', 'weight': 0.5}],
                                 'combine': 'uncertainty', 'cagrad_c': 0.5, 'task_norm': False, 'epochs': 12, 'batch': 8,
                                 'optimizer': 'adam', 'lr': 0.001, 'weight_decay': 0.0, 'schedule': 'constant', 'hidden': 16,
                                 'dropout': 0.0, 'validation': 0.2, 'patience': 3}, 'networks': {'network': {'arch': 'resnet',
                                 'params': {'dims': 3, 'in_channels': 1, 'out_channels': 2, 'depth': 10, 'widen_factor': 0.125}}},
                                 'head': 'classification', 'classes': fold['classes']}, 135274635, fold['model'],
                                 backbone=lambda: monai.networks.nets.resnet10(spatial_dims=3, n_input_channels=1, num_classes=2,
                                                                               widen_factor=0.125),
                                 losses={'malignancy': torch.nn.CrossEntropyLoss(), 'grade': torch.nn.CrossEntropyLoss(),
                                         'stage': torch.nn.CrossEntropyLoss()},
                                 optimizer=lambda parameters: torch.optim.Adam(parameters, lr=0.001, weight_decay=0.0),
                                 scheduler=lambda optimizer: None)),
    ]).set_output(transform='pandas')


# ---- validate uncertainty_weighting = evaluate(...)   [stateless, seed 1952072933]
#   | validate uncertainty_weighting = evaluate(uncertainty) {
#   |   cv: stratified_kfold(4, seed: 1)
#   |   metrics: [auc, brier, calibration]
#   |   bootstrap: 200
#   | }
# consumes: model <- uncertainty
# calls run_evaluate: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
# fit on outcome
def stage_uncertainty_weighting(ctx, args):
    stage = ctx.declare(Stage(
        name='uncertainty_weighting',
        kind='validate',
        op='evaluate',
        params={
            'cv': {'kind': 'stratified_kfold', 'k': 4, 'repeats': 1, 'groups': None, 'seed': 1},
            'metrics': ['auc', 'brier', 'calibration'], 'horizons': None, 'ibs_points': 50, 'threshold': None,
            'threshold_cv': 3, 'bootstrap': 200, 'ci': 0.95, 'calibration_bins': 10, 'net_benefit_range': [0.01, 0.99, 0.01],
        },
        inputs={'model': ['uncertainty', None]},
        seed=1952072933,
        type={
            'kind': 'Evaluation', 'cohort': 'train', 'outcome': 'binary', 'head': 'classification', 'patch': (16, 16, 16),
            'detail': 'evaluation',
        },
        fit='outcome',
        extra={
            'refit': {'model': 'uncertainty', 'sources': ['img'], 'nodes': ['uncertainty'], 'edges': [['img', 'uncertainty', 'input']]},
        },
        file=SPEC_PATH,
    ))
    return run_evaluate(stage, ctx, pipeline=fold_pipeline_uncertainty_weighting)


# The stages in the order `radlang run` executes them.
STAGES = [
    ('enc', stage_enc),
    ('train', stage_train),
    ('img', stage_img),
    ('fixed', stage_fixed),
    ('fixed_weights', stage_fixed_weights),
    ('pcgrad', stage_pcgrad),
    ('gradient_surgery', stage_gradient_surgery),
    ('uncertainty', stage_uncertainty),
    ('uncertainty_weighting', stage_uncertainty_weighting),
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
    args.out = Path(args.out) if args.out else _resolve('runs/multitask')
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


SPEC_SHA256 = 'b6cb3f200f0f551fdaf973e7ad7e1081bd78347cfe2419cd8d026981ae33fe3b'
SPEC_TEXT = (
    '# Multi-task learning: one shared 3D ResNet backbone with three heads (malignancy, grade, clinical stage) on a phantom\n'
    "# cohort whose grade and stage follow the lesion. Three ways to combine the heads' losses are compared on the same\n"
    '# cross-validation folds: fixed weights, homoscedastic uncertainty weighting (Kendall et al. 2018: learned log-\n'
    '# variances), and PCGrad gradient surgery (torchjd). `evaluate` measures the primary head (malignancy: AUC, Brier,\n'
    "# calibration) and reports every other head's held-out metrics under `heads` in metrics/<validation>.json. Every\n"
    '# network is refit inside every training fold, with early stopping on a patient-grouped split of that fold only:\n'
    '#   radlang run examples/multitask.rad\n'
    '#   radlang predict examples/multitask.rad pcgrad examples/runs/multitask/data/train-*/manifest.csv -o mt_predictions.csv\n'
    'study "Multi-task heads: malignancy, grade and stage from one backbone" {\n'
    '  seed: 11\n'
    '  out: "runs/multitask"\n'
    '}\n'
    '\n'
    'cohort train = phantom(60) { effect: 1.5, size: [24, 24, 24], grades: 3, stage_effect: 1.5 }\n'
    '\n'
    'features img = patches(train) { patch: [16, 16, 16], spacing: [1mm, 1mm, 1mm] }\n'
    'network enc = resnet(dims: 3, in_channels: 1, out_channels: 2) { depth: 10, widen_factor: 0.125 }\n'
    '\n'
    'model fixed = multitask(img, target: train.outcome, network: enc) {\n'
    '  heads: [binary(malignancy, target: train.outcome),\n'
    '          multiclass(grade, target: train.clinical, column: grade, weight: 0.5),\n'
    '          multiclass(stage, target: train.clinical, column: stage, weight: 0.5)]\n'
    '  combine: fixed\n'
    '  epochs: 12\n'
    '  batch: 8\n'
    '  hidden: 16\n'
    '  patience: 3\n'
    '}\n'
    'model uncertainty = multitask(img, target: train.outcome, network: enc) like fixed { combine: uncertainty }\n'
    'model pcgrad = multitask(img, target: train.outcome, network: enc) like fixed { combine: pcgrad, task_norm: true }\n'
    '\n'
    'validate fixed_weights = evaluate(fixed) {\n'
    '  cv: stratified_kfold(4, seed: 1)\n'
    '  metrics: [auc, brier, calibration]\n'
    '  bootstrap: 200\n'
    '}\n'
    'validate uncertainty_weighting = evaluate(uncertainty) {\n'
    '  cv: stratified_kfold(4, seed: 1)\n'
    '  metrics: [auc, brier, calibration]\n'
    '  bootstrap: 200\n'
    '}\n'
    'validate gradient_surgery = evaluate(pcgrad) {\n'
    '  cv: stratified_kfold(4, seed: 1)\n'
    '  metrics: [auc, brier, calibration]\n'
    '  bootstrap: 200\n'
    '}\n'
)


if __name__ == "__main__":
    raise SystemExit(main())
