#!/usr/bin/env python3
# A study rendered by radlang for review (UTF-8; no spec text is on these two lines).
#
# Study: MR preprocessing
#
# The stages follow in the order `radlang run` executes them: each one declares its settings as literals
# and calls a function of radlang_runtime.py (beside this file; its sha256 is checked below before it is
# imported). Together they write the same files as `radlang run`, byte for byte.
#
#   python study.py --out DIR      (writes the same files as `radlang run SPEC --out DIR`)
#   python study.py --help         (flags to point the cohorts at other manifests)
#
# spec sha256 06621d2da5f30d0988860db92ccbd53bb2644ab1a01814bea9b6cefba427be0d; radlang 0.1.0; rendered 2000-01-01T00:00:00Z; python <version>.
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
    run_phantom,
    run_preprocess,
    run_pyradiomics,
    run_recipe,
    run_record_sources,
    write_artefact_manifest,
    write_stage_table,
)

TITLE = 'MR preprocessing'
SPEC_FILE = str((HERE / '<repo>/examples/mr_preprocessing.rad').resolve())
SPEC_PATH = str((HERE / '<repo>/examples/mr_preprocessing.rad').resolve())
SPEC_DIR = str(Path(SPEC_PATH).parent)
STUDY_SEED = 11
STUDY_CONFIG = {'seed': 11, 'out': 'runs/mr_preprocessing', 'workers': 0, 'on_error': 'fail'}
RENDERED_BY = 'radlang 0.1.0 render'


# =====================================================================================
# The study, stage by stage, in the order `radlang run` executes it.
# =====================================================================================


