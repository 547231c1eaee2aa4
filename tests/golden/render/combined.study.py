#!/usr/bin/env python3
# A study rendered by radlang for review (UTF-8; no spec text is on these two lines).
#
# Study: Radiomics signature plus age
#
# The stages follow in the order `radlang run` executes them: each one declares its settings as literals
# and calls a function of radlang_runtime.py (beside this file; its sha256 is checked below before it is
# imported). Together they write the same files as `radlang run`, byte for byte.
#
#   python study.py --out DIR      (writes the same files as `radlang run SPEC --out DIR`)
#   python study.py --help         (flags to point the cohorts at other manifests)
#
# spec sha256 3d9e09590ce555a27a174bb4e81ad7e5c9368aa384704a45e32daffd2d73e354; radlang 0.1.0; rendered 2000-01-01T00:00:00Z; python <version>.
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
    run_evaluate,
    run_join,
    run_phantom,
    run_pyradiomics,
    run_recipe,
    run_record_sources,
    run_tabular,
    write_artefact_manifest,
    write_stage_table,
)

TITLE = 'Radiomics signature plus age'
SPEC_FILE = str((HERE / '<repo>/examples/combined.rad').resolve())
SPEC_PATH = str((HERE / '<repo>/examples/combined.rad').resolve())
SPEC_DIR = str(Path(SPEC_PATH).parent)
STUDY_SEED = 11
STUDY_CONFIG = {'seed': 11, 'out': 'runs/combined', 'workers': 0, 'on_error': 'fail'}
RENDERED_BY = 'radlang 0.1.0 render'


# =====================================================================================
# The study, stage by stage, in the order `radlang run` executes it.
# =====================================================================================


# ---- cohort external = phantom(...)   [stateless, seed 1000921175]
#   | cohort external = phantom(24, seed: 5) { effect: 1.0, size: [32, 32, 32], site_shift: 20HU }
# consumes: nothing
# calls run_phantom: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
def stage_external(ctx, args):
    stage = ctx.declare(Stage(
        name='external',
        kind='cohort',
        op='phantom',
        params={
            'cases': 24, 'seed': 5, 'effect': 1.0, 'sites': 1, 'site_shift': 20.0, 'noise': 8.0, 'size': [32, 32, 32],
            'spacing': [1.0, 1.0, 1.0], 'prefix': None, 'site_effect': 1.0, 'site_blur': 0.0, 'grades': 0, 'stage_effect': None,
            'outcome': 'malignant',
        },
        seed=1000921175,
        type={
            'kind': 'Cohort', 'cohort': 'external', 'outcome': 'binary', 'dims': 3, 'channels': 1, 'has_mask': True,
            'detail': 'phantom',
        },
        file=SPEC_PATH,
    ))
    return run_phantom(stage, ctx)


# ---- cohort train = phantom(...)   [stateless, seed 1141493750]
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
        seed=1141493750,
        type={
            'kind': 'Cohort', 'cohort': 'train', 'outcome': 'binary', 'dims': 3, 'channels': 1, 'has_mask': True,
            'detail': 'phantom',
        },
        file=SPEC_PATH,
    ))
    return run_phantom(stage, ctx)


# ---- features clinical = tabular(...)   [stateless, seed 275863747]
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
        seed=275863747,
        type={'kind': 'Features', 'cohort': 'train', 'outcome': 'binary', 'detail': 'tabular'},
        file=SPEC_PATH,
    ))
    return run_tabular(stage, ctx)


# ---- features rad = pyradiomics(...)   [per_case, seed 1684481037]
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
        seed=1684481037,
        type={'kind': 'Features', 'cohort': 'train', 'dims': 3, 'detail': 'pyradiomics'},
        file=SPEC_PATH,
    ))
    # the library object these settings make:
    #   featureextractor.RadiomicsFeatureExtractor({'featureClass': {'firstorder': [], 'glcm': []},
    #        'imageType': {'Original': {}},
    #        'setting': {'additionalInfo': True, 'binWidth': 25.0}})
    return run_pyradiomics(stage, ctx)


