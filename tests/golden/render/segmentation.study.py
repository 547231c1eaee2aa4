#!/usr/bin/env python3
# A study rendered by radlang for review (UTF-8; no spec text is on these two lines).
#
# Study: Phantom lesion segmentation
#
# The stages follow in the order `radlang run` executes them: each one declares its settings as literals
# and calls a function of radlang_runtime.py (beside this file; its sha256 is checked below before it is
# imported). Together they write the same files as `radlang run`, byte for byte.
#
#   python study.py --out DIR      (writes the same files as `radlang run SPEC --out DIR`)
#   python study.py --help         (flags to point the cohorts at other manifests)
#
# spec sha256 cc3daf2e1d7755fff0679527b14724e3c769e9a2b560401ff0a85671e8a75477; radlang 0.1.0; rendered 2000-01-01T00:00:00Z; python <version>.
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
    run_network,
    run_phantom,
    run_predict_mask,
    run_record_sources,
    run_segmentation_metrics,
    run_supervised,
    write_artefact_manifest,
    write_stage_table,
)

TITLE = 'Phantom lesion segmentation'
SPEC_FILE = str((HERE / '<repo>/examples/segmentation.rad').resolve())
SPEC_PATH = str((HERE / '<repo>/examples/segmentation.rad').resolve())
SPEC_DIR = str(Path(SPEC_PATH).parent)
STUDY_SEED = 7
STUDY_CONFIG = {'seed': 7, 'out': 'runs/segmentation', 'workers': 0, 'on_error': 'fail'}
RENDERED_BY = 'radlang 0.1.0 render'


# =====================================================================================
# The study, stage by stage, in the order `radlang run` executes it.
# =====================================================================================


# ---- network net = unet(...)   [stateless, seed 1089339193]
#   | network net = unet(dims: 3, in_channels: 1, out_channels: 2) {
#   |   channels: [8, 16, 32, 64]
#   |   strides: [2, 2, 2]
#   |   num_res_units: 1
#   | }
# consumes: nothing
# calls run_network: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
def stage_net(ctx, args):
    stage = ctx.declare(Stage(
        name='net',
        kind='network',
        op='unet',
        params={
            'dims': 3, 'in_channels': 1, 'out_channels': 2, 'channels': [8, 16, 32, 64], 'strides': [2, 2, 2], 'kernel_size': 3,
            'up_kernel_size': 3, 'dropout': 0.0, 'num_res_units': 1, 'norm': 'instance', 'act': 'prelu',
        },
        seed=1089339193,
        type={'kind': 'Network', 'dims': 3, 'channels': 1, 'head': 'segmentation', 'classes': 2, 'divisor': 16, 'detail': '3D UNet'},
        file=SPEC_PATH,
    ))
    # the library object these settings make:
    #   monai.networks.nets.UNet(
    #       spatial_dims=3,
    #       in_channels=1,
    #       out_channels=2,
    #       channels=(8, 16, 32, 64),
    #       strides=(2, 2, 2),
    #       kernel_size=3,
    #       up_kernel_size=3,
    #       num_res_units=1,
    #       act='prelu',
    #       norm='instance',
    #       dropout=0.0,
    #   )
    return run_network(stage, ctx)


# ---- cohort test = phantom(...)   [stateless, seed 1906996082]
#   | cohort test = phantom(8, seed: 99) { size: [32, 32, 32] }      # held-out cases, another generator seed
# held-out cases, another generator seed
# consumes: nothing
# calls run_phantom: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
def stage_test(ctx, args):
    stage = ctx.declare(Stage(
        name='test',
        kind='cohort',
        op='phantom',
        params={
            'cases': 8, 'seed': 99, 'effect': 1.0, 'sites': 1, 'site_shift': 0.0, 'noise': 8.0, 'size': [32, 32, 32],
            'spacing': [1.0, 1.0, 1.0], 'prefix': None, 'site_effect': 1.0, 'site_blur': 0.0, 'grades': 0, 'stage_effect': None,
            'outcome': 'malignant',
        },
        seed=1906996082,
        type={
            'kind': 'Cohort', 'cohort': 'test', 'outcome': 'binary', 'dims': 3, 'channels': 1, 'has_mask': True,
            'detail': 'phantom',
        },
        file=SPEC_PATH,
    ))
    return run_phantom(stage, ctx)