# ---- cohort external = phantom(...)   [stateless, seed 1000921175]
#   | cohort external = phantom(16, seed: 5) { effect: 1.5, size: [24, 24, 24], site_shift: 1000HU }
# consumes: nothing
# calls run_phantom: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
def stage_external(ctx, args):
    stage = ctx.declare(Stage(
        name='external',
        kind='cohort',
        op='phantom',
        params={
            'cases': 16, 'seed': 5, 'effect': 1.5, 'sites': 1, 'site_shift': 1000.0, 'noise': 8.0, 'size': [24, 24, 24],
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
#   | cohort train = phantom(30) { effect: 1.5, size: [24, 24, 24], site_shift: 1000HU }
# consumes: nothing
# calls run_phantom: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
def stage_train(ctx, args):
    stage = ctx.declare(Stage(
        name='train',
        kind='cohort',
        op='phantom',
        params={
            'cases': 30, 'seed': None, 'effect': 1.5, 'sites': 1, 'site_shift': 1000.0, 'noise': 8.0, 'size': [24, 24, 24],
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


# ---- preprocess flat = n4(...)   [per_case, seed 242705246]
#   | preprocess flat = n4(train.image) { shrink: 2, iterations: [20, 20] }
# consumes: image <- train.image
# calls run_preprocess: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
def stage_flat(ctx, args):
    stage = ctx.declare(Stage(
        name='flat',
        kind='preprocess',
        op='n4',
        params={
            'within': 'body', 'shrink': 2, 'iterations': [20, 20], 'convergence': 0.001, 'control_points': 4, 'fwhm': 0.15,
            'bins': 200,
        },
        inputs={'image': ['train', 'image']},
        seed=242705246,
        type={
            'kind': 'Cohort', 'cohort': 'train', 'outcome': 'binary', 'dims': 3, 'channels': 1, 'has_mask': True,
            'detail': 'n4 of train.image',
        },
        file=SPEC_PATH,
    ))
    return run_preprocess(stage, ctx)


# ---- preprocess iso = resample(...)   [per_case, seed 815696058]
#   | preprocess iso = resample(flat.image, [2mm, 2mm, 2mm]) { interpolator: bspline }
# consumes: image <- flat.image
# calls run_preprocess: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
def stage_iso(ctx, args):
    stage = ctx.declare(Stage(
        name='iso',
        kind='preprocess',
        op='resample',
        params={'spacing': [2.0, 2.0, 2.0], 'interpolator': 'bspline', 'fill': 0.0},
        inputs={'image': ['flat', 'image']},
        seed=815696058,
        type={
            'kind': 'Cohort', 'cohort': 'train', 'outcome': 'binary', 'dims': 3, 'channels': 1, 'has_mask': True,
            'detail': 'resample of flat.image',
        },
        file=SPEC_PATH,
    ))
    return run_preprocess(stage, ctx)


# ---- preprocess std = nyul(...)   [per_case, seed 1964845470]
#   | preprocess std = nyul(iso.image) { within: body }
# Nyúl is fit on data: the cross-validation refits it in each training fold (landmarks from the fold's training
# images alone, features extracted per fold); the final model's landmarks, learned on all of `train`, standardise
# the external cohort.
# consumes: image <- iso.image
# calls run_preprocess: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
# fit on data inside the training folds of ext
def stage_std(ctx, args):
    stage = ctx.declare(Stage(
        name='std',
        kind='preprocess',
        op='nyul',
        params={
            'within': 'body', 'label': 1, 'landmarks': [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0],
            'cutoff': [1.0, 99.0], 'scale': [1.0, 100.0],
        },
        inputs={'image': ['iso', 'image']},
        seed=1964845470,
        type={
            'kind': 'Cohort', 'cohort': 'train', 'outcome': 'binary', 'dims': 3, 'channels': 1, 'has_mask': True,
            'detail': 'nyul of iso.image',
        },
        fit='data',
        fit_within=['ext'],
        file=SPEC_PATH,
    ))
    return run_preprocess(stage, ctx)


# ---- features rad_std = pyradiomics(...)   [per_case, seed 1468875782]
#   | features rad_std = pyradiomics(std.image, std.mask) { bin_width: 2, classes: [firstorder, glcm] }
# consumes: image <- std.image, mask <- std.mask
# calls run_pyradiomics: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
def stage_rad_std(ctx, args):
    stage = ctx.declare(Stage(
        name='rad_std',
        kind='features',
        op='pyradiomics',
        params={
            'params': None, 'bin_width': 2.0, 'bin_count': None, 'resample': None, 'interpolator': None, 'pad_distance': None,
            'normalize': None, 'normalize_scale': None, 'remove_outliers': None, 'resegment': None, 'resegment_mode': None,
            'resegment_shape': None, 'force2d': None, 'force2d_dimension': None, 'label': None, 'distances': None,
            'voxel_array_shift': None, 'symmetrical_glcm': None, 'weighting_norm': None, 'gldm_a': None,
            'min_roi_dimensions': None, 'min_roi_size': None, 'pre_crop': None, 'correct_mask': None,
            'geometry_tolerance': None, 'filters': None,
            'classes': [{'name': 'firstorder', 'features': []}, {'name': 'glcm', 'features': []}],
        },
        inputs={'image': ['std', 'image'], 'mask': ['std', 'mask']},
        seed=1468875782,
        type={'kind': 'Features', 'cohort': 'train', 'dims': 3, 'detail': 'pyradiomics'},
        file=SPEC_PATH,
    ))
    # the library object these settings make:
    #   featureextractor.RadiomicsFeatureExtractor({'featureClass': {'firstorder': [], 'glcm': []},
    #        'imageType': {'Original': {}},
    #        'setting': {'additionalInfo': True, 'binWidth': 2.0}})
    return run_pyradiomics(stage, ctx)


# ---- model clf_std = logistic(...)   [fitted, seed 1965430272]
#   | model clf_std = logistic(rad_std, target: train.outcome) { C: 0.1 }
# consumes: input <- rad_std, target <- train.outcome
# calls run_recipe: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
# fit on outcome inside the training folds of ext
def stage_clf_std(ctx, args):
    stage = ctx.declare(Stage(
        name='clf_std',
        kind='model',
        op='logistic',
        params={
            'impute': 'median', 'scale': 'standard', 'search': None, 'class_weight': None, 'C': 0.1, 'penalty': 'l2',
            'l1_ratio': None, 'max_iter': 1000,
        },
        inputs={'input': ['rad_std', None], 'target': ['train', 'outcome']},
        seed=1965430272,
        type={'kind': 'Model', 'cohort': 'train', 'outcome': 'binary', 'detail': 'logistic model'},
        fit='outcome',
        fit_within=['ext'],
        file=SPEC_PATH,
    ))
    return run_recipe(stage, ctx)


def fold_pipeline_ext(fold):
    """What `ext` fits in every training fold (and on every training case for its final model); `fold`: what the data decide."""
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    return Pipeline([
        ('impute', SimpleImputer(strategy='median', keep_empty_features=True)),
        ('scale', StandardScaler()),
        ('model', LogisticRegression(max_iter=1000, class_weight=None, random_state=1965430272, C=0.1)),
    ]).set_output(transform='pandas')


# ---- validate ext = evaluate(...)   [stateless, seed 1798404759]
#   | validate ext = evaluate(clf_std) { cv: stratified_kfold(3), external: external }
# consumes: external <- external, model <- clf_std
# calls run_evaluate: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
# fit on outcome
def stage_ext(ctx, args):
    stage = ctx.declare(Stage(
        name='ext',
        kind='validate',
        op='evaluate',
        params={
            'cv': {'kind': 'stratified_kfold', 'k': 3, 'repeats': 1, 'groups': None, 'seed': None}, 'metrics': None,
            'horizons': None, 'ibs_points': 50, 'threshold': None, 'threshold_cv': 3, 'bootstrap': 1000, 'ci': 0.95,
            'calibration_bins': 10, 'net_benefit_range': [0.01, 0.99, 0.01],
        },
        inputs={'external': ['external', None], 'model': ['clf_std', None]},
        seed=1798404759,
        type={'kind': 'Evaluation', 'cohort': 'train', 'outcome': 'binary', 'detail': 'evaluation'},
        fit='outcome',
        extra={
            'refit': {'model': 'clf_std', 'sources': ['rad_std'], 'nodes': ['clf_std'], 'edges': [['rad_std', 'clf_std', 'input']]},
            'image_fits': ['std'],
        },
        file=SPEC_PATH,
    ))
    return run_evaluate(stage, ctx, pipeline=fold_pipeline_ext)


# ---- preprocess z = zscore(...)   [per_case, seed 1995620429]
#   | preprocess z = zscore(iso.image) { within: body }
# z-score per case (mean and sd within the body): fitted nowhere, so cross-validation is honest.
# consumes: image <- iso.image
# calls run_preprocess: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
def stage_z(ctx, args):
    stage = ctx.declare(Stage(
        name='z',
        kind='preprocess',
        op='zscore',
        params={'within': 'body', 'label': 1},
        inputs={'image': ['iso', 'image']},
        seed=1995620429,
        type={
            'kind': 'Cohort', 'cohort': 'train', 'outcome': 'binary', 'dims': 3, 'channels': 1, 'has_mask': True,
            'detail': 'zscore of iso.image',
        },
        file=SPEC_PATH,
    ))
    return run_preprocess(stage, ctx)


# ---- features rad_z = pyradiomics(...)   [per_case, seed 2128170472]
#   | features rad_z = pyradiomics(z.image, z.mask) { bin_width: 0.05, classes: [firstorder, glcm] }
# consumes: image <- z.image, mask <- z.mask
# calls run_pyradiomics: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
def stage_rad_z(ctx, args):
    stage = ctx.declare(Stage(
        name='rad_z',
        kind='features',
        op='pyradiomics',
        params={
            'params': None, 'bin_width': 0.05, 'bin_count': None, 'resample': None, 'interpolator': None, 'pad_distance': None,
            'normalize': None, 'normalize_scale': None, 'remove_outliers': None, 'resegment': None, 'resegment_mode': None,
            'resegment_shape': None, 'force2d': None, 'force2d_dimension': None, 'label': None, 'distances': None,
            'voxel_array_shift': None, 'symmetrical_glcm': None, 'weighting_norm': None, 'gldm_a': None,
            'min_roi_dimensions': None, 'min_roi_size': None, 'pre_crop': None, 'correct_mask': None,
            'geometry_tolerance': None, 'filters': None,
            'classes': [{'name': 'firstorder', 'features': []}, {'name': 'glcm', 'features': []}],
        },
        inputs={'image': ['z', 'image'], 'mask': ['z', 'mask']},
        seed=2128170472,
        type={'kind': 'Features', 'cohort': 'train', 'dims': 3, 'detail': 'pyradiomics'},
        file=SPEC_PATH,
    ))
    # the library object these settings make:
    #   featureextractor.RadiomicsFeatureExtractor({'featureClass': {'firstorder': [], 'glcm': []},
    #        'imageType': {'Original': {}},
    #        'setting': {'additionalInfo': True, 'binWidth': 0.05}})
    return run_pyradiomics(stage, ctx)


# ---- select sig = lasso(...)   [fitted, seed 1585364193]
#   | select sig = lasso(rad_z, target: train.outcome) { cv: 3 }
# consumes: input <- rad_z, target <- train.outcome
# calls run_recipe: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
# fit on outcome inside the training folds of cv
def stage_sig(ctx, args):
    stage = ctx.declare(Stage(
        name='sig',
        kind='select',
        op='lasso',
        params={'cv': 3, 'n_alphas': 10, 'scoring': 'neg_log_loss', 'max_features': None, 'min_features': 1},
        inputs={'input': ['rad_z', None], 'target': ['train', 'outcome']},
        seed=1585364193,
        type={'kind': 'Features', 'cohort': 'train', 'outcome': 'binary', 'detail': 'lasso selection'},
        fit='outcome',
        fit_within=['cv'],
        file=SPEC_PATH,
    ))
    return run_recipe(stage, ctx)


# ---- model clf_z = logistic(...)   [fitted, seed 1506709682]
#   | model clf_z = logistic(sig, target: train.outcome)
# consumes: input <- sig, target <- train.outcome
# calls run_recipe: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
# fit on outcome inside the training folds of cv
def stage_clf_z(ctx, args):
    stage = ctx.declare(Stage(
        name='clf_z',
        kind='model',
        op='logistic',
        params={
            'impute': 'median', 'scale': 'standard', 'search': None, 'class_weight': None, 'C': 1.0, 'penalty': 'l2',
            'l1_ratio': None, 'max_iter': 1000,
        },
        inputs={'input': ['sig', None], 'target': ['train', 'outcome']},
        seed=1506709682,
        type={'kind': 'Model', 'cohort': 'train', 'outcome': 'binary', 'detail': 'logistic model'},
        fit='outcome',
        fit_within=['cv'],
        file=SPEC_PATH,
    ))
    return run_recipe(stage, ctx)


def fold_pipeline_cv(fold):
    """What `cv` fits in every training fold (and on every training case for its final model); `fold`: what the data decide."""
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    return Pipeline([
        ('impute', SimpleImputer(strategy='median', keep_empty_features=True)),
        ('sig', make_lasso({'cv': 3, 'n_alphas': 10, 'scoring': 'neg_log_loss', 'max_features': None, 'min_features': 1}, 1585364193,
                           fold['inputs']['sig'])),
        ('scale', StandardScaler()),
        ('model', LogisticRegression(max_iter=1000, class_weight=None, random_state=1506709682, C=1.0)),
    ]).set_output(transform='pandas')


# ---- validate cv = evaluate(...)   [stateless, seed 1373860147]
#   | validate cv = evaluate(clf_z) { cv: stratified_kfold(3) }
# consumes: model <- clf_z
# calls run_evaluate: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
# fit on outcome
def stage_cv(ctx, args):
    stage = ctx.declare(Stage(
        name='cv',
        kind='validate',
        op='evaluate',
        params={
            'cv': {'kind': 'stratified_kfold', 'k': 3, 'repeats': 1, 'groups': None, 'seed': None}, 'metrics': None,
            'horizons': None, 'ibs_points': 50, 'threshold': None, 'threshold_cv': 3, 'bootstrap': 1000, 'ci': 0.95,
            'calibration_bins': 10, 'net_benefit_range': [0.01, 0.99, 0.01],
        },
        inputs={'model': ['clf_z', None]},
        seed=1373860147,
        type={'kind': 'Evaluation', 'cohort': 'train', 'outcome': 'binary', 'detail': 'evaluation'},
        fit='outcome',
        extra={
            'refit': {
                'model': 'clf_z', 'sources': ['rad_z'], 'nodes': ['sig', 'clf_z'],
                'edges': [['rad_z', 'sig', 'input'], ['sig', 'clf_z', 'input']],
            },
        },
        file=SPEC_PATH,
    ))
    return run_evaluate(stage, ctx, pipeline=fold_pipeline_cv)


# The stages in the order `radlang run` executes them.
STAGES = [
    ('external', stage_external),
    ('train', stage_train),
    ('flat', stage_flat),
    ('iso', stage_iso),
    ('std', stage_std),
    ('rad_std', stage_rad_std),
    ('clf_std', stage_clf_std),
    ('ext', stage_ext),
    ('z', stage_z),
    ('rad_z', stage_rad_z),
    ('sig', stage_sig),
    ('clf_z', stage_clf_z),
    ('cv', stage_cv),
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
    args.out = Path(args.out) if args.out else _resolve('runs/mr_preprocessing')
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


SPEC_SHA256 = '06621d2da5f30d0988860db92ccbd53bb2644ab1a01814bea9b6cefba427be0d'
SPEC_TEXT = (
    '# MR preprocessing as declared stages: N4 bias-field correction, resampling to a stated spacing, then either Nyúl\n'
    '# histogram standardisation (landmarks learned inside each training fold, and on the whole training cohort for the\n'
    '# external one) or a per-case z-score, each feeding PyRadiomics. Every stage writes its images under <out>/images/<stage>/ and caches\n'
    '# them per case. `radlang plan` lists the stages; a second `radlang run` recomputes nothing.\n'
    '#   radlang run examples/mr_preprocessing.rad\n'
    '#\n'
    '# The phantom generator writes CT-like volumes (tissue around 40 HU); `site_shift: 1000HU` lifts them to positive\n'
    '# intensities, as MR magnitudes are, so that N4 (which log-transforms intensities) applies: on the HU values it\n'
    '# would stop with E655. They stand in for MR volumes here; they carry no real bias field.\n'
    'study "MR preprocessing" {\n'
    '  seed: 11\n'
    '  out: "runs/mr_preprocessing"\n'
    '}\n'
    '\n'
    'cohort train = phantom(30) { effect: 1.5, size: [24, 24, 24], site_shift: 1000HU }\n'
    'cohort external = phantom(16, seed: 5) { effect: 1.5, size: [24, 24, 24], site_shift: 1000HU }\n'
    '\n'
    'preprocess flat = n4(train.image) { shrink: 2, iterations: [20, 20] }\n'
    'preprocess iso = resample(flat.image, [2mm, 2mm, 2mm]) { interpolator: bspline }\n'
    '\n'
    "# Nyúl is fit on data: the cross-validation refits it in each training fold (landmarks from the fold's training\n"
    "# images alone, features extracted per fold); the final model's landmarks, learned on all of `train`, standardise\n"
    '# the external cohort.\n'
    'preprocess std = nyul(iso.image) { within: body }\n'
    'features rad_std = pyradiomics(std.image, std.mask) { bin_width: 2, classes: [firstorder, glcm] }\n'
    'model clf_std = logistic(rad_std, target: train.outcome) { C: 0.1 }\n'
    'validate ext = evaluate(clf_std) { cv: stratified_kfold(3), external: external }\n'
    '\n'
    '# z-score per case (mean and sd within the body): fitted nowhere, so cross-validation is honest.\n'
    'preprocess z = zscore(iso.image) { within: body }\n'
    'features rad_z = pyradiomics(z.image, z.mask) { bin_width: 0.05, classes: [firstorder, glcm] }\n'
    'select sig = lasso(rad_z, target: train.outcome) { cv: 3 }\n'
    'model clf_z = logistic(sig, target: train.outcome)\n'
    'validate cv = evaluate(clf_z) { cv: stratified_kfold(3) }\n'
)


if __name__ == "__main__":
    raise SystemExit(main())
