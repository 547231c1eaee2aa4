#!/usr/bin/env python3
# A study rendered by radlang for review (UTF-8; no spec text is on these two lines).
#
# Study: Domain adaptation: source-only vs DANN vs ComBat, leave-one-site-out
#
# The stages follow in the order `radlang run` executes them: each one declares its settings as literals
# and calls a function of radlang_runtime.py (beside this file; its sha256 is checked below before it is
# imported). Together they write the same files as `radlang run`, byte for byte.
#
#   python study.py --out DIR      (writes the same files as `radlang run SPEC --out DIR`)
#   python study.py --help         (flags to point the cohorts at other manifests)
#
# spec sha256 1b6d544a9a2282c165c1c29dd47ab05efc8c21e96cf57eaa0dbc48bfd0dae091; radlang 0.1.0; rendered 2000-01-01T00:00:00Z; python <version>.
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
    make_combat,
    make_dann,
    run_evaluate,
    run_network,
    run_patches,
    run_phantom,
    run_pyradiomics,
    run_recipe,
    run_record_sources,
    write_artefact_manifest,
    write_stage_table,
)

TITLE = 'Domain adaptation: source-only vs DANN vs ComBat, leave-one-site-out'
SPEC_FILE = str((HERE / '<repo>/examples/domain_adaptation.rad').resolve())
SPEC_PATH = str((HERE / '<repo>/examples/domain_adaptation.rad').resolve())
SPEC_DIR = str(Path(SPEC_PATH).parent)
STUDY_SEED = 3
STUDY_CONFIG = {'seed': 3, 'out': 'runs/domain_adaptation', 'workers': 0, 'on_error': 'fail'}
RENDERED_BY = 'radlang 0.1.0 render'


# =====================================================================================
# The study, stage by stage, in the order `radlang run` executes it.
# =====================================================================================


