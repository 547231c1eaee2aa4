#!/usr/bin/env python3
# A study rendered by radlang for review (UTF-8; no spec text is on these two lines).
#
# Study: Radiomics, CNN and intermediate fusion
#
# The stages follow in the order `radlang run` executes them: each one declares its settings as literals
# and calls a function of radlang_runtime.py (beside this file; its sha256 is checked below before it is
# imported). Together they write the same files as `radlang run`, byte for byte.
#
#   python study.py --out DIR      (writes the same files as `radlang run SPEC --out DIR`)
#   python study.py --help         (flags to point the cohorts at other manifests)
#
# spec sha256 b830f4988e783588f53c92221fff77cdbc6dc63d1029da6bf700d84372a34ce8; radlang 0.1.0; rendered 2000-01-01T00:00:00Z; python <version>.
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
    make_cnn,
    run_evaluate,
    run_join,
    run_network,
    run_patches,
    run_phantom,
    run_pyradiomics,
    run_recipe,
    run_record_sources,
    run_shap,
    write_artefact_manifest,
    write_stage_table,
)

TITLE = 'Radiomics, CNN and intermediate fusion'
SPEC_FILE = str((HERE / '<repo>/examples/fusion.rad').resolve())
SPEC_PATH = str((HERE / '<repo>/examples/fusion.rad').resolve())
SPEC_DIR = str(Path(SPEC_PATH).parent)
STUDY_SEED = 7
STUDY_CONFIG = {'seed': 7, 'out': 'runs/fusion', 'workers': 0, 'on_error': 'fail'}
RENDERED_BY = 'radlang 0.1.0 render'


# =====================================================================================
# The study, stage by stage, in the order `radlang run` executes it.
# =====================================================================================


# ---- network enc = resnet(...)   [stateless, seed 2032389940]
#   | network enc = resnet(dims: 3, in_channels: 1, out_channels: 2) { depth: 10, widen_factor: 0.125 }
# consumes: nothing
# calls run_network: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
def stage_enc(ctx, args):
    stage = ctx.declare(Stage(
        name='enc',
        kind='network',
        op='resnet',
        params={'dims': 3, 'in_channels': 1, 'out_channels': 2, 'depth': 10, 'widen_factor': 0.125},
        seed=2032389940,
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


# ---- cohort train = phantom(...)   [stateless, seed 89696490]
#   | cohort train = phantom(60) { effect: 0.4, size: [32, 32, 32] }
# consumes: nothing
# calls run_phantom: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
def stage_train(ctx, args):
    stage = ctx.declare(Stage(
        name='train',
        kind='cohort',
        op='phantom',
        params={
            'cases': 60, 'seed': None, 'effect': 0.4, 'sites': 1, 'site_shift': 0.0, 'noise': 8.0, 'size': [32, 32, 32],
            'spacing': [1.0, 1.0, 1.0], 'prefix': None, 'site_effect': 1.0, 'site_blur': 0.0, 'grades': 0, 'stage_effect': None,
            'outcome': 'malignant',
        },
        seed=89696490,
        type={
            'kind': 'Cohort', 'cohort': 'train', 'outcome': 'binary', 'dims': 3, 'channels': 1, 'has_mask': True,
            'detail': 'phantom',
        },
        file=SPEC_PATH,
    ))
    return run_phantom(stage, ctx)


# ---- features img = patches(...)   [stateless, seed 1939052584]
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
        seed=1939052584,
        type={
            'kind': 'Features', 'cohort': 'train', 'dims': 3, 'channels': 1, 'patch': (16, 16, 16),
            'detail': '3D image patches 16x16x16, 1 channel(s)',
        },
        file=SPEC_PATH,
    ))
    return run_patches(stage, ctx)


# ---- model image = cnn(...)   [fitted, seed 1753141213]
#   | model image = cnn(img, target: train.outcome, network: enc) { epochs: 15, batch: 8, hidden: 16, patience: 4 }
# consumes: input <- img, network <- enc, target <- train.outcome
# calls run_recipe: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
# fit on outcome inside the training folds of cnn_only
def stage_image(ctx, args):
    stage = ctx.declare(Stage(
        name='image',
        kind='model',
        op='cnn',
        params={
            'epochs': 15, 'batch': 8, 'optimizer': 'adam', 'lr': 0.001, 'weight_decay': 0.0, 'schedule': 'constant',
            'hidden': 16, 'dropout': 0.0, 'validation': 0.2, 'patience': 4,
        },
        inputs={'input': ['img', None], 'network': ['enc', None], 'target': ['train', 'outcome']},
        seed=1753141213,
        type={
            'kind': 'Model', 'cohort': 'train', 'outcome': 'binary', 'head': 'classification', 'patch': (16, 16, 16),
            'detail': 'cnn model',
        },
        fit='outcome',
        fit_within=['cnn_only'],
        file=SPEC_PATH,
    ))
    # the library object these settings make:
    #   torch.optim.Adam(net.parameters(), lr=0.001, weight_decay=0.0)
    return run_recipe(stage, ctx)


