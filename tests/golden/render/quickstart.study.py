#!/usr/bin/env python3
# A study rendered by radlang for review (UTF-8; no spec text is on these two lines).
#
# Study: Quickstart: phantom lesions, radiomics signature
#
# The stages follow in the order `radlang run` executes them: each one declares its settings as literals
# and calls a function of radlang_runtime.py (beside this file; its sha256 is checked below before it is
# imported). Together they write the same files as `radlang run`, byte for byte.
#
#   python study.py --out DIR      (writes the same files as `radlang run SPEC --out DIR`)
#   python study.py --help         (flags to point the cohorts at other manifests)
#
# spec sha256 4321e14221445ea8db041b2a12a414bbaae945b87eac1a885a731e6025e8cd41; radlang 0.1.0; rendered 2000-01-01T00:00:00Z; python <version>.
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
    make_icc,
    make_lasso,
    run_evaluate,
    run_phantom,
    run_pyradiomics,
    run_recipe,
    run_record_sources,
    run_segmenter,
    write_artefact_manifest,
    write_stage_table,
)

TITLE = 'Quickstart: phantom lesions, radiomics signature'
SPEC_FILE = str((HERE / '<repo>/examples/quickstart.rad').resolve())
SPEC_PATH = str((HERE / '<repo>/examples/quickstart.rad').resolve())
SPEC_DIR = str(Path(SPEC_PATH).parent)
STUDY_SEED = 7
STUDY_CONFIG = {'seed': 7, 'out': 'runs/quickstart', 'workers': 0, 'on_error': 'fail'}
RENDERED_BY = 'radlang 0.1.0 render'


# =====================================================================================
# The study, stage by stage, in the order `radlang run` executes it.
# =====================================================================================


# ---- cohort external = phantom(...)   [stateless, seed 778990549]
#   | cohort external = phantom(24) { effect: 1.5, size: [32, 32, 32], site_shift: 20HU, noise: 10HU }
# consumes: nothing
# calls run_phantom: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
def stage_external(ctx, args):
    stage = ctx.declare(Stage(
        name='external',
        kind='cohort',
        op='phantom',
        params={
            'cases': 24, 'seed': None, 'effect': 1.5, 'sites': 1, 'site_shift': 20.0, 'noise': 10.0, 'size': [32, 32, 32],
            'spacing': [1.0, 1.0, 1.0], 'prefix': None, 'site_effect': 1.0, 'site_blur': 0.0, 'grades': 0, 'stage_effect': None,
            'outcome': 'malignant',
        },
        seed=778990549,
        type={
            'kind': 'Cohort', 'cohort': 'external', 'outcome': 'binary', 'dims': 3, 'channels': 1, 'has_mask': True,
            'detail': 'phantom',
        },
        file=SPEC_PATH,
    ))
    return run_phantom(stage, ctx)


# ---- cohort train = phantom(...)   [stateless, seed 89696490]
#   | cohort train = phantom(40) { effect: 1.5, size: [32, 32, 32] }
# consumes: nothing
# calls run_phantom: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
def stage_train(ctx, args):
    stage = ctx.declare(Stage(
        name='train',
        kind='cohort',
        op='phantom',
        params={
            'cases': 40, 'seed': None, 'effect': 1.5, 'sites': 1, 'site_shift': 0.0, 'noise': 8.0, 'size': [32, 32, 32],
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


# ---- segment roi = mask(...)   [per_case, seed 1147736471]
#   | segment roi = mask(train.mask)
# consumes: mask <- train.mask
# calls run_segmenter: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
def stage_roi(ctx, args):
    stage = ctx.declare(Stage(
        name='roi',
        kind='segment',
        op='mask',
        params={'label': 1, 'on_mismatch': 'error', 'tolerance': 0.001},
        inputs={'mask': ['train', 'mask']},
        seed=1147736471,
        type={'kind': 'Mask', 'cohort': 'train', 'dims': 3, 'channels': 1, 'classes': 2, 'detail': 'mask'},
        file=SPEC_PATH,
    ))
    return run_segmenter(stage, ctx)


# ---- features rad = pyradiomics(...)   [per_case, seed 2131371170]
#   | features rad = pyradiomics(train.image, roi) {
#   |   bin_width: 25
#   |   classes: [firstorder, shape, glcm]
#   | }
# consumes: image <- train.image, mask <- roi
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
            'classes': [{'name': 'firstorder', 'features': []}, {'name': 'shape', 'features': []}, {'name': 'glcm', 'features': []}],
        },
        inputs={'image': ['train', 'image'], 'mask': ['roi', None]},
        seed=2131371170,
        type={'kind': 'Features', 'cohort': 'train', 'dims': 3, 'detail': 'pyradiomics'},
        file=SPEC_PATH,
    ))
    # the library object these settings make:
    #   featureextractor.RadiomicsFeatureExtractor({'featureClass': {'firstorder': [], 'glcm': [], 'shape': []},
    #        'imageType': {'Original': {}},
    #        'setting': {'additionalInfo': True, 'binWidth': 25.0}})
    return run_pyradiomics(stage, ctx)


