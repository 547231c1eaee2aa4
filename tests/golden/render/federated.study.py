#!/usr/bin/env python3
# A study rendered by radlang for review (UTF-8; no spec text is on these two lines).
#
# Study: Federated: FedProx across four sites
#
# The stages follow in the order `radlang run` executes them: each one declares its settings as literals
# and calls a function of radlang_runtime.py (beside this file; its sha256 is checked below before it is
# imported). Together they write the same files as `radlang run`, byte for byte.
#
#   python study.py --out DIR      (writes the same files as `radlang run SPEC --out DIR`)
#   python study.py --help         (flags to point the cohorts at other manifests)
#
# spec sha256 0db4cb0d5d38f7eec7b1c9a1de2480fb56b2c407f65541b83dd18ee8bd8b1d43; radlang 0.1.0; rendered 2000-01-01T00:00:00Z; python <version>.
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
    run_fedavg,
    run_multisite,
    run_record_sources,
    run_tabular,
    write_artefact_manifest,
    write_stage_table,
)

TITLE = 'Federated: FedProx across four sites'
SPEC_FILE = str((HERE / '<repo>/examples/federated.rad').resolve())
SPEC_PATH = str((HERE / '<repo>/examples/federated.rad').resolve())
SPEC_DIR = str(Path(SPEC_PATH).parent)
STUDY_SEED = 11
STUDY_CONFIG = {'seed': 11, 'out': 'runs/federated', 'workers': 0, 'on_error': 'fail'}
RENDERED_BY = 'radlang 0.1.0 render'


# =====================================================================================
# The study, stage by stage, in the order `radlang run` executes it.
# =====================================================================================


# ---- cohort test = multisite(...)   [stateless, seed 2023098015]
#   | cohort test = multisite(800) { sites: 4, features: 8, outcome: binary, site_shift: 0.8, split: test }
# consumes: nothing
# calls run_multisite: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
def stage_test(ctx, args):
    stage = ctx.declare(Stage(
        name='test',
        kind='cohort',
        op='multisite',
        params={
            'cases': 800, 'sites': 4, 'features': 8, 'informative': None, 'outcome': 'binary', 'effect': 1.0, 'site_shift': 0.8,
            'split': 'test', 'test_fraction': 0.25, 'seed': 0,
        },
        seed=2023098015,
        type={'kind': 'Cohort', 'cohort': 'test', 'outcome': 'binary', 'channels': 0, 'has_site': True, 'detail': 'multisite'},
        file=SPEC_PATH,
    ))
    return run_multisite(stage, ctx)


# ---- cohort train = multisite(...)   [stateless, seed 1141493750]
#   | cohort train = multisite(800) { sites: 4, features: 8, outcome: binary, site_shift: 0.8, split: train }
# consumes: nothing
# calls run_multisite: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
def stage_train(ctx, args):
    stage = ctx.declare(Stage(
        name='train',
        kind='cohort',
        op='multisite',
        params={
            'cases': 800, 'sites': 4, 'features': 8, 'informative': None, 'outcome': 'binary', 'effect': 1.0, 'site_shift': 0.8,
            'split': 'train', 'test_fraction': 0.25, 'seed': 0,
        },
        seed=1141493750,
        type={'kind': 'Cohort', 'cohort': 'train', 'outcome': 'binary', 'channels': 0, 'has_site': True, 'detail': 'multisite'},
        file=SPEC_PATH,
    ))
    return run_multisite(stage, ctx)


# ---- features clin = tabular(...)   [stateless, seed 769039846]
#   | features clin = tabular(train)
# consumes: cohort <- train
# calls run_tabular: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
def stage_clin(ctx, args):
    stage = ctx.declare(Stage(
        name='clin',
        kind='features',
        op='tabular',
        params={'columns': None},
        inputs={'cohort': ['train', None]},
        seed=769039846,
        type={'kind': 'Features', 'cohort': 'train', 'outcome': 'binary', 'detail': 'tabular'},
        file=SPEC_PATH,
    ))
    return run_tabular(stage, ctx)


# ---- federate fed = fedavg(...)   [fitted, seed 981062873]
#   | federate fed = fedavg(clin, target: train.outcome) {
#   |   model: logistic
#   |   strategy: fedprox
#   |   mu: 0.01
#   |   rounds: 20
#   |   local_epochs: 1
#   |   batch: 16
#   |   lr: 0.05
#   |   seeds: [1, 2, 3]
#   |   test: test
#   | }
# consumes: input <- clin, target <- train.outcome, test <- test
# calls run_fedavg: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
# fit on outcome
def stage_fed(ctx, args):
    stage = ctx.declare(Stage(
        name='fed',
        kind='federate',
        op='fedavg',
        params={
            'by': 'site', 'model': 'logistic', 'strategy': 'fedprox', 'rounds': 20, 'local_epochs': 1, 'batch': 16, 'lr': 0.05,
            'mu': 0.01, 'server_lr': None, 'beta_1': None, 'beta_2': None, 'tau': None, 'fraction': 1.0, 'min_clients': None,
            'seeds': [1, 2, 3], 'standardize': 'federated', 'references': True, 'clients': None, 'tests': None,
        },
        inputs={'input': ['clin', None], 'target': ['train', 'outcome'], 'test': ['test', None]},
        seed=981062873,
        type={
            'kind': 'TrainedModel', 'cohort': 'train', 'outcome': 'binary', 'has_site': True,
            'detail': 'federated logistic (fedprox)',
        },
        fit='outcome',
        file=SPEC_PATH,
    ))
    return run_fedavg(stage, ctx)


# The stages in the order `radlang run` executes them.
STAGES = [
    ('test', stage_test),
    ('train', stage_train),
    ('clin', stage_clin),
    ('fed', stage_fed),
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
    args.out = Path(args.out) if args.out else _resolve('runs/federated')
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


SPEC_SHA256 = '0db4cb0d5d38f7eec7b1c9a1de2480fb56b2c407f65541b83dd18ee8bd8b1d43'
SPEC_TEXT = (
    '# Federated learning on one machine: a logistic model trained across 4 hospitals that never pool their cases.\n'
    '# The sites differ (feature offsets, unequal sizes); FedProx exchanges weights for 20 rounds. The same run trains\n'
    '# the centralised (pooled) and local-only reference models, so the benefit of federation is visible.\n'
    '#   radlang run examples/federated.rad                                  # in-process simulation (a few seconds)\n'
    '#   radlang render examples/federated.rad --target flower -o fed_app    # the same rounds as a Flower app\n'
    'study "Federated: FedProx across four sites" {\n'
    '  seed: 11\n'
    '  out: "runs/federated"\n'
    '}\n'
    '\n'
    'cohort train = multisite(800) { sites: 4, features: 8, outcome: binary, site_shift: 0.8, split: train }\n'
    'cohort test = multisite(800) { sites: 4, features: 8, outcome: binary, site_shift: 0.8, split: test }\n'
    '\n'
    'features clin = tabular(train)\n'
    '\n'
    'federate fed = fedavg(clin, target: train.outcome) {\n'
    '  model: logistic\n'
    '  strategy: fedprox\n'
    '  mu: 0.01\n'
    '  rounds: 20\n'
    '  local_epochs: 1\n'
    '  batch: 16\n'
    '  lr: 0.05\n'
    '  seeds: [1, 2, 3]\n'
    '  test: test\n'
    '}\n'
)


if __name__ == "__main__":
    raise SystemExit(main())