# ---- cohort train = phantom(...)   [stateless, seed 89696490]
#   | cohort train = phantom(24) { size: [32, 32, 32] }
# consumes: nothing
# calls run_phantom: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
def stage_train(ctx, args):
    stage = ctx.declare(Stage(
        name='train',
        kind='cohort',
        op='phantom',
        params={
            'cases': 24, 'seed': None, 'effect': 1.0, 'sites': 1, 'site_shift': 0.0, 'noise': 8.0, 'size': [32, 32, 32],
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


def training_parts_fit():
    """What `fit` trains: its network, loss, optimiser and learning-rate schedule."""
    import monai.losses
    import monai.networks.nets
    import torch

    return {
        'network': lambda: monai.networks.nets.UNet(
            spatial_dims=3,
            in_channels=1,
            out_channels=2,
            channels=(8, 16, 32, 64),
            strides=(2, 2, 2),
            kernel_size=3,
            up_kernel_size=3,
            num_res_units=1,
            act='prelu',
            norm='instance',
            dropout=0.0,
        ),
        'loss': monai.losses.DiceCELoss(to_onehot_y=True, softmax=True),
        'optimizer': lambda parameters: torch.optim.Adam(parameters, lr=0.003, weight_decay=0.0),
        'scheduler': lambda optimizer: torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=30),
    }


# ---- train fit = supervised(...)   [fitted, seed 1886412128]
#   | train fit = supervised(net, train) {
#   |   loss: dice_ce
#   |   optimizer: adam
#   |   lr: 3e-3
#   |   schedule: cosine
#   |   epochs: 30
#   |   batch: 4
#   |   patch: [32, 32, 32]
#   |   sampling: pos_neg(pos: 1, neg: 1)
#   |   validate_every: 5               # keep the checkpoint with the best validation Dice
#   |   validation: 0.2
#   | }
# keep the checkpoint with the best validation Dice
# consumes: cohort <- train, net <- net
# calls run_supervised: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
# fit on outcome
def stage_fit(ctx, args):
    stage = ctx.declare(Stage(
        name='fit',
        kind='train',
        op='supervised',
        params={
            'loss': 'dice_ce', 'optimizer': 'adam', 'lr': 0.003, 'weight_decay': 0.0, 'schedule': 'cosine', 'epochs': 30,
            'batch': 4, 'patch': [32, 32, 32], 'sampling': {'kind': 'pos_neg', 'pos': 1.0, 'neg': 1.0}, 'samples': 1,
            'slices': False, 'normalize': 'zscore', 'validate_every': 5, 'validation': 0.2, 'overlap': 0.25, 'sw_batch': 4,
            'device': 'auto',
        },
        inputs={'cohort': ['train', None], 'net': ['net', None]},
        seed=1886412128,
        type={
            'kind': 'TrainedModel', 'cohort': 'train', 'dims': 3, 'channels': 1, 'head': 'segmentation', 'has_mask': True,
            'classes': 2, 'detail': 'trained 3D UNet',
        },
        fit='outcome',
        file=SPEC_PATH,
    ))
    return run_supervised(stage, ctx, parts=training_parts_fit)


# ---- segment lesion = predict_mask(...)   [stateless, seed 1444105310]
#   | segment lesion = predict_mask(fit, test)           # <out>/masks/lesion/<case>.nii.gz
# <out>/masks/lesion/<case>.nii.gz
# consumes: cohort <- test, model <- fit
# calls run_predict_mask: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
def stage_lesion(ctx, args):
    stage = ctx.declare(Stage(
        name='lesion',
        kind='segment',
        op='predict_mask',
        params={'label': None, 'overlap': None},
        inputs={'cohort': ['test', None], 'model': ['fit', None]},
        seed=1444105310,
        type={'kind': 'Mask', 'cohort': 'test', 'dims': 3, 'channels': 1, 'classes': 2, 'detail': 'lesion (network)'},
        file=SPEC_PATH,
    ))
    return run_predict_mask(stage, ctx)


# ---- validate seg = segmentation_metrics(...)   [stateless, seed 251538939]
#   | validate seg = segmentation_metrics(fit, test)     # Dice + HD95 per case -> <out>/metrics/seg.json
# Dice + HD95 per case -> <out>/metrics/seg.json
# consumes: cohort <- test, model <- fit
# calls run_segmentation_metrics: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
def stage_seg(ctx, args):
    stage = ctx.declare(Stage(
        name='seg',
        kind='validate',
        op='segmentation_metrics',
        params={'overlap': None},
        inputs={'cohort': ['test', None], 'model': ['fit', None]},
        seed=251538939,
        type={'kind': 'Evaluation', 'cohort': 'test', 'dims': 3, 'detail': 'Dice + HD95'},
        file=SPEC_PATH,
    ))
    return run_segmentation_metrics(stage, ctx)


# The stages in the order `radlang run` executes them.
STAGES = [
    ('net', stage_net),
    ('test', stage_test),
    ('train', stage_train),
    ('fit', stage_fit),
    ('lesion', stage_lesion),
    ('seg', stage_seg),
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
    args.out = Path(args.out) if args.out else _resolve('runs/segmentation')
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


SPEC_SHA256 = 'cc3daf2e1d7755fff0679527b14724e3c769e9a2b560401ff0a85671e8a75477'
SPEC_TEXT = (
    '# A small 3D UNet that segments the lesion of synthetic CT-like phantoms, scored on held-out cases.\n'
    '#   radlang check examples/segmentation.rad\n'
    '#   radlang plan  examples/segmentation.rad --memory 8GB   # parameters, receptive field, training memory\n'
    '#   radlang run   examples/segmentation.rad                # writes <out>/metrics/seg.json (Dice + HD95)\n'
    '\n'
    'study "Phantom lesion segmentation" {\n'
    '  seed: 7\n'
    '  out: "runs/segmentation"\n'
    '}\n'
    '\n'
    'cohort train = phantom(24) { size: [32, 32, 32] }\n'
    'cohort test = phantom(8, seed: 99) { size: [32, 32, 32] }      # held-out cases, another generator seed\n'
    '\n'
    'network net = unet(dims: 3, in_channels: 1, out_channels: 2) {\n'
    '  channels: [8, 16, 32, 64]\n'
    '  strides: [2, 2, 2]\n'
    '  num_res_units: 1\n'
    '}\n'
    '\n'
    'train fit = supervised(net, train) {\n'
    '  loss: dice_ce\n'
    '  optimizer: adam\n'
    '  lr: 3e-3\n'
    '  schedule: cosine\n'
    '  epochs: 30\n'
    '  batch: 4\n'
    '  patch: [32, 32, 32]\n'
    '  sampling: pos_neg(pos: 1, neg: 1)\n'
    '  validate_every: 5               # keep the checkpoint with the best validation Dice\n'
    '  validation: 0.2\n'
    '}\n'
    '\n'
    'segment lesion = predict_mask(fit, test)           # <out>/masks/lesion/<case>.nii.gz\n'
    'validate seg = segmentation_metrics(fit, test)     # Dice + HD95 per case -> <out>/metrics/seg.json\n'
)


if __name__ == "__main__":
    raise SystemExit(main())