# ---- network enc = resnet(...)   [stateless, seed 1522150735]
#   | network enc = resnet(dims: 3, in_channels: 1, out_channels: 2) { depth: 10, widen_factor: 0.125 }
# consumes: nothing
# calls run_network: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
def stage_enc(ctx, args):
    stage = ctx.declare(Stage(
        name='enc',
        kind='network',
        op='resnet',
        params={'dims': 3, 'in_channels': 1, 'out_channels': 2, 'depth': 10, 'widen_factor': 0.125},
        seed=1522150735,
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


# ---- cohort sites = phantom(...)   [stateless, seed 263227321]
#   | cohort sites = phantom(60) { effect: 1.5, sites: 3, site_effect: 2.0, site_blur: 1mm, size: [24, 24, 24] }
# consumes: nothing
# calls run_phantom: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
def stage_sites(ctx, args):
    stage = ctx.declare(Stage(
        name='sites',
        kind='cohort',
        op='phantom',
        params={
            'cases': 60, 'seed': None, 'effect': 1.5, 'sites': 3, 'site_shift': 0.0, 'noise': 8.0, 'size': [24, 24, 24],
            'spacing': [1.0, 1.0, 1.0], 'prefix': None, 'site_effect': 2.0, 'site_blur': 1.0, 'grades': 0, 'stage_effect': None,
            'outcome': 'malignant',
        },
        seed=263227321,
        type={
            'kind': 'Cohort', 'cohort': 'sites', 'outcome': 'binary', 'dims': 3, 'channels': 1, 'has_site': True,
            'has_mask': True, 'detail': 'phantom',
        },
        file=SPEC_PATH,
    ))
    return run_phantom(stage, ctx)


# ---- features img = patches(...)   [stateless, seed 1830413051]
#   | features img = patches(sites) { patch: [16, 16, 16] }
# consumes: cohort <- sites
# calls run_patches: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
def stage_img(ctx, args):
    stage = ctx.declare(Stage(
        name='img',
        kind='features',
        op='patches',
        params={
            'patch': [16, 16, 16], 'dims': 3, 'slices': None, 'spacing': None, 'crop': 'roi', 'mask_channel': False,
            'mask_target': False, 'normalize': 'zscore',
        },
        inputs={'cohort': ['sites', None]},
        seed=1830413051,
        type={
            'kind': 'Features', 'cohort': 'sites', 'dims': 3, 'channels': 1, 'patch': (16, 16, 16),
            'detail': '3D image patches 16x16x16, 1 channel(s)',
        },
        file=SPEC_PATH,
    ))
    return run_patches(stage, ctx)


# ---- model adapted = dann(...)   [fitted, seed 1542162036]
#   | model adapted = dann(img, target: sites.outcome, network: enc) {
#   |   epochs: 12, batch: 8, hidden: 16, patience: 4, optimizer: sgd, lr: 0.01, schedule: ganin, target_unlabelled: true
#   | }
# consumes: input <- img, network <- enc, target <- sites.outcome
# calls run_recipe: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
# fit on outcome inside the training folds of v_dann
def stage_adapted(ctx, args):
    stage = ctx.declare(Stage(
        name='adapted',
        kind='model',
        op='dann',
        params={
            'epochs': 12, 'batch': 8, 'optimizer': 'sgd', 'lr': 0.01, 'weight_decay': 0.0, 'schedule': 'ganin', 'hidden': 16,
            'dropout': 0.0, 'validation': 0.2, 'patience': 4, 'reversal': 'ganin', 'domain_hidden': 16,
            'target_unlabelled': True,
        },
        inputs={'input': ['img', None], 'network': ['enc', None], 'target': ['sites', 'outcome']},
        seed=1542162036,
        type={
            'kind': 'Model', 'cohort': 'sites', 'outcome': 'binary', 'head': 'classification', 'site_adapted': True,
            'patch': (16, 16, 16), 'detail': 'DANN model',
        },
        fit='outcome',
        fit_within=['v_dann'],
        file=SPEC_PATH,
    ))
    return run_recipe(stage, ctx)


# ---- model cnn_source = cnn(...)   [fitted, seed 1104211344]
#   | model cnn_source = cnn(img, target: sites.outcome, network: enc) {
#   |   epochs: 12, batch: 8, hidden: 16, patience: 4, optimizer: sgd, lr: 0.01, schedule: ganin
#   | }
# consumes: input <- img, network <- enc, target <- sites.outcome
# calls run_recipe: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
# fit on outcome inside the training folds of v_cnn
def stage_cnn_source(ctx, args):
    stage = ctx.declare(Stage(
        name='cnn_source',
        kind='model',
        op='cnn',
        params={
            'epochs': 12, 'batch': 8, 'optimizer': 'sgd', 'lr': 0.01, 'weight_decay': 0.0, 'schedule': 'ganin', 'hidden': 16,
            'dropout': 0.0, 'validation': 0.2, 'patience': 4,
        },
        inputs={'input': ['img', None], 'network': ['enc', None], 'target': ['sites', 'outcome']},
        seed=1104211344,
        type={
            'kind': 'Model', 'cohort': 'sites', 'outcome': 'binary', 'head': 'classification', 'patch': (16, 16, 16),
            'detail': 'cnn model',
        },
        fit='outcome',
        fit_within=['v_cnn'],
        file=SPEC_PATH,
    ))
    # the library object these settings make:
    #   torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.99, nesterov=True, weight_decay=0.0)
    #   torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda=lambda epoch: 1 / (1 + 10 * epoch / 12) ** 0.75)
    return run_recipe(stage, ctx)


# ---- features rad = pyradiomics(...)   [per_case, seed 1493357180]
#   | features rad = pyradiomics(sites.image, sites.mask) {
#   |   bin_width: 25
#   |   classes: [firstorder, glcm]
#   | }
# consumes: image <- sites.image, mask <- sites.mask
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
        inputs={'image': ['sites', 'image'], 'mask': ['sites', 'mask']},
        seed=1493357180,
        type={'kind': 'Features', 'cohort': 'sites', 'dims': 3, 'detail': 'pyradiomics'},
        file=SPEC_PATH,
    ))
    # the library object these settings make:
    #   featureextractor.RadiomicsFeatureExtractor({'featureClass': {'firstorder': [], 'glcm': []},
    #        'imageType': {'Original': {}},
    #        'setting': {'additionalInfo': True, 'binWidth': 25.0}})
    return run_pyradiomics(stage, ctx)


# ---- harmonise combat_rad = combat(...)   [fitted, seed 1619239340]
#   | harmonise combat_rad = combat(rad) { batch: site, unseen: transductive }
# consumes: input <- rad
# calls run_recipe: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
# fit on data inside the training folds of v_combat
def stage_combat_rad(ctx, args):
    stage = ctx.declare(Stage(
        name='combat_rad',
        kind='harmonise',
        op='combat',
        params={
            'batch': 'site', 'covariates': [], 'unseen': 'transductive', 'empirical_bayes': True, 'mean_only': False,
            'min_cases': 2,
        },
        inputs={'input': ['rad', None]},
        seed=1619239340,
        type={'kind': 'Features', 'cohort': 'sites', 'detail': 'ComBat-harmonised'},
        fit='data',
        fit_within=['v_combat'],
        file=SPEC_PATH,
    ))
    return run_recipe(stage, ctx)


