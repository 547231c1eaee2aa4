#!/usr/bin/env python3
# A study rendered by radlang for review (UTF-8; no spec text is on these two lines).
#
# Study: Clinical vs radiomics vs combined, on shared folds
#
# The stages follow in the order `radlang run` executes them: each one declares its settings as literals
# and calls a function of radlang_runtime.py (beside this file; its sha256 is checked below before it is
# imported). Together they write the same files as `radlang run`, byte for byte.
#
#   python study.py --out DIR      (writes the same files as `radlang run SPEC --out DIR`)
#   python study.py --help         (flags to point the cohorts at other manifests)
#
# spec sha256 c55f5d767dc60a19cac847926c84cf0e8582329ad7aadc3d7832c5bcd1ab7387; radlang 0.1.0; rendered 2000-01-01T00:00:00Z; python <version>.
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
    make_lasso,
    run_compare,
    run_evaluate,
    run_folds,
    run_join,
    run_phantom,
    run_pyradiomics,
    run_recipe,
    run_record_sources,
    run_tabular,
    write_artefact_manifest,
    write_stage_table,
)

TITLE = 'Clinical vs radiomics vs combined, on shared folds'
SPEC_FILE = str((HERE / '<repo>/examples/compare.rad').resolve())
SPEC_PATH = str((HERE / '<repo>/examples/compare.rad').resolve())
SPEC_DIR = str(Path(SPEC_PATH).parent)
STUDY_SEED = 13
STUDY_CONFIG = {'seed': 13, 'out': 'runs/compare', 'workers': 0, 'on_error': 'fail'}
RENDERED_BY = 'radlang 0.1.0 render'


# =====================================================================================
# The study, stage by stage, in the order `radlang run` executes it.
# =====================================================================================


# ---- cohort train = phantom(...)   [stateless, seed 1620660755]
#   | cohort train = phantom(40) { effect: 1.0, size: [32, 32, 32] }
# consumes: nothing
# calls run_phantom: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
def stage_train(ctx, args):
    stage = ctx.declare(Stage(
        name='train',
        kind='cohort',
        op='phantom',
        params={
            'cases': 40, 'seed': None, 'effect': 1.0, 'sites': 1, 'site_shift': 0.0, 'noise': 8.0, 'size': [32, 32, 32],
            'spacing': [1.0, 1.0, 1.0], 'prefix': None, 'site_effect': 1.0, 'site_blur': 0.0, 'grades': 0, 'stage_effect': None,
            'outcome': 'malignant',
        },
        seed=1620660755,
        type={
            'kind': 'Cohort', 'cohort': 'train', 'outcome': 'binary', 'dims': 3, 'channels': 1, 'has_mask': True,
            'detail': 'phantom',
        },
        file=SPEC_PATH,
    ))
    return run_phantom(stage, ctx)


# ---- features clinical = tabular(...)   [stateless, seed 453071798]
#   | features clinical = tabular(train) { columns: [age] }
# consumes: cohort <- train
# calls run_tabular: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
def stage_clinical(ctx, args):
    stage = ctx.declare(Stage(
        name='clinical',
        kind='features',
        op='tabular',
        params={'columns': ['age']},
        inputs={'cohort': ['train', None]},
        seed=453071798,
        type={'kind': 'Features', 'cohort': 'train', 'outcome': 'binary', 'detail': 'tabular'},
        file=SPEC_PATH,
    ))
    return run_tabular(stage, ctx)


# ---- model clin_model = logistic(...)   [fitted, seed 80843536]
#   | model clin_model = logistic(clinical, target: train.outcome)
# consumes: input <- clinical, target <- train.outcome
# calls run_recipe: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
# fit on outcome inside the training folds of v_clinical
def stage_clin_model(ctx, args):
    stage = ctx.declare(Stage(
        name='clin_model',
        kind='model',
        op='logistic',
        params={
            'impute': 'median', 'scale': 'standard', 'search': None, 'class_weight': None, 'C': 1.0, 'penalty': 'l2',
            'l1_ratio': None, 'max_iter': 1000,
        },
        inputs={'input': ['clinical', None], 'target': ['train', 'outcome']},
        seed=80843536,
        type={'kind': 'Model', 'cohort': 'train', 'outcome': 'binary', 'detail': 'logistic model'},
        fit='outcome',
        fit_within=['v_clinical'],
        file=SPEC_PATH,
    ))
    return run_recipe(stage, ctx)