def fold_pipeline_cnn_only(fold):
    """What `cnn_only` fits in every training fold (and on every training case for its final model); `fold`: what the data
    decide."""
    from sklearn.pipeline import Pipeline
    import monai.networks.nets
    import torch
    return Pipeline([
        ('model', make_cnn({'impute': None, 'scale': None, 'search': None, 'hyper': {'epochs': 15, 'batch': 8, 'optimizer': 'adam',
                           'lr': 0.001, 'weight_decay': 0.0, 'schedule': 'constant', 'hidden': 16, 'dropout': 0.0, 'validation': 0.2,
                           'patience': 4}, 'networks': {'network': {'arch': 'resnet', 'params': {'dims': 3, 'in_channels': 1,
                           'out_channels': 2, 'depth': 10, 'widen_factor': 0.125}}}, 'head': 'classification',
                           'classes': fold['classes']}, 1753141213, fold['model'],
                           backbone=lambda: monai.networks.nets.resnet10(spatial_dims=3, n_input_channels=1, num_classes=2,
                                                                         widen_factor=0.125),
                           loss=torch.nn.CrossEntropyLoss(),
                           optimizer=lambda parameters: torch.optim.Adam(parameters, lr=0.001, weight_decay=0.0),
                           scheduler=lambda optimizer: None)),
    ]).set_output(transform='pandas')


# ---- validate cnn_only = evaluate(...)   [stateless, seed 1494566352]
#   | validate cnn_only = evaluate(image) {
#   |   cv: stratified_kfold(5, seed: 1)
#   |   metrics: [auc, brier, calibration]
#   |   bootstrap: 200
#   | }
# consumes: model <- image
# calls run_evaluate: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
# fit on outcome
def stage_cnn_only(ctx, args):
    stage = ctx.declare(Stage(
        name='cnn_only',
        kind='validate',
        op='evaluate',
        params={
            'cv': {'kind': 'stratified_kfold', 'k': 5, 'repeats': 1, 'groups': None, 'seed': 1},
            'metrics': ['auc', 'brier', 'calibration'], 'horizons': None, 'ibs_points': 50, 'threshold': None,
            'threshold_cv': 3, 'bootstrap': 200, 'ci': 0.95, 'calibration_bins': 10, 'net_benefit_range': [0.01, 0.99, 0.01],
        },
        inputs={'model': ['image', None]},
        seed=1494566352,
        type={
            'kind': 'Evaluation', 'cohort': 'train', 'outcome': 'binary', 'head': 'classification', 'patch': (16, 16, 16),
            'detail': 'evaluation',
        },
        fit='outcome',
        extra={'refit': {'model': 'image', 'sources': ['img'], 'nodes': ['image'], 'edges': [['img', 'image', 'input']]}},
        file=SPEC_PATH,
    ))
    return run_evaluate(stage, ctx, pipeline=fold_pipeline_cnn_only)


# ---- features rad = pyradiomics(...)   [per_case, seed 2131371170]
#   | features rad = pyradiomics(train.image, train.mask) {
#   |   bin_width: 25
#   |   classes: [firstorder, glcm]
#   | }
# consumes: image <- train.image, mask <- train.mask
# calls run_pyradiomics: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
def stage_rad(ctx, args):
    stage = ctx.declare(Stage(
        name='rad',
        kind='features',
        op='pyradiomics',
        params={
            'params': None, 'bin_width': 25.0, 'bin_count': None, 'resample': None, 'interpolator': None, 'pad_distance': None,
            'normalize': None, 'normalize_scale': None, 'remove_outliers': None, 'resegment': None, 'resegment_mode': None,
            'resegment_shape': None, 'force2d': None, 'force2d_dimension': None, 'label': None, 'distances': None,
            'voxel_array_shift': None, 'symmetrical_glcm': None, 'weighting_norm': None, 'gldm_a': None,
            'min_roi_dimensions': None, 'min_roi_size': None, 'pre_crop': None, 'correct_mask': None,
            'geometry_tolerance': None, 'filters': None,
            'classes': [{'name': 'firstorder', 'features': []}, {'name': 'glcm', 'features': []}],
        },
        inputs={'image': ['train', 'image'], 'mask': ['train', 'mask']},
        seed=2131371170,
        type={'kind': 'Features', 'cohort': 'train', 'dims': 3, 'detail': 'pyradiomics'},
        file=SPEC_PATH,
    ))
    # the library object these settings make:
    #   featureextractor.RadiomicsFeatureExtractor({'featureClass': {'firstorder': [], 'glcm': []},
    #        'imageType': {'Original': {}},
    #        'setting': {'additionalInfo': True, 'binWidth': 25.0}})
    return run_pyradiomics(stage, ctx)