# ---- select sig = lasso(...)   [fitted, seed 1585364193]
#   | select sig = lasso(rad, target: train.outcome) { cv: 5, max_features: 8 }
# consumes: input <- rad, target <- train.outcome
# calls run_recipe: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
# fit on outcome inside the training folds of v
def stage_sig(ctx, args):
    stage = ctx.declare(Stage(
        name='sig',
        kind='select',
        op='lasso',
        params={'cv': 5, 'n_alphas': 10, 'scoring': 'neg_log_loss', 'max_features': 8, 'min_features': 1},
        inputs={'input': ['rad', None], 'target': ['train', 'outcome']},
        seed=1585364193,
        type={'kind': 'Features', 'cohort': 'train', 'outcome': 'binary', 'detail': 'lasso selection'},
        fit='outcome',
        fit_within=['v'],
        file=SPEC_PATH,
    ))
    return run_recipe(stage, ctx)


# ---- features signature_and_age = join(...)   [stateless, seed 1860853962]
#   | features signature_and_age = join(sig, clinical)
# consumes: table1 <- sig, table2 <- clinical
# calls run_join: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
def stage_signature_and_age(ctx, args):
    stage = ctx.declare(Stage(
        name='signature_and_age',
        kind='features',
        op='join',
        params={'by': 'case', 'prefix': False},
        inputs={'table1': ['sig', None], 'table2': ['clinical', None]},
        seed=1860853962,
        type={'kind': 'Features', 'cohort': 'train', 'outcome': 'binary', 'detail': 'joined table'},
        fit_within=['v'],
        file=SPEC_PATH,
    ))
    return run_join(stage, ctx)


# ---- model clf = logistic(...)   [fitted, seed 1487669526]
#   | model clf = logistic(signature_and_age, target: train.outcome) { C: 1.0 }
# consumes: input <- signature_and_age, target <- train.outcome
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
        inputs={'input': ['signature_and_age', None], 'target': ['train', 'outcome']},
        seed=1487669526,
        type={'kind': 'Model', 'cohort': 'train', 'outcome': 'binary', 'detail': 'logistic model'},
        fit='outcome',
        fit_within=['v'],
        file=SPEC_PATH,
    ))
    return run_recipe(stage, ctx)