# ---- split cvs = folds(...)   [stateless, seed 1613685928]
#   | split cvs = folds(train) { cv: stratified_kfold(5, repeats: 2) }
# consumes: cohort <- train
# calls run_folds: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
def stage_cvs(ctx, args):
    stage = ctx.declare(Stage(
        name='cvs',
        kind='split',
        op='folds',
        params={'cv': {'kind': 'stratified_kfold', 'k': 5, 'repeats': 2, 'groups': None, 'seed': None}},
        inputs={'cohort': ['train', None]},
        seed=1613685928,
        type={'kind': 'Split', 'cohort': 'train', 'outcome': 'binary', 'split': 'cvs', 'detail': 'cross-validation split'},
        file=SPEC_PATH,
    ))
    return run_folds(stage, ctx)


# ---- features rad = pyradiomics(...)   [per_case, seed 410819170]
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
        seed=410819170,
        type={'kind': 'Features', 'cohort': 'train', 'dims': 3, 'detail': 'pyradiomics'},
        file=SPEC_PATH,
    ))
    # the library object these settings make:
    #   featureextractor.RadiomicsFeatureExtractor({'featureClass': {'firstorder': [], 'glcm': []},
    #        'imageType': {'Original': {}},
    #        'setting': {'additionalInfo': True, 'binWidth': 25.0}})
    return run_pyradiomics(stage, ctx)


# ---- select sig = lasso(...)   [fitted, seed 25490623]
#   | select sig = lasso(rad, target: train.outcome) { cv: 5, max_features: 8 }
# consumes: input <- rad, target <- train.outcome
# calls run_recipe: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
# fit on outcome inside the training folds of v_combined, v_radiomics
def stage_sig(ctx, args):
    stage = ctx.declare(Stage(
        name='sig',
        kind='select',
        op='lasso',
        params={'cv': 5, 'n_alphas': 10, 'scoring': 'neg_log_loss', 'max_features': 8, 'min_features': 1},
        inputs={'input': ['rad', None], 'target': ['train', 'outcome']},
        seed=25490623,
        type={'kind': 'Features', 'cohort': 'train', 'outcome': 'binary', 'detail': 'lasso selection'},
        fit='outcome',
        fit_within=['v_combined', 'v_radiomics'],
        file=SPEC_PATH,
    ))
    return run_recipe(stage, ctx)


# ---- features combined = join(...)   [stateless, seed 1331713132]
#   | features combined = join(sig, clinical)
# consumes: table1 <- sig, table2 <- clinical
# calls run_join: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
def stage_combined(ctx, args):
    stage = ctx.declare(Stage(
        name='combined',
        kind='features',
        op='join',
        params={'by': 'case', 'prefix': False},
        inputs={'table1': ['sig', None], 'table2': ['clinical', None]},
        seed=1331713132,
        type={'kind': 'Features', 'cohort': 'train', 'outcome': 'binary', 'detail': 'joined table'},
        fit_within=['v_combined'],
        file=SPEC_PATH,
    ))
    return run_join(stage, ctx)


# ---- model both_model = logistic(...)   [fitted, seed 2053496655]
#   | model both_model = logistic(combined, target: train.outcome)
# consumes: input <- combined, target <- train.outcome
# calls run_recipe: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
# fit on outcome inside the training folds of v_combined
def stage_both_model(ctx, args):
    stage = ctx.declare(Stage(
        name='both_model',
        kind='model',
        op='logistic',
        params={
            'impute': 'median', 'scale': 'standard', 'search': None, 'class_weight': None, 'C': 1.0, 'penalty': 'l2',
            'l1_ratio': None, 'max_iter': 1000,
        },
        inputs={'input': ['combined', None], 'target': ['train', 'outcome']},
        seed=2053496655,
        type={'kind': 'Model', 'cohort': 'train', 'outcome': 'binary', 'detail': 'logistic model'},
        fit='outcome',
        fit_within=['v_combined'],
        file=SPEC_PATH,
    ))
    return run_recipe(stage, ctx)