# ---- model harmonised = logistic(...)   [fitted, seed 610373971]
#   | model harmonised = logistic(combat_rad, target: sites.outcome) { C: 0.1 }
# consumes: input <- combat_rad, target <- sites.outcome
# calls run_recipe: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
# fit on outcome inside the training folds of v_combat
def stage_harmonised(ctx, args):
    stage = ctx.declare(Stage(
        name='harmonised',
        kind='model',
        op='logistic',
        params={
            'impute': 'median', 'scale': 'standard', 'search': None, 'class_weight': None, 'C': 0.1, 'penalty': 'l2',
            'l1_ratio': None, 'max_iter': 1000,
        },
        inputs={'input': ['combat_rad', None], 'target': ['sites', 'outcome']},
        seed=610373971,
        type={'kind': 'Model', 'cohort': 'sites', 'outcome': 'binary', 'detail': 'logistic model'},
        fit='outcome',
        fit_within=['v_combat'],
        file=SPEC_PATH,
    ))
    return run_recipe(stage, ctx)


# ---- model source_only = logistic(...)   [fitted, seed 1457499711]
#   | model source_only = logistic(rad, target: sites.outcome) { C: 0.1 }
# consumes: input <- rad, target <- sites.outcome
# calls run_recipe: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
# fit on outcome inside the training folds of v_source
def stage_source_only(ctx, args):
    stage = ctx.declare(Stage(
        name='source_only',
        kind='model',
        op='logistic',
        params={
            'impute': 'median', 'scale': 'standard', 'search': None, 'class_weight': None, 'C': 0.1, 'penalty': 'l2',
            'l1_ratio': None, 'max_iter': 1000,
        },
        inputs={'input': ['rad', None], 'target': ['sites', 'outcome']},
        seed=1457499711,
        type={'kind': 'Model', 'cohort': 'sites', 'outcome': 'binary', 'detail': 'logistic model'},
        fit='outcome',
        fit_within=['v_source'],
        file=SPEC_PATH,
    ))
    return run_recipe(stage, ctx)


def fold_pipeline_v_cnn(fold):
    """What `v_cnn` fits in every training fold (and on every training case for its final model); `fold`: what the data
    decide."""
    from sklearn.pipeline import Pipeline
    import monai.networks.nets
    import torch
    return Pipeline([
        ('model', make_cnn({'impute': None, 'scale': None, 'search': None, 'hyper': {'epochs': 12, 'batch': 8, 'optimizer': 'sgd',
                           'lr': 0.01, 'weight_decay': 0.0, 'schedule': 'ganin', 'hidden': 16, 'dropout': 0.0, 'validation': 0.2,
                           'patience': 4}, 'networks': {'network': {'arch': 'resnet', 'params': {'dims': 3, 'in_channels': 1,
                           'out_channels': 2, 'depth': 10, 'widen_factor': 0.125}}}, 'head': 'classification',
                           'classes': fold['classes']}, 1104211344, fold['model'],
                           backbone=lambda: monai.networks.nets.resnet10(spatial_dims=3, n_input_channels=1, num_classes=2,
                                                                         widen_factor=0.125),
                           loss=torch.nn.CrossEntropyLoss(),
                           optimizer=lambda parameters: torch.optim.SGD(parameters, lr=0.01, momentum=0.99, nesterov=True,
                                                                        weight_decay=0.0),
                           scheduler=lambda optimizer: torch.optim.lr_scheduler.LambdaLR(optimizer,
                               lr_lambda=lambda epoch: 1 / (1 + 10 * epoch / 12) ** 0.75))),
    ]).set_output(transform='pandas')


