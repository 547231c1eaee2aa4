#!/usr/bin/env python3
# A study rendered by radlang for review (UTF-8; no spec text is on these two lines).
#
# Study: Radiogenomics: radiomics x hypoxia pathway
#
# The stages follow in the order `radlang run` executes them: each one declares its settings as literals
# and calls a function of radlang_runtime.py (beside this file; its sha256 is checked below before it is
# imported). Together they write the same files as `radlang run`, byte for byte.
#
#   python study.py --out DIR      (writes the same files as `radlang run SPEC --out DIR`)
#   python study.py --help         (flags to point the cohorts at other manifests)
#
# spec sha256 e555f89728360f3d9c35b1bfe0d35c5d505af458328eb3e343a56812b9061ea3; radlang 0.1.0; rendered 2000-01-01T00:00:00Z; python <version>.
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
    run_compare,
    run_evaluate,
    run_folds,
    run_join,
    run_phantom,
    run_pyradiomics,
    run_recipe,
    run_record_sources,
    run_singscore,
    run_spearman,
    run_synthetic_expression,
    run_tabular,
    write_artefact_manifest,
    write_stage_table,
)

TITLE = 'Radiogenomics: radiomics x hypoxia pathway'
SPEC_FILE = str((HERE / '<repo>/examples/radiogenomics.rad').resolve())
SPEC_PATH = str((HERE / '<repo>/examples/radiogenomics.rad').resolve())
SPEC_DIR = str(Path(SPEC_PATH).parent)
STUDY_SEED = 5
STUDY_CONFIG = {'seed': 5, 'out': 'runs/radiogenomics', 'workers': 0, 'on_error': 'fail'}
RENDERED_BY = 'radlang 0.1.0 render'


# =====================================================================================
# The study, stage by stage, in the order `radlang run` executes it.
# =====================================================================================


# ---- cohort train = phantom(...)   [stateless, seed 1394244279]
#   | cohort train = phantom(60) { effect: 1.0, size: [32, 32, 32] }
# consumes: nothing
# calls run_phantom: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
def stage_train(ctx, args):
    stage = ctx.declare(Stage(
        name='train',
        kind='cohort',
        op='phantom',
        params={
            'cases': 60, 'seed': None, 'effect': 1.0, 'sites': 1, 'site_shift': 0.0, 'noise': 8.0, 'size': [32, 32, 32],
            'spacing': [1.0, 1.0, 1.0], 'prefix': None, 'site_effect': 1.0, 'site_blur': 0.0, 'grades': 0, 'stage_effect': None,
            'outcome': 'malignant',
        },
        seed=1394244279,
        type={
            'kind': 'Cohort', 'cohort': 'train', 'outcome': 'binary', 'dims': 3, 'channels': 1, 'has_mask': True,
            'detail': 'phantom',
        },
        file=SPEC_PATH,
    ))
    return run_phantom(stage, ctx)


# ---- split cvs = folds(...)   [stateless, seed 1990649253]
#   | split cvs = folds(train) { cv: stratified_kfold(5) }
# consumes: cohort <- train
# calls run_folds: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
def stage_cvs(ctx, args):
    stage = ctx.declare(Stage(
        name='cvs',
        kind='split',
        op='folds',
        params={'cv': {'kind': 'stratified_kfold', 'k': 5, 'repeats': 1, 'groups': None, 'seed': None}},
        inputs={'cohort': ['train', None]},
        seed=1990649253,
        type={'kind': 'Split', 'cohort': 'train', 'outcome': 'binary', 'split': 'cvs', 'detail': 'cross-validation split'},
        file=SPEC_PATH,
    ))
    return run_folds(stage, ctx)


# ---- cohort genes = synthetic_expression(...)   [stateless, seed 1095749143]
#   | cohort genes = synthetic_expression(train) { genes: 300, effect: 1.5 }
# consumes: cohort <- train
# calls run_synthetic_expression: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
def stage_genes(ctx, args):
    stage = ctx.declare(Stage(
        name='genes',
        kind='cohort',
        op='synthetic_expression',
        params={'genes': 300, 'effect': 1.5, 'noise': 0.5, 'seed': None},
        inputs={'cohort': ['train', None]},
        seed=1095749143,
        type={'kind': 'Cohort', 'cohort': 'genes', 'channels': 0, 'detail': 'synthetic expression'},
        file=SPEC_PATH,
    ))
    return run_synthetic_expression(stage, ctx)