# ---- model rad_model = logistic(...)   [fitted, seed 27655842]
#   | model rad_model = logistic(sig, target: train.outcome)
# consumes: input <- sig, target <- train.outcome
# calls run_recipe: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
# fit on outcome inside the training folds of v_radiomics
def stage_rad_model(ctx, args):
    stage = ctx.declare(Stage(
        name='rad_model',
        kind='model',
        op='logistic',
        params={
            'impute': 'median', 'scale': 'standard', 'search': None, 'class_weight': None, 'C': 1.0, 'penalty': 'l2',
            'l1_ratio': None, 'max_iter': 1000,
        },
        inputs={'input': ['sig', None], 'target': ['train', 'outcome']},
        seed=27655842,
        type={'kind': 'Model', 'cohort': 'train', 'outcome': 'binary', 'detail': 'logistic model'},
        fit='outcome',
        fit_within=['v_radiomics'],
        file=SPEC_PATH,
    ))
    return run_recipe(stage, ctx)


def fold_pipeline_v_clinical(fold):
    """What `v_clinical` fits in every training fold (and on every training case for its final model); `fold`: what the data
    decide."""
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    return Pipeline([
        ('impute', SimpleImputer(strategy='median', keep_empty_features=True)),
        ('scale', StandardScaler()),
        ('model', LogisticRegression(max_iter=1000, class_weight=None, random_state=80843536, C=1.0)),
    ]).set_output(transform='pandas')


# ---- validate v_clinical = evaluate(...)   [stateless, seed 1345991851]
#   | validate v_clinical = evaluate(clin_model, split: cvs) { metrics: [auc, roc], bootstrap: 500 }
# consumes: model <- clin_model, split <- cvs
# calls run_evaluate: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
# fit on outcome
def stage_v_clinical(ctx, args):
    stage = ctx.declare(Stage(
        name='v_clinical',
        kind='validate',
        op='evaluate',
        params={
            'cv': {'kind': 'stratified_kfold', 'k': 5, 'repeats': 1, 'groups': None, 'seed': None}, 'metrics': ['auc', 'roc'],
            'horizons': None, 'ibs_points': 50, 'threshold': None, 'threshold_cv': 3, 'bootstrap': 500, 'ci': 0.95,
            'calibration_bins': 10, 'net_benefit_range': [0.01, 0.99, 0.01],
        },
        inputs={'model': ['clin_model', None], 'split': ['cvs', None]},
        seed=1345991851,
        type={'kind': 'Evaluation', 'cohort': 'train', 'outcome': 'binary', 'split': 'cvs', 'detail': 'evaluation'},
        fit='outcome',
        extra={
            'refit': {
                'model': 'clin_model', 'sources': ['clinical'], 'nodes': ['clin_model'],
                'edges': [['clinical', 'clin_model', 'input']],
            },
        },
        file=SPEC_PATH,
    ))
    return run_evaluate(stage, ctx, pipeline=fold_pipeline_v_clinical)