# ---- features img_rad = join(...)   [stateless, seed 1635987084]
#   | features img_rad = join(img, rad)
# consumes: table1 <- img, table2 <- rad
# calls run_join: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
def stage_img_rad(ctx, args):
    stage = ctx.declare(Stage(
        name='img_rad',
        kind='features',
        op='join',
        params={'by': 'case', 'prefix': False},
        inputs={'table1': ['img', None], 'table2': ['rad', None]},
        seed=1635987084,
        type={
            'kind': 'Features', 'cohort': 'train', 'dims': 3, 'channels': 1, 'patch': (16, 16, 16),
            'detail': 'joined table with 3D image patches 16x16x16, 1 channel(s)',
        },
        file=SPEC_PATH,
    ))
    return run_join(stage, ctx)


# ---- model fusion = cnn(...)   [fitted, seed 907219004]
#   | model fusion = cnn(img_rad, target: train.outcome, network: enc) { epochs: 15, batch: 8, hidden: 16, patience: 4 }
# consumes: input <- img_rad, network <- enc, target <- train.outcome
# calls run_recipe: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
# fit on outcome inside the training folds of fused
def stage_fusion(ctx, args):
    stage = ctx.declare(Stage(
        name='fusion',
        kind='model',
        op='cnn',
        params={
            'epochs': 15, 'batch': 8, 'optimizer': 'adam', 'lr': 0.001, 'weight_decay': 0.0, 'schedule': 'constant',
            'hidden': 16, 'dropout': 0.0, 'validation': 0.2, 'patience': 4,
        },
        inputs={'input': ['img_rad', None], 'network': ['enc', None], 'target': ['train', 'outcome']},
        seed=907219004,
        type={
            'kind': 'Model', 'cohort': 'train', 'outcome': 'binary', 'head': 'classification', 'patch': (16, 16, 16),
            'detail': 'cnn model',
        },
        fit='outcome',
        fit_within=['fused'],
        file=SPEC_PATH,
    ))
    # the library object these settings make:
    #   torch.optim.Adam(net.parameters(), lr=0.001, weight_decay=0.0)
    return run_recipe(stage, ctx)


def fold_pipeline_fused(fold):
    """What `fused` fits in every training fold (and on every training case for its final model); `fold`: what the data
    decide."""
    from sklearn.pipeline import Pipeline
    import monai.networks.nets
    import torch
    return Pipeline([
        ('model', make_cnn({'impute': None, 'scale': None, 'search': None, 'hyper': {'epochs': 15, 'batch': 8, 'optimizer': 'adam',
                           'lr': 0.001, 'weight_decay': 0.0, 'schedule': 'constant', 'hidden': 16, 'dropout': 0.0, 'validation': 0.2,
                           'patience': 4}, 'networks': {'network': {'arch': 'resnet', 'params': {'dims': 3, 'in_channels': 1,
                           'out_channels': 2, 'depth': 10, 'widen_factor': 0.125}}}, 'head': 'classification',
                           'classes': fold['classes']}, 907219004, fold['model'],
                           backbone=lambda: monai.networks.nets.resnet10(spatial_dims=3, n_input_channels=1, num_classes=2,
                                                                         widen_factor=0.125),
                           loss=torch.nn.CrossEntropyLoss(),
                           optimizer=lambda parameters: torch.optim.Adam(parameters, lr=0.001, weight_decay=0.0),
                           scheduler=lambda optimizer: None)),
    ]).set_output(transform='pandas')