# ---- features expr = tabular(...)   [stateless, seed 2138902770]
#   | features expr = tabular(genes)
# consumes: cohort <- genes
# calls run_tabular: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
def stage_expr(ctx, args):
    stage = ctx.declare(Stage(
        name='expr',
        kind='features',
        op='tabular',
        params={'columns': None},
        inputs={'cohort': ['genes', None]},
        seed=2138902770,
        type={'kind': 'Features', 'cohort': 'genes', 'detail': 'tabular'},
        file=SPEC_PATH,
    ))
    return run_tabular(stage, ctx)


# ---- features paths = singscore(...)   [stateless, seed 1239332255]
#   | features paths = singscore(expr) {
#   |   sets: [
#   |     hypoxia(CA9, VEGFA, SLC2A1, PGK1, LDHA, BNIP3, ADM, NDRG1, P4HA1, ANKRD37),
#   |     proliferation(MKI67, TOP2A, CCNB1, BUB1, AURKA, CDK1, MCM2, PCNA, "CENPF", "FOXM1")
#   |   ]
#   |   min_genes: 5
#   | }
# consumes: input <- expr
# calls run_singscore: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
def stage_paths(ctx, args):
    stage = ctx.declare(Stage(
        name='paths',
        kind='features',
        op='singscore',
        params={
            'sets': [
                {
                    'name': 'hypoxia',
                    'genes': ['CA9', 'VEGFA', 'SLC2A1', 'PGK1', 'LDHA', 'BNIP3', 'ADM', 'NDRG1', 'P4HA1', 'ANKRD37'],
                },
                {
                    'name': 'proliferation',
                    'genes': ['MKI67', 'TOP2A', 'CCNB1', 'BUB1', 'AURKA', 'CDK1', 'MCM2', 'PCNA', 'CENPF', 'FOXM1'],
                },
            ],
            'gmt': None, 'min_genes': 5,
        },
        inputs={'input': ['expr', None]},
        seed=1239332255,
        type={'kind': 'Features', 'cohort': 'genes', 'detail': 'singscore pathway scores'},
        file=SPEC_PATH,
    ))
    return run_singscore(stage, ctx)


# ---- features rad = pyradiomics(...)   [per_case, seed 1078078843]
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
        seed=1078078843,
        type={'kind': 'Features', 'cohort': 'train', 'dims': 3, 'detail': 'pyradiomics'},
        file=SPEC_PATH,
    ))
    # the library object these settings make:
    #   featureextractor.RadiomicsFeatureExtractor({'featureClass': {'firstorder': [], 'glcm': []},
    #        'imageType': {'Original': {}},
    #        'setting': {'additionalInfo': True, 'binWidth': 25.0}})
    return run_pyradiomics(stage, ctx)


# ---- features rad_genes = join(...)   [stateless, seed 1929299407]
#   | features rad_genes = join(rad, expr) { by: patient }
# consumes: table1 <- rad, table2 <- expr
# calls run_join: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
def stage_rad_genes(ctx, args):
    stage = ctx.declare(Stage(
        name='rad_genes',
        kind='features',
        op='join',
        params={'by': 'patient', 'prefix': False},
        inputs={'table1': ['rad', None], 'table2': ['expr', None]},
        seed=1929299407,
        type={'kind': 'Features', 'cohort': 'train', 'detail': 'joined table'},
        file=SPEC_PATH,
    ))
    return run_join(stage, ctx)