# ---- validate v_cnn = evaluate(...)   [stateless, seed 170968117]
#   | validate v_cnn = evaluate(cnn_source) { cv: leave_one_site_out, metrics: [auc, brier, calibration], bootstrap: 200 }
# consumes: model <- cnn_source
# calls run_evaluate: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
# fit on outcome
def stage_v_cnn(ctx, args):
    stage = ctx.declare(Stage(
        name='v_cnn',
        kind='validate',
        op='evaluate',
        params={
            'cv': {'kind': 'leave_one_site_out'}, 'metrics': ['auc', 'brier', 'calibration'], 'horizons': None,
            'ibs_points': 50, 'threshold': None, 'threshold_cv': 3, 'bootstrap': 200, 'ci': 0.95, 'calibration_bins': 10,
            'net_benefit_range': [0.01, 0.99, 0.01],
        },
        inputs={'model': ['cnn_source', None]},
        seed=170968117,
        type={
            'kind': 'Evaluation', 'cohort': 'sites', 'outcome': 'binary', 'head': 'classification', 'patch': (16, 16, 16),
            'detail': 'evaluation',
        },
        fit='outcome',
        extra={
            'refit': {'model': 'cnn_source', 'sources': ['img'], 'nodes': ['cnn_source'], 'edges': [['img', 'cnn_source', 'input']]},
        },
        file=SPEC_PATH,
    ))
    return run_evaluate(stage, ctx, pipeline=fold_pipeline_v_cnn)


def fold_pipeline_v_combat(fold):
    """What `v_combat` fits in every training fold (and on every training case for its final model); `fold`: what the data
    decide."""
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    return Pipeline([
        ('impute', SimpleImputer(strategy='median', keep_empty_features=True)),
        ('combat_rad', make_combat({'batch': 'site', 'covariates': [], 'unseen': 'transductive', 'empirical_bayes': True,
                                   'mean_only': False, 'min_cases': 2}, 1619239340, fold['inputs']['combat_rad'])),
        ('scale', StandardScaler()),
        ('model', LogisticRegression(max_iter=1000, class_weight=None, random_state=610373971, C=0.1)),
    ]).set_output(transform='pandas')


# ---- validate v_combat = evaluate(...)   [stateless, seed 1372189804]
#   | validate v_combat = evaluate(harmonised) { cv: leave_one_site_out, metrics: [auc, brier, calibration], bootstrap: 200 }
# consumes: model <- harmonised
# calls run_evaluate: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
# fit on outcome
def stage_v_combat(ctx, args):
    stage = ctx.declare(Stage(
        name='v_combat',
        kind='validate',
        op='evaluate',
        params={
            'cv': {'kind': 'leave_one_site_out'}, 'metrics': ['auc', 'brier', 'calibration'], 'horizons': None,
            'ibs_points': 50, 'threshold': None, 'threshold_cv': 3, 'bootstrap': 200, 'ci': 0.95, 'calibration_bins': 10,
            'net_benefit_range': [0.01, 0.99, 0.01],
        },
        inputs={'model': ['harmonised', None]},
        seed=1372189804,
        type={'kind': 'Evaluation', 'cohort': 'sites', 'outcome': 'binary', 'detail': 'evaluation'},
        fit='outcome',
        extra={
            'refit': {
                'model': 'harmonised', 'sources': ['rad'], 'nodes': ['combat_rad', 'harmonised'],
                'edges': [['combat_rad', 'harmonised', 'input'], ['rad', 'combat_rad', 'input']],
            },
            'transductive': {
                'combat_rad': "ComBat estimates the location and scale of a batch (`site`) unseen in training from its own held-out cases' features (transductive; never their outcomes)",
            },
        },
        file=SPEC_PATH,
    ))
    return run_evaluate(stage, ctx, pipeline=fold_pipeline_v_combat)


def fold_pipeline_v_dann(fold):
    """What `v_dann` fits in every training fold (and on every training case for its final model); `fold`: what the data
    decide."""
    from sklearn.pipeline import Pipeline
    import monai.networks.nets
    import torch
    return Pipeline([
        ('model', make_dann({'impute': None, 'scale': None, 'search': None, 'hyper': {'epochs': 12, 'batch': 8, 'optimizer': 'sgd',
                            'lr': 0.01, 'weight_decay': 0.0, 'schedule': 'ganin', 'hidden': 16, 'dropout': 0.0, 'validation': 0.2,
                            'patience': 4, 'reversal': 'ganin', 'domain_hidden': 16, 'target_unlabelled': True},
                            'networks': {'network': {'arch': 'resnet', 'params': {'dims': 3, 'in_channels': 1, 'out_channels': 2,
                            'depth': 10, 'widen_factor': 0.125}}}, 'head': 'classification', 'classes': fold['classes']}, 1542162036,
                            fold['model'],
                            backbone=lambda: monai.networks.nets.resnet10(spatial_dims=3, n_input_channels=1, num_classes=2,
                                                                          widen_factor=0.125),
                            loss=torch.nn.CrossEntropyLoss(),
                            optimizer=lambda parameters: torch.optim.SGD(parameters, lr=0.01, momentum=0.99, nesterov=True,
                                                                         weight_decay=0.0),
                            scheduler=lambda optimizer: torch.optim.lr_scheduler.LambdaLR(optimizer,
                                lr_lambda=lambda epoch: 1 / (1 + 10 * epoch / 12) ** 0.75))),
    ]).set_output(transform='pandas')