# ---- validate fused = evaluate(...)   [stateless, seed 1487757917]
#   | validate fused = evaluate(fusion) {
#   |   cv: stratified_kfold(5, seed: 1)
#   |   metrics: [auc, brier, calibration]
#   |   bootstrap: 200
#   | }
# consumes: model <- fusion
# calls run_evaluate: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
# fit on outcome
def stage_fused(ctx, args):
    stage = ctx.declare(Stage(
        name='fused',
        kind='validate',
        op='evaluate',
        params={
            'cv': {'kind': 'stratified_kfold', 'k': 5, 'repeats': 1, 'groups': None, 'seed': 1},
            'metrics': ['auc', 'brier', 'calibration'], 'horizons': None, 'ibs_points': 50, 'threshold': None,
            'threshold_cv': 3, 'bootstrap': 200, 'ci': 0.95, 'calibration_bins': 10, 'net_benefit_range': [0.01, 0.99, 0.01],
        },
        inputs={'model': ['fusion', None]},
        seed=1487757917,
        type={
            'kind': 'Evaluation', 'cohort': 'train', 'outcome': 'binary', 'head': 'classification', 'patch': (16, 16, 16),
            'detail': 'evaluation',
        },
        fit='outcome',
        extra={'refit': {'model': 'fusion', 'sources': ['img_rad'], 'nodes': ['fusion'], 'edges': [['img_rad', 'fusion', 'input']]}},
        file=SPEC_PATH,
    ))
    return run_evaluate(stage, ctx, pipeline=fold_pipeline_fused)


# ---- explain fused_why = shap(...)   [stateless, seed 1712689372]
#   | explain fused_why = shap(fused) {
#   |   explainer: partition
#   |   max_evals: 100
#   |   regions: [2, 2, 2]
#   |   background: 8
#   |   cases: 8
#   |   group_by: [channel, family]
#   | }
# consumes: model <- fused
# calls run_shap: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
def stage_fused_why(ctx, args):
    stage = ctx.declare(Stage(
        name='fused_why',
        kind='explain',
        op='shap',
        params={
            'explainer': 'partition', 'max_evals': 100, 'background': 8, 'cases': 8, 'output': 'probability', 'per_fold': False,
            'group_by': ['channel', 'family'], 'regions': [2, 2, 2],
        },
        inputs={'model': ['fused', None]},
        seed=1712689372,
        type={'kind': 'Explanation', 'cohort': 'train', 'outcome': 'binary', 'detail': 'SHAP'},
        file=SPEC_PATH,
    ))
    return run_shap(stage, ctx)


# ---- model radiomics = logistic(...)   [fitted, seed 2082367564]
#   | model radiomics = logistic(rad, target: train.outcome) { C: 0.1 }
# consumes: input <- rad, target <- train.outcome
# calls run_recipe: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
# fit on outcome inside the training folds of radiomics_only
def stage_radiomics(ctx, args):
    stage = ctx.declare(Stage(
        name='radiomics',
        kind='model',
        op='logistic',
        params={
            'impute': 'median', 'scale': 'standard', 'search': None, 'class_weight': None, 'C': 0.1, 'penalty': 'l2',
            'l1_ratio': None, 'max_iter': 1000,
        },
        inputs={'input': ['rad', None], 'target': ['train', 'outcome']},
        seed=2082367564,
        type={'kind': 'Model', 'cohort': 'train', 'outcome': 'binary', 'detail': 'logistic model'},
        fit='outcome',
        fit_within=['radiomics_only'],
        file=SPEC_PATH,
    ))
    return run_recipe(stage, ctx)


def fold_pipeline_radiomics_only(fold):
    """What `radiomics_only` fits in every training fold (and on every training case for its final model); `fold`: what the data
    decide."""
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    return Pipeline([
        ('impute', SimpleImputer(strategy='median', keep_empty_features=True)),
        ('scale', StandardScaler()),
        ('model', LogisticRegression(max_iter=1000, class_weight=None, random_state=2082367564, C=0.1)),
    ]).set_output(transform='pandas')


# ---- validate radiomics_only = evaluate(...)   [stateless, seed 493150393]
#   | validate radiomics_only = evaluate(radiomics) {
#   |   cv: stratified_kfold(5, seed: 1)
#   |   metrics: [auc, brier, calibration]
#   |   bootstrap: 200
#   | }
# consumes: model <- radiomics
# calls run_evaluate: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
# fit on outcome
def stage_radiomics_only(ctx, args):
    stage = ctx.declare(Stage(
        name='radiomics_only',
        kind='validate',
        op='evaluate',
        params={
            'cv': {'kind': 'stratified_kfold', 'k': 5, 'repeats': 1, 'groups': None, 'seed': 1},
            'metrics': ['auc', 'brier', 'calibration'], 'horizons': None, 'ibs_points': 50, 'threshold': None,
            'threshold_cv': 3, 'bootstrap': 200, 'ci': 0.95, 'calibration_bins': 10, 'net_benefit_range': [0.01, 0.99, 0.01],
        },
        inputs={'model': ['radiomics', None]},
        seed=493150393,
        type={'kind': 'Evaluation', 'cohort': 'train', 'outcome': 'binary', 'detail': 'evaluation'},
        fit='outcome',
        extra={'refit': {'model': 'radiomics', 'sources': ['rad'], 'nodes': ['radiomics'], 'edges': [['rad', 'radiomics', 'input']]}},
        file=SPEC_PATH,
    ))
    return run_evaluate(stage, ctx, pipeline=fold_pipeline_radiomics_only)