# ---- model enet = logistic(...)   [fitted, seed 1024557077]
#   | model enet = logistic(rad_genes, target: train.outcome) {
#   |   penalty: elasticnet
#   |   search: grid(C: [0.05, 0.5, 5], l1_ratio: [0.2, 0.8], cv: 3)
#   |   max_iter: 3000
#   | }
# consumes: input <- rad_genes, target <- train.outcome
# calls run_recipe: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
# fit on outcome inside the training folds of v_genes
def stage_enet(ctx, args):
    stage = ctx.declare(Stage(
        name='enet',
        kind='model',
        op='logistic',
        params={
            'impute': 'median', 'scale': 'standard',
            'search': {'kind': 'grid', 'cv': 3, 'scoring': 'roc_auc', 'grid': {'C': [0.05, 0.5, 5], 'l1_ratio': [0.2, 0.8]}},
            'class_weight': None, 'C': 1.0, 'penalty': 'elasticnet', 'l1_ratio': 0.5, 'max_iter': 3000,
        },
        inputs={'input': ['rad_genes', None], 'target': ['train', 'outcome']},
        seed=1024557077,
        type={'kind': 'Model', 'cohort': 'train', 'outcome': 'binary', 'detail': 'logistic model'},
        fit='outcome',
        fit_within=['v_genes'],
        file=SPEC_PATH,
    ))
    return run_recipe(stage, ctx)


# ---- features rad_paths = join(...)   [stateless, seed 33040613]
#   | features rad_paths = join(rad, paths) { by: patient }
# consumes: table1 <- rad, table2 <- paths
# calls run_join: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
def stage_rad_paths(ctx, args):
    stage = ctx.declare(Stage(
        name='rad_paths',
        kind='features',
        op='join',
        params={'by': 'patient', 'prefix': False},
        inputs={'table1': ['rad', None], 'table2': ['paths', None]},
        seed=33040613,
        type={'kind': 'Features', 'cohort': 'train', 'detail': 'joined table'},
        file=SPEC_PATH,
    ))
    return run_join(stage, ctx)


# ---- associate rg = spearman(...)   [stateless, seed 1219830795]
#   | associate rg = spearman(rad, paths) { by: patient, fdr: 0.05, top: 25 }
# consumes: first <- rad, second <- paths
# calls run_spearman: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
def stage_rg(ctx, args):
    stage = ctx.declare(Stage(
        name='rg',
        kind='associate',
        op='spearman',
        params={'by': 'patient', 'fdr': 0.05, 'top': 25},
        inputs={'first': ['rad', None], 'second': ['paths', None]},
        seed=1219830795,
        type={'kind': 'Association', 'cohort': 'train', 'detail': 'Spearman association'},
        file=SPEC_PATH,
    ))
    return run_spearman(stage, ctx)


# ---- model ridge = logistic(...)   [fitted, seed 2086743464]
#   | model ridge = logistic(rad_paths, target: train.outcome) { penalty: l2, search: grid(C: [0.01, 0.1, 1], cv: 3) }
# consumes: input <- rad_paths, target <- train.outcome
# calls run_recipe: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
# fit on outcome inside the training folds of v_paths
def stage_ridge(ctx, args):
    stage = ctx.declare(Stage(
        name='ridge',
        kind='model',
        op='logistic',
        params={
            'impute': 'median', 'scale': 'standard',
            'search': {'kind': 'grid', 'cv': 3, 'scoring': 'roc_auc', 'grid': {'C': [0.01, 0.1, 1]}}, 'class_weight': None,
            'C': 1.0, 'penalty': 'l2', 'l1_ratio': None, 'max_iter': 1000,
        },
        inputs={'input': ['rad_paths', None], 'target': ['train', 'outcome']},
        seed=2086743464,
        type={'kind': 'Model', 'cohort': 'train', 'outcome': 'binary', 'detail': 'logistic model'},
        fit='outcome',
        fit_within=['v_paths'],
        file=SPEC_PATH,
    ))
    return run_recipe(stage, ctx)


def fold_pipeline_v_genes(fold):
    """What `v_genes` fits in every training fold (and on every training case for its final model); `fold`: what the data
    decide."""
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    pipeline = Pipeline([
        ('impute', SimpleImputer(strategy='median', keep_empty_features=True)),
        ('scale', StandardScaler()),
        ('model', LogisticRegression(max_iter=3000, class_weight=None, random_state=1024557077, C=1.0, l1_ratio=0.5, solver='saga')),
    ]).set_output(transform='pandas')
    inner = StratifiedKFold(3, shuffle=True, random_state=1024557077)
    return GridSearchCV(pipeline, {'model__C': [0.05, 0.5, 5], 'model__l1_ratio': [0.2, 0.8]}, cv=inner, scoring='roc_auc', refit=True,
                        n_jobs=1)