# ---- validate v_dann = evaluate(...)   [stateless, seed 1634475660]
#   | validate v_dann = evaluate(adapted) { cv: leave_one_site_out, metrics: [auc, brier, calibration], bootstrap: 200 }
# consumes: model <- adapted
# calls run_evaluate: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
# fit on outcome
def stage_v_dann(ctx, args):
    stage = ctx.declare(Stage(
        name='v_dann',
        kind='validate',
        op='evaluate',
        params={
            'cv': {'kind': 'leave_one_site_out'}, 'metrics': ['auc', 'brier', 'calibration'], 'horizons': None,
            'ibs_points': 50, 'threshold': None, 'threshold_cv': 3, 'bootstrap': 200, 'ci': 0.95, 'calibration_bins': 10,
            'net_benefit_range': [0.01, 0.99, 0.01],
        },
        inputs={'model': ['adapted', None]},
        seed=1634475660,
        type={
            'kind': 'Evaluation', 'cohort': 'sites', 'outcome': 'binary', 'head': 'classification', 'patch': (16, 16, 16),
            'detail': 'evaluation',
        },
        fit='outcome',
        extra={
            'refit': {'model': 'adapted', 'sources': ['img'], 'nodes': ['adapted'], 'edges': [['img', 'adapted', 'input']]},
            'transductive': {
                'adapted': "DANN's domain head trains on the held-out site's images (unlabelled: transductive; never their outcomes), and the backbone's batch statistics see them",
            },
        },
        file=SPEC_PATH,
    ))
    return run_evaluate(stage, ctx, pipeline=fold_pipeline_v_dann)


def fold_pipeline_v_source(fold):
    """What `v_source` fits in every training fold (and on every training case for its final model); `fold`: what the data
    decide."""
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    return Pipeline([
        ('impute', SimpleImputer(strategy='median', keep_empty_features=True)),
        ('scale', StandardScaler()),
        ('model', LogisticRegression(max_iter=1000, class_weight=None, random_state=1457499711, C=0.1)),
    ]).set_output(transform='pandas')


# ---- validate v_source = evaluate(...)   [stateless, seed 1112653686]
#   | validate v_source = evaluate(source_only) { cv: leave_one_site_out, metrics: [auc, brier, calibration], bootstrap: 200 }
# consumes: model <- source_only
# calls run_evaluate: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
# fit on outcome
def stage_v_source(ctx, args):
    stage = ctx.declare(Stage(
        name='v_source',
        kind='validate',
        op='evaluate',
        params={
            'cv': {'kind': 'leave_one_site_out'}, 'metrics': ['auc', 'brier', 'calibration'], 'horizons': None,
            'ibs_points': 50, 'threshold': None, 'threshold_cv': 3, 'bootstrap': 200, 'ci': 0.95, 'calibration_bins': 10,
            'net_benefit_range': [0.01, 0.99, 0.01],
        },
        inputs={'model': ['source_only', None]},
        seed=1112653686,
        type={'kind': 'Evaluation', 'cohort': 'sites', 'outcome': 'binary', 'detail': 'evaluation'},
        fit='outcome',
        extra={
            'refit': {'model': 'source_only', 'sources': ['rad'], 'nodes': ['source_only'], 'edges': [['rad', 'source_only', 'input']]},
        },
        file=SPEC_PATH,
    ))
    return run_evaluate(stage, ctx, pipeline=fold_pipeline_v_source)