# ---- select robust = icc(...)   [fitted, seed 1436857276]
#   | select robust = icc(rad) { min: 0.75, form: "ICC(1,1)", perturb: [erode(1), dilate(1)] }
# consumes: input <- rad
# calls run_recipe: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
# fit on data inside the training folds of v
def stage_robust(ctx, args):
    stage = ctx.declare(Stage(
        name='robust',
        kind='select',
        op='icc',
        params={
            'min': 0.75, 'form': 'ICC(1,1)', 'perturb': [{'kind': 'erode', 'radius': 1}, {'kind': 'dilate', 'radius': 1}],
            'engine': 'numpy', 'min_features': 1,
        },
        inputs={'input': ['rad', None]},
        seed=1436857276,
        type={'kind': 'Features', 'cohort': 'train', 'detail': 'icc selection'},
        fit='data',
        fit_within=['v'],
        file=SPEC_PATH,
    ))
    return run_recipe(stage, ctx)


# ---- select sig = lasso(...)   [fitted, seed 2022190564]
#   | select sig = lasso(robust, target: train.outcome) { cv: 5, max_features: 10 }
# consumes: input <- robust, target <- train.outcome
# calls run_recipe: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
# fit on outcome inside the training folds of v
def stage_sig(ctx, args):
    stage = ctx.declare(Stage(
        name='sig',
        kind='select',
        op='lasso',
        params={'cv': 5, 'n_alphas': 10, 'scoring': 'neg_log_loss', 'max_features': 10, 'min_features': 1},
        inputs={'input': ['robust', None], 'target': ['train', 'outcome']},
        seed=2022190564,
        type={'kind': 'Features', 'cohort': 'train', 'outcome': 'binary', 'detail': 'lasso selection'},
        fit='outcome',
        fit_within=['v'],
        file=SPEC_PATH,
    ))
    return run_recipe(stage, ctx)


# ---- model clf = logistic(...)   [fitted, seed 163504722]
#   | model clf = logistic(sig, target: train.outcome) { C: 1.0 }
# consumes: input <- sig, target <- train.outcome
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
        inputs={'input': ['sig', None], 'target': ['train', 'outcome']},
        seed=163504722,
        type={'kind': 'Model', 'cohort': 'train', 'outcome': 'binary', 'detail': 'logistic model'},
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
        ('robust', make_icc({'min': 0.75, 'form': 'ICC(1,1)', 'perturb': [{'kind': 'erode', 'radius': 1}, {'kind': 'dilate',
                            'radius': 1}], 'engine': 'numpy', 'min_features': 1}, 1436857276, fold['inputs']['robust'])),
        ('sig', make_lasso({'cv': 5, 'n_alphas': 10, 'scoring': 'neg_log_loss', 'max_features': 10, 'min_features': 1}, 2022190564,
                           fold['inputs']['sig'])),
        ('scale', StandardScaler()),
        ('model', LogisticRegression(max_iter=1000, class_weight=None, random_state=163504722, C=1.0)),
    ]).set_output(transform='pandas')