# ---- validate v_genes = evaluate(...)   [stateless, seed 1705421492]
#   | validate v_genes = evaluate(enet, split: cvs) { metrics: [auc, roc], bootstrap: 500 }
# consumes: model <- enet, split <- cvs
# calls run_evaluate: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
# fit on outcome
def stage_v_genes(ctx, args):
    stage = ctx.declare(Stage(
        name='v_genes',
        kind='validate',
        op='evaluate',
        params={
            'cv': {'kind': 'stratified_kfold', 'k': 5, 'repeats': 1, 'groups': None, 'seed': None}, 'metrics': ['auc', 'roc'],
            'horizons': None, 'ibs_points': 50, 'threshold': None, 'threshold_cv': 3, 'bootstrap': 500, 'ci': 0.95,
            'calibration_bins': 10, 'net_benefit_range': [0.01, 0.99, 0.01],
        },
        inputs={'model': ['enet', None], 'split': ['cvs', None]},
        seed=1705421492,
        type={'kind': 'Evaluation', 'cohort': 'train', 'outcome': 'binary', 'split': 'cvs', 'detail': 'evaluation'},
        fit='outcome',
        extra={'refit': {'model': 'enet', 'sources': ['rad_genes'], 'nodes': ['enet'], 'edges': [['rad_genes', 'enet', 'input']]}},
        file=SPEC_PATH,
    ))
    return run_evaluate(stage, ctx, pipeline=fold_pipeline_v_genes)


def fold_pipeline_v_paths(fold):
    """What `v_paths` fits in every training fold (and on every training case for its final model); `fold`: what the data
    decide."""
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    pipeline = Pipeline([
        ('impute', SimpleImputer(strategy='median', keep_empty_features=True)),
        ('scale', StandardScaler()),
        ('model', LogisticRegression(max_iter=1000, class_weight=None, random_state=2086743464, C=1.0)),
    ]).set_output(transform='pandas')
    inner = StratifiedKFold(3, shuffle=True, random_state=2086743464)
    return GridSearchCV(pipeline, {'model__C': [0.01, 0.1, 1]}, cv=inner, scoring='roc_auc', refit=True, n_jobs=1)


# ---- validate v_paths = evaluate(...)   [stateless, seed 1475632197]
#   | validate v_paths = evaluate(ridge, split: cvs) { metrics: [auc, roc], bootstrap: 500 }
# consumes: model <- ridge, split <- cvs
# calls run_evaluate: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
# fit on outcome
def stage_v_paths(ctx, args):
    stage = ctx.declare(Stage(
        name='v_paths',
        kind='validate',
        op='evaluate',
        params={
            'cv': {'kind': 'stratified_kfold', 'k': 5, 'repeats': 1, 'groups': None, 'seed': None}, 'metrics': ['auc', 'roc'],
            'horizons': None, 'ibs_points': 50, 'threshold': None, 'threshold_cv': 3, 'bootstrap': 500, 'ci': 0.95,
            'calibration_bins': 10, 'net_benefit_range': [0.01, 0.99, 0.01],
        },
        inputs={'model': ['ridge', None], 'split': ['cvs', None]},
        seed=1475632197,
        type={'kind': 'Evaluation', 'cohort': 'train', 'outcome': 'binary', 'split': 'cvs', 'detail': 'evaluation'},
        fit='outcome',
        extra={'refit': {'model': 'ridge', 'sources': ['rad_paths'], 'nodes': ['ridge'], 'edges': [['rad_paths', 'ridge', 'input']]}},
        file=SPEC_PATH,
    ))
    return run_evaluate(stage, ctx, pipeline=fold_pipeline_v_paths)


# ---- validate cmp = compare(...)   [stateless, seed 546071323]
#   | validate cmp = compare(v_genes, v_paths) { bootstrap: 1000 }
# consumes: eval1 <- v_genes, eval2 <- v_paths
# calls run_compare: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
def stage_cmp(ctx, args):
    stage = ctx.declare(Stage(
        name='cmp',
        kind='validate',
        op='compare',
        params={'bootstrap': 1000, 'ci': 0.95},
        inputs={'eval1': ['v_genes', None], 'eval2': ['v_paths', None]},
        seed=546071323,
        type={'kind': 'Evaluation', 'cohort': 'train', 'outcome': 'binary', 'split': 'cvs', 'detail': 'model comparison'},
        file=SPEC_PATH,
    ))
    return run_compare(stage, ctx)