# The stages in the order `radlang run` executes them.
STAGES = [
    ('enc', stage_enc),
    ('sites', stage_sites),
    ('img', stage_img),
    ('adapted', stage_adapted),
    ('cnn_source', stage_cnn_source),
    ('rad', stage_rad),
    ('combat_rad', stage_combat_rad),
    ('harmonised', stage_harmonised),
    ('source_only', stage_source_only),
    ('v_cnn', stage_v_cnn),
    ('v_combat', stage_v_combat),
    ('v_dann', stage_v_dann),
    ('v_source', stage_v_source),
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
    args.out = Path(args.out) if args.out else _resolve('runs/domain_adaptation')
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


SPEC_SHA256 = '1b6d544a9a2282c165c1c29dd47ab05efc8c21e96cf57eaa0dbc48bfd0dae091'
SPEC_TEXT = (
    '# Domain adaptation across scanners: a three-site phantom whose sites differ by an intensity offset, a noise level and\n'
    '# a blur (a scanner shift), validated leave-one-site-out: every fold trains on two sites and predicts the third,\n'
    '# and the metrics are written per held-out site (metrics/<stage>.json, `per_site`); each prediction names its site.\n'
    '#\n'
    '#   source_only   radiomics -> logistic regression, trained on the source sites as they are\n'
    '#   harmonised    radiomics -> ComBat (combatlearn) -> logistic regression: ComBat is refit inside every training\n'
    '#                 fold; the held-out site was never seen in training, so `unseen: transductive` estimates its\n'
    '#                 location and scale from its own features (never its labels).\n'
    '#   cnn_source    image patches -> a small 3D ResNet (source-only: the network without adaptation)\n'
    '#   adapted       the same network trained with DANN: a domain head predicts the site from the pooled image vector\n'
    "#                 behind a gradient reversal layer (lambda by Ganin et al.'s schedule), on the source sites' images\n"
    "#                 and, with `target_unlabelled: true`, the held-out site's images without their labels.\n"
    '# Both networks train as Ganin et al. (JMLR 2016) train DANN: SGD with momentum and the annealed learning rate\n'
    '# lr / (1 + 10 p)^0.75 (`schedule: ganin`), so the two differ only by the domain head. (With Adam at a constant rate\n'
    '# the reversed gradient left the sites more separable in the pooled vector than source-only training did; with\n'
    "# Ganin's schedule, less: a linear probe of the site, which reads no outcome.) On this phantom DANN does not beat the\n"
    "# source-only CNN: `patches` z-scores every image, which removes the sites' intensity offset and scale, and the\n"
    "# CNN's leave-one-site-out AUC matches its within-site cross-validated AUC, so little shift is left to adapt to.\n"
    "# Both transductive uses (ComBat's and DANN's) are recorded in manifest.json and shown by `radlang plan`.\n"
    '#   radlang run examples/domain_adaptation.rad\n'
    'study "Domain adaptation: source-only vs DANN vs ComBat, leave-one-site-out" {\n'
    '  seed: 3\n'
    '  out: "runs/domain_adaptation"\n'
    '}\n'
    '\n'
    'cohort sites = phantom(60) { effect: 1.5, sites: 3, site_effect: 2.0, site_blur: 1mm, size: [24, 24, 24] }\n'
    '\n'
    'features rad = pyradiomics(sites.image, sites.mask) {\n'
    '  bin_width: 25\n'
    '  classes: [firstorder, glcm]\n'
    '}\n'
    '\n'
    'features img = patches(sites) { patch: [16, 16, 16] }\n'
    'network enc = resnet(dims: 3, in_channels: 1, out_channels: 2) { depth: 10, widen_factor: 0.125 }\n'
    '\n'
    'harmonise combat_rad = combat(rad) { batch: site, unseen: transductive }\n'
    '\n'
    'model source_only = logistic(rad, target: sites.outcome) { C: 0.1 }\n'
    'model harmonised = logistic(combat_rad, target: sites.outcome) { C: 0.1 }\n'
    'model cnn_source = cnn(img, target: sites.outcome, network: enc) {\n'
    '  epochs: 12, batch: 8, hidden: 16, patience: 4, optimizer: sgd, lr: 0.01, schedule: ganin\n'
    '}\n'
    'model adapted = dann(img, target: sites.outcome, network: enc) {\n'
    '  epochs: 12, batch: 8, hidden: 16, patience: 4, optimizer: sgd, lr: 0.01, schedule: ganin, target_unlabelled: true\n'
    '}\n'
    '\n'
    'validate v_source = evaluate(source_only) { cv: leave_one_site_out, metrics: [auc, brier, calibration], bootstrap: 200 }\n'
    'validate v_combat = evaluate(harmonised) { cv: leave_one_site_out, metrics: [auc, brier, calibration], bootstrap: 200 }\n'
    'validate v_cnn = evaluate(cnn_source) { cv: leave_one_site_out, metrics: [auc, brier, calibration], bootstrap: 200 }\n'
    'validate v_dann = evaluate(adapted) { cv: leave_one_site_out, metrics: [auc, brier, calibration], bootstrap: 200 }\n'
)


if __name__ == "__main__":
    raise SystemExit(main())