def fold_pipeline_v(fold):
    """What `v` fits in every training fold (and on every training case for its final model); `fold`: what the data decide."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    return Pipeline([
        ('impute', SimpleImputer(strategy='median', keep_empty_features=True)),
        ('signature_and_age', ColumnTransformer([
            ('sig', Pipeline([
                ('sig', make_lasso({'cv': 5, 'n_alphas': 10, 'scoring': 'neg_log_loss', 'max_features': 8, 'min_features': 1},
                                   1585364193, fold['inputs']['sig'])),
            ]).set_output(transform='pandas'), fold['columns']['sig']),
            ('clinical', 'passthrough', fold['columns']['clinical']),
        ], remainder='drop', verbose_feature_names_out=False).set_output(transform='pandas')),
        ('scale', StandardScaler()),
        ('model', LogisticRegression(max_iter=1000, class_weight=None, random_state=1487669526, C=1.0)),
    ]).set_output(transform='pandas')


# ---- validate v = evaluate(...)   [stateless, seed 857654005]
#   | validate v = evaluate(clf) {
#   |   cv: stratified_kfold(5, repeats: 2)
#   |   external: external
#   |   metrics: [auc, roc, sensitivity, specificity, brier, calibration]
#   |   threshold: sensitivity >= 0.9
#   |   bootstrap: 500
#   | }
# consumes: external <- external, model <- clf
# calls run_evaluate: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
# fit on outcome
def stage_v(ctx, args):
    stage = ctx.declare(Stage(
        name='v',
        kind='validate',
        op='evaluate',
        params={
            'cv': {'kind': 'stratified_kfold', 'k': 5, 'repeats': 2, 'groups': None, 'seed': None},
            'metrics': ['auc', 'roc', 'sensitivity', 'specificity', 'brier', 'calibration'], 'horizons': None, 'ibs_points': 50,
            'threshold': {'metric': 'sensitivity', 'op': '>=', 'value': 0.9}, 'threshold_cv': 3, 'bootstrap': 500, 'ci': 0.95,
            'calibration_bins': 10, 'net_benefit_range': [0.01, 0.99, 0.01],
        },
        inputs={'external': ['external', None], 'model': ['clf', None]},
        seed=857654005,
        type={'kind': 'Evaluation', 'cohort': 'train', 'outcome': 'binary', 'detail': 'evaluation'},
        fit='outcome',
        extra={
            'refit': {
                'model': 'clf', 'sources': ['clinical', 'rad'], 'nodes': ['sig', 'signature_and_age', 'clf'],
                'edges': [
                    ['clinical', 'signature_and_age', 'table2'], ['rad', 'sig', 'input'],
                    ['sig', 'signature_and_age', 'table1'], ['signature_and_age', 'clf', 'input'],
                ],
            },
        },
        file=SPEC_PATH,
    ))
    return run_evaluate(stage, ctx, pipeline=fold_pipeline_v)


# The stages in the order `radlang run` executes them.
STAGES = [
    ('external', stage_external),
    ('train', stage_train),
    ('clinical', stage_clinical),
    ('rad', stage_rad),
    ('sig', stage_sig),
    ('signature_and_age', stage_signature_and_age),
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
    args.out = Path(args.out) if args.out else _resolve('runs/combined')
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


SPEC_SHA256 = '3d9e09590ce555a27a174bb4e81ad7e5c9368aa384704a45e32daffd2d73e354'
SPEC_TEXT = (
    "# Radiomics + clinical: a LASSO signature from PyRadiomics features, joined with the patients' age, in one\n"
    '# logistic model. The selection and the join are refit inside every training fold (`radlang plan` shows the\n'
    '# refit graph); the final model is saved, and `radlang predict` applies it to new cases:\n'
    '#   radlang run examples/combined.rad\n'
    '#   radlang predict examples/combined.rad v examples/runs/combined/data/external-*/manifest.csv -o new_predictions.csv\n'
    "# (the spec's `out:` is relative to the spec's folder: examples/runs/combined)\n"
    'study "Radiomics signature plus age" {\n'
    '  seed: 11\n'
    '  out: "runs/combined"\n'
    '}\n'
    '\n'
    'cohort train = phantom(40) { effect: 1.0, size: [32, 32, 32] }\n'
    'cohort external = phantom(24, seed: 5) { effect: 1.0, size: [32, 32, 32], site_shift: 20HU }\n'
    '\n'
    'features rad = pyradiomics(train.image, train.mask) {\n'
    '  bin_width: 25\n'
    '  classes: [firstorder, glcm]\n'
    '}\n'
    'features clinical = tabular(train) { columns: [age] }\n'
    '\n'
    'select sig = lasso(rad, target: train.outcome) { cv: 5, max_features: 8 }\n'
    'features signature_and_age = join(sig, clinical)\n'
    'model clf = logistic(signature_and_age, target: train.outcome) { C: 1.0 }\n'
    '\n'
    'validate v = evaluate(clf) {\n'
    '  cv: stratified_kfold(5, repeats: 2)\n'
    '  external: external\n'
    '  metrics: [auc, roc, sensitivity, specificity, brier, calibration]\n'
    '  threshold: sensitivity >= 0.9\n'
    '  bootstrap: 500\n'
    '}\n'
)


if __name__ == "__main__":
    raise SystemExit(main())