# The stages in the order `radlang run` executes them.
STAGES = [
    ('enc', stage_enc),
    ('train', stage_train),
    ('img', stage_img),
    ('image', stage_image),
    ('cnn_only', stage_cnn_only),
    ('rad', stage_rad),
    ('img_rad', stage_img_rad),
    ('fusion', stage_fusion),
    ('fused', stage_fused),
    ('fused_why', stage_fused_why),
    ('radiomics', stage_radiomics),
    ('radiomics_only', stage_radiomics_only),
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
    args.out = Path(args.out) if args.out else _resolve('runs/fusion')
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


SPEC_SHA256 = 'b830f4988e783588f53c92221fff77cdbc6dc63d1029da6bf700d84372a34ce8'
SPEC_TEXT = (
    '# Radiomics, a CNN and both fused: three models compared on the same cross-validation folds of one phantom cohort.\n'
    '# The CNN (a small 3D ResNet backbone, adaptive average pooling, an MLP head) reads 16^3-voxel crops around each\n'
    '# lesion; intermediate fusion concatenates its pooled image vector with the radiomics features (standardised inside\n'
    '# each training fold) and trains the whole network end to end. Every network is refit inside every training fold,\n'
    '# with early stopping on a patient-grouped validation split of that fold only. SHAP explains the final fused network\n'
    '# over 2 x 2 x 2 regions of its image patch and its radiomics columns (explain/fused_why/: values, by channel and by\n'
    '# feature family, and a regions panel). The final models are saved and `radlang predict` applies them:\n'
    '#   radlang run examples/fusion.rad\n'
    '#   radlang predict examples/fusion.rad fused examples/runs/fusion/data/train-*/manifest.csv -o fused_predictions.csv\n'
    'study "Radiomics, CNN and intermediate fusion" {\n'
    '  seed: 7\n'
    '  out: "runs/fusion"\n'
    '}\n'
    '\n'
    'cohort train = phantom(60) { effect: 0.4, size: [32, 32, 32] }\n'
    '\n'
    'features rad = pyradiomics(train.image, train.mask) {\n'
    '  bin_width: 25\n'
    '  classes: [firstorder, glcm]\n'
    '}\n'
    'features img = patches(train) { patch: [16, 16, 16], spacing: [1mm, 1mm, 1mm] }\n'
    'features img_rad = join(img, rad)\n'
    '\n'
    'network enc = resnet(dims: 3, in_channels: 1, out_channels: 2) { depth: 10, widen_factor: 0.125 }\n'
    '\n'
    'model radiomics = logistic(rad, target: train.outcome) { C: 0.1 }\n'
    'model image = cnn(img, target: train.outcome, network: enc) { epochs: 15, batch: 8, hidden: 16, patience: 4 }\n'
    'model fusion = cnn(img_rad, target: train.outcome, network: enc) { epochs: 15, batch: 8, hidden: 16, patience: 4 }\n'
    '\n'
    'validate radiomics_only = evaluate(radiomics) {\n'
    '  cv: stratified_kfold(5, seed: 1)\n'
    '  metrics: [auc, brier, calibration]\n'
    '  bootstrap: 200\n'
    '}\n'
    'validate cnn_only = evaluate(image) {\n'
    '  cv: stratified_kfold(5, seed: 1)\n'
    '  metrics: [auc, brier, calibration]\n'
    '  bootstrap: 200\n'
    '}\n'
    'validate fused = evaluate(fusion) {\n'
    '  cv: stratified_kfold(5, seed: 1)\n'
    '  metrics: [auc, brier, calibration]\n'
    '  bootstrap: 200\n'
    '}\n'
    '\n'
    'explain fused_why = shap(fused) {\n'
    '  explainer: partition\n'
    '  max_evals: 100\n'
    '  regions: [2, 2, 2]\n'
    '  background: 8\n'
    '  cases: 8\n'
    '  group_by: [channel, family]\n'
    '}\n'
)


if __name__ == "__main__":
    raise SystemExit(main())