def fold_pipeline_v_combined(fold):
    """What `v_combined` fits in every training fold (and on every training case for its final model); `fold`: what the data
    decide."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    return Pipeline([
        ('impute', SimpleImputer(strategy='median', keep_empty_features=True)),
        ('combined', ColumnTransformer([
            ('sig', Pipeline([
                ('sig', make_lasso({'cv': 5, 'n_alphas': 10, 'scoring': 'neg_log_loss', 'max_features': 8, 'min_features': 1}, 25490623,
                                   fold['inputs']['sig'])),
            ]).set_output(transform='pandas'), fold['columns']['sig']),
            ('clinical', 'passthrough', fold['columns']['clinical']),
        ], remainder='drop', verbose_feature_names_out=False).set_output(transform='pandas')),
        ('scale', StandardScaler()),
        ('model', LogisticRegression(max_iter=1000, class_weight=None, random_state=2053496655, C=1.0)),
    ]).set_output(transform='pandas')


# ---- validate v_combined = evaluate(...)   [stateless, seed 1399670412]
#   | validate v_combined = evaluate(both_model, split: cvs) { metrics: [auc, roc], bootstrap: 500 }
# consumes: model <- both_model, split <- cvs
# calls run_evaluate: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
# fit on outcome
def stage_v_combined(ctx, args):
    stage = ctx.declare(Stage(
        name='v_combined',
        kind='validate',
        op='evaluate',
        params={
            'cv': {'kind': 'stratified_kfold', 'k': 5, 'repeats': 1, 'groups': None, 'seed': None}, 'metrics': ['auc', 'roc'],
            'horizons': None, 'ibs_points': 50, 'threshold': None, 'threshold_cv': 3, 'bootstrap': 500, 'ci': 0.95,
            'calibration_bins': 10, 'net_benefit_range': [0.01, 0.99, 0.01],
        },
        inputs={'model': ['both_model', None], 'split': ['cvs', None]},
        seed=1399670412,
        type={'kind': 'Evaluation', 'cohort': 'train', 'outcome': 'binary', 'split': 'cvs', 'detail': 'evaluation'},
        fit='outcome',
        extra={
            'refit': {
                'model': 'both_model', 'sources': ['clinical', 'rad'], 'nodes': ['sig', 'combined', 'both_model'],
                'edges': [
                    ['clinical', 'combined', 'table2'], ['combined', 'both_model', 'input'], ['rad', 'sig', 'input'],
                    ['sig', 'combined', 'table1'],
                ],
            },
        },
        file=SPEC_PATH,
    ))
    return run_evaluate(stage, ctx, pipeline=fold_pipeline_v_combined)


def fold_pipeline_v_radiomics(fold):
    """What `v_radiomics` fits in every training fold (and on every training case for its final model); `fold`: what the data
    decide."""
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    return Pipeline([
        ('impute', SimpleImputer(strategy='median', keep_empty_features=True)),
        ('sig', make_lasso({'cv': 5, 'n_alphas': 10, 'scoring': 'neg_log_loss', 'max_features': 8, 'min_features': 1}, 25490623,
                           fold['inputs']['sig'])),
        ('scale', StandardScaler()),
        ('model', LogisticRegression(max_iter=1000, class_weight=None, random_state=27655842, C=1.0)),
    ]).set_output(transform='pandas')


# ---- validate v_radiomics = evaluate(...)   [stateless, seed 743121531]
#   | validate v_radiomics = evaluate(rad_model, split: cvs) { metrics: [auc, roc], bootstrap: 500 }
# consumes: model <- rad_model, split <- cvs
# calls run_evaluate: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
# fit on outcome
def stage_v_radiomics(ctx, args):
    stage = ctx.declare(Stage(
        name='v_radiomics',
        kind='validate',
        op='evaluate',
        params={
            'cv': {'kind': 'stratified_kfold', 'k': 5, 'repeats': 1, 'groups': None, 'seed': None}, 'metrics': ['auc', 'roc'],
            'horizons': None, 'ibs_points': 50, 'threshold': None, 'threshold_cv': 3, 'bootstrap': 500, 'ci': 0.95,
            'calibration_bins': 10, 'net_benefit_range': [0.01, 0.99, 0.01],
        },
        inputs={'model': ['rad_model', None], 'split': ['cvs', None]},
        seed=743121531,
        type={'kind': 'Evaluation', 'cohort': 'train', 'outcome': 'binary', 'split': 'cvs', 'detail': 'evaluation'},
        fit='outcome',
        extra={
            'refit': {
                'model': 'rad_model', 'sources': ['rad'], 'nodes': ['sig', 'rad_model'],
                'edges': [['rad', 'sig', 'input'], ['sig', 'rad_model', 'input']],
            },
        },
        file=SPEC_PATH,
    ))
    return run_evaluate(stage, ctx, pipeline=fold_pipeline_v_radiomics)


# ---- validate cmp = compare(...)   [stateless, seed 713144772]
#   | validate cmp = compare(v_clinical, v_radiomics, v_combined) { bootstrap: 2000 }
# consumes: eval1 <- v_clinical, eval2 <- v_radiomics, eval3 <- v_combined
# calls run_compare: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
def stage_cmp(ctx, args):
    stage = ctx.declare(Stage(
        name='cmp',
        kind='validate',
        op='compare',
        params={'bootstrap': 2000, 'ci': 0.95},
        inputs={'eval1': ['v_clinical', None], 'eval2': ['v_radiomics', None], 'eval3': ['v_combined', None]},
        seed=713144772,
        type={'kind': 'Evaluation', 'cohort': 'train', 'outcome': 'binary', 'split': 'cvs', 'detail': 'model comparison'},
        file=SPEC_PATH,
    ))
    return run_compare(stage, ctx)


# The stages in the order `radlang run` executes them.
STAGES = [
    ('train', stage_train),
    ('clinical', stage_clinical),
    ('clin_model', stage_clin_model),
    ('cvs', stage_cvs),
    ('rad', stage_rad),
    ('sig', stage_sig),
    ('combined', stage_combined),
    ('both_model', stage_both_model),
    ('rad_model', stage_rad_model),
    ('v_clinical', stage_v_clinical),
    ('v_combined', stage_v_combined),
    ('v_radiomics', stage_v_radiomics),
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
    args.out = Path(args.out) if args.out else _resolve('runs/compare')
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


SPEC_SHA256 = 'c55f5d767dc60a19cac847926c84cf0e8582329ad7aadc3d7832c5bcd1ab7387'
SPEC_TEXT = (
    '# Clinical, radiomics and combined models compared on the same folds. The split is declared once (`folds`):\n'
    "# every evaluation holds out exactly the same patients in each fold and repeat, so the models' out-of-fold\n"
    "# predictions pair case by case. `compare` reports each model's AUC and each pair's difference with a CI from a\n"
    "# patient bootstrap, and DeLong's test for correlated AUCs:\n"
    '#   radlang run examples/compare.rad\n'
    '# writes metrics/cmp.json, the table metrics/cmp.csv and plots/cmp/comparison.png under examples/runs/compare.\n'
    'study "Clinical vs radiomics vs combined, on shared folds" {\n'
    '  seed: 13\n'
    '  out: "runs/compare"\n'
    '}\n'
    '\n'
    'cohort train = phantom(40) { effect: 1.0, size: [32, 32, 32] }\n'
    '\n'
    'features rad = pyradiomics(train.image, train.mask) {\n'
    '  bin_width: 25\n'
    '  classes: [firstorder, glcm]\n'
    '}\n'
    'features clinical = tabular(train) { columns: [age] }\n'
    '\n'
    'select sig = lasso(rad, target: train.outcome) { cv: 5, max_features: 8 }\n'
    'features combined = join(sig, clinical)\n'
    '\n'
    'model clin_model = logistic(clinical, target: train.outcome)\n'
    'model rad_model = logistic(sig, target: train.outcome)\n'
    'model both_model = logistic(combined, target: train.outcome)\n'
    '\n'
    'split cvs = folds(train) { cv: stratified_kfold(5, repeats: 2) }\n'
    '\n'
    'validate v_clinical = evaluate(clin_model, split: cvs) { metrics: [auc, roc], bootstrap: 500 }\n'
    'validate v_radiomics = evaluate(rad_model, split: cvs) { metrics: [auc, roc], bootstrap: 500 }\n'
    'validate v_combined = evaluate(both_model, split: cvs) { metrics: [auc, roc], bootstrap: 500 }\n'
    '\n'
    'validate cmp = compare(v_clinical, v_radiomics, v_combined) { bootstrap: 2000 }\n'
)


if __name__ == "__main__":
    raise SystemExit(main())