# The stages in the order `radlang run` executes them.
STAGES = [
    ('train', stage_train),
    ('cvs', stage_cvs),
    ('genes', stage_genes),
    ('expr', stage_expr),
    ('paths', stage_paths),
    ('rad', stage_rad),
    ('rad_genes', stage_rad_genes),
    ('enet', stage_enet),
    ('rad_paths', stage_rad_paths),
    ('rg', stage_rg),
    ('ridge', stage_ridge),
    ('v_genes', stage_v_genes),
    ('v_paths', stage_v_paths),
    ('cmp', stage_cmp),
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
    args.out = Path(args.out) if args.out else _resolve('runs/radiogenomics')
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


SPEC_SHA256 = 'e555f89728360f3d9c35b1bfe0d35c5d505af458328eb3e343a56812b9061ea3'
SPEC_TEXT = (
    '# Radiogenomics: radiomics features and gene-expression pathway scores of the same patients. The expression table is\n'
    '# generated (`synthetic_expression`: 318 genes for 60 patients, p >> n) so that a hypoxia pathway drives the outcome.\n'
    '# singscore scores each pathway within each sample alone (no normalisation across samples: nothing leaks across\n'
    '# folds); `spearman` tabulates radiomics x pathway associations with a Benjamini-Hochberg FDR; an elastic net on\n'
    '# the genes chooses its penalty by inner CV inside every training fold (nested CV):\n'
    '#   radlang run examples/radiogenomics.rad\n'
    '# writes associations/rg.csv, plots/rg/heatmap.png and metrics/v_*.json under examples/runs/radiogenomics.\n'
    'study "Radiogenomics: radiomics x hypoxia pathway" {\n'
    '  seed: 5\n'
    '  out: "runs/radiogenomics"\n'
    '}\n'
    '\n'
    'cohort train = phantom(60) { effect: 1.0, size: [32, 32, 32] }\n'
    'cohort genes = synthetic_expression(train) { genes: 300, effect: 1.5 }\n'
    '\n'
    'features rad = pyradiomics(train.image, train.mask) {\n'
    '  bin_width: 25\n'
    '  classes: [firstorder, glcm]\n'
    '}\n'
    'features expr = tabular(genes)\n'
    'features paths = singscore(expr) {\n'
    '  sets: [\n'
    '    hypoxia(CA9, VEGFA, SLC2A1, PGK1, LDHA, BNIP3, ADM, NDRG1, P4HA1, ANKRD37),\n'
    '    proliferation(MKI67, TOP2A, CCNB1, BUB1, AURKA, CDK1, MCM2, PCNA, "CENPF", "FOXM1")\n'
    '  ]\n'
    '  min_genes: 5\n'
    '}\n'
    '\n'
    'associate rg = spearman(rad, paths) { by: patient, fdr: 0.05, top: 25 }\n'
    '\n'
    'features rad_genes = join(rad, expr) { by: patient }\n'
    'model enet = logistic(rad_genes, target: train.outcome) {\n'
    '  penalty: elasticnet\n'
    '  search: grid(C: [0.05, 0.5, 5], l1_ratio: [0.2, 0.8], cv: 3)\n'
    '  max_iter: 3000\n'
    '}\n'
    'features rad_paths = join(rad, paths) { by: patient }\n'
    'model ridge = logistic(rad_paths, target: train.outcome) { penalty: l2, search: grid(C: [0.01, 0.1, 1], cv: 3) }\n'
    '\n'
    'split cvs = folds(train) { cv: stratified_kfold(5) }\n'
    'validate v_genes = evaluate(enet, split: cvs) { metrics: [auc, roc], bootstrap: 500 }\n'
    'validate v_paths = evaluate(ridge, split: cvs) { metrics: [auc, roc], bootstrap: 500 }\n'
    'validate cmp = compare(v_genes, v_paths) { bootstrap: 1000 }\n'
)


if __name__ == "__main__":
    raise SystemExit(main())