# ---- validate v = evaluate(...)   [stateless, seed 1748437080]
#   | validate v = evaluate(clf) {
#   |   cv: stratified_kfold(5, repeats: 3)
#   |   external: external
#   |   metrics: [auc, roc, sensitivity, specificity, brier, calibration, net_benefit]
#   |   threshold: sensitivity >= 0.9
#   |   bootstrap: 1000
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
            'cv': {'kind': 'stratified_kfold', 'k': 5, 'repeats': 3, 'groups': None, 'seed': None},
            'metrics': ['auc', 'roc', 'sensitivity', 'specificity', 'brier', 'calibration', 'net_benefit'], 'horizons': None,
            'ibs_points': 50, 'threshold': {'metric': 'sensitivity', 'op': '>=', 'value': 0.9}, 'threshold_cv': 3,
            'bootstrap': 1000, 'ci': 0.95, 'calibration_bins': 10, 'net_benefit_range': [0.01, 0.99, 0.01],
        },
        inputs={'external': ['external', None], 'model': ['clf', None]},
        seed=1748437080,
        type={'kind': 'Evaluation', 'cohort': 'train', 'outcome': 'binary', 'detail': 'evaluation'},
        fit='outcome',
        extra={
            'refit': {
                'model': 'clf', 'sources': ['rad'], 'nodes': ['robust', 'sig', 'clf'],
                'edges': [['rad', 'robust', 'input'], ['robust', 'sig', 'input'], ['sig', 'clf', 'input']],
            },
        },
        file=SPEC_PATH,
    ))
    return run_evaluate(stage, ctx, pipeline=fold_pipeline_v)


# The stages in the order `radlang run` executes them.
STAGES = [
    ('external', stage_external),
    ('train', stage_train),
    ('roi', stage_roi),
    ('rad', stage_rad),
    ('robust', stage_robust),
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
    args.out = Path(args.out) if args.out else _resolve('runs/quickstart')
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


SPEC_SHA256 = '4321e14221445ea8db041b2a12a414bbaae945b87eac1a885a731e6025e8cd41'
SPEC_TEXT = (
    '# Quickstart: a synthetic CT phantom cohort, PyRadiomics features, robust + sparse selection,\n'
    '# logistic regression, repeated cross-validation and an external "scanner" site.\n'
    '# Runs in well under 2 minutes on 2 cores:   radlang run examples/quickstart.rad\n'
    'study "Quickstart: phantom lesions, radiomics signature" {\n'
    '  seed: 7\n'
    '  out: "runs/quickstart"\n'
    '}\n'
    '\n'
    'cohort train = phantom(40) { effect: 1.5, size: [32, 32, 32] }\n'
    'cohort external = phantom(24) { effect: 1.5, size: [32, 32, 32], site_shift: 20HU, noise: 10HU }\n'
    '\n'
    'segment roi = mask(train.mask)\n'
    'features rad = pyradiomics(train.image, roi) {\n'
    '  bin_width: 25\n'
    '  classes: [firstorder, shape, glcm]\n'
    '}\n'
    '\n'
    'select robust = icc(rad) { min: 0.75, form: "ICC(1,1)", perturb: [erode(1), dilate(1)] }\n'
    'select sig = lasso(robust, target: train.outcome) { cv: 5, max_features: 10 }\n'
    'model clf = logistic(sig, target: train.outcome) { C: 1.0 }\n'
    '\n'
    'validate v = evaluate(clf) {\n'
    '  cv: stratified_kfold(5, repeats: 3)\n'
    '  external: external\n'
    '  metrics: [auc, roc, sensitivity, specificity, brier, calibration, net_benefit]\n'
    '  threshold: sensitivity >= 0.9\n'
    '  bootstrap: 1000\n'
    '}\n'
)


if __name__ == "__main__":
    raise SystemExit(main())
