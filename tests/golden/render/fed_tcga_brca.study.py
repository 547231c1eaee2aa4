#!/usr/bin/env python3
# A study rendered by radlang for review (UTF-8; no spec text is on these two lines).
#
# Study: Fed-TCGA-BRCA: federated Cox model over six regions
#
# The stages follow in the order `radlang run` executes them: each one declares its settings as literals
# and calls a function of radlang_runtime.py (beside this file; its sha256 is checked below before it is
# imported). Together they write the same files as `radlang run`, byte for byte.
#
#   python study.py --out DIR      (writes the same files as `radlang run SPEC --out DIR`)
#   python study.py --help         (flags to point the cohorts at other manifests)
#
# spec sha256 0bba04f67ac519b6842d7dabd7f0dffce360a46f87407613ed3f33518324bd75; radlang 0.1.0; rendered 2000-01-01T00:00:00Z; python <version>.
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
    run_record_sources,
    run_tabular,
    run_tcga_brca,
    write_artefact_manifest,
    write_stage_table,
)

TITLE = 'Fed-TCGA-BRCA: federated Cox model over six regions'
SPEC_FILE = str((HERE / '<repo>/examples/fed_tcga_brca.rad').resolve())
SPEC_PATH = str((HERE / '<repo>/examples/fed_tcga_brca.rad').resolve())
SPEC_DIR = str(Path(SPEC_PATH).parent)
STUDY_SEED = 1
STUDY_CONFIG = {'seed': 1, 'out': 'runs/fed_tcga_brca', 'workers': 0, 'on_error': 'fail'}
RENDERED_BY = 'radlang 0.1.0 render'


# =====================================================================================
# The study, stage by stage, in the order `radlang run` executes it.
# =====================================================================================


# ---- cohort test = fed_tcga_brca(...)   [stateless, seed 360712708]
#   | cohort test = fed_tcga_brca("../../shared/data/fed_tcga_brca") { split: test }
# consumes: nothing
# calls run_tcga_brca: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
def stage_test(ctx, args):
    stage = ctx.declare(Stage(
        name='test',
        kind='cohort',
        op='fed_tcga_brca',
        params={'path': '../../shared/data/fed_tcga_brca', 'split': 'test'},
        seed=360712708,
        type={'kind': 'Cohort', 'cohort': 'test', 'outcome': 'survival', 'channels': 0, 'has_site': True, 'detail': 'Fed-TCGA-BRCA'},
        file=SPEC_PATH,
    ))
    return run_tcga_brca(stage, ctx)


# ---- cohort train = fed_tcga_brca(...)   [stateless, seed 1852590946]
#   | cohort train = fed_tcga_brca("../../shared/data/fed_tcga_brca") { split: train }
# consumes: nothing
# calls run_tcga_brca: sha256 <16>; with the <n> blocks it reaches: sha256 <16>
def stage_train(ctx, args):
    stage = ctx.declare(Stage(
        name='train',
        kind='cohort',
        op='fed_tcga_brca',
        params={'path': '../../shared/data/fed_tcga_brca', 'split': 'train'},
        seed=1852590946,
        type={'kind': 'Cohort', 'cohort': 'train', 'outcome': 'survival', 'channels': 0, 'has_site': True, 'detail': 'Fed-TCGA-BRCA'},
        file=SPEC_PATH,
    ))
    return run_tcga_brca(stage, ctx)


# ---- features clin = tabular(...)   [stateless, seed 1370277143]
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
        seed=1370277143,
        type={'kind': 'Features', 'cohort': 'train', 'outcome': 'survival', 'detail': 'tabular'},
        file=SPEC_PATH,
    ))
    return run_tabular(stage, ctx)


# ---- federate fed = fedavg(...)   [fitted, seed 1584561333]
#   | federate fed = fedavg(clin, target: train.outcome) {
#   |   model: cox
#   |   strategy: fedadam
#   |   server_lr: 0.03
#   |   rounds: 30
#   |   local_epochs: 1
#   |   batch: 16
#   |   lr: 0.01
#   |   seeds: [1, 2, 3, 4, 5]
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
            'by': 'site', 'model': 'cox', 'strategy': 'fedadam', 'rounds': 30, 'local_epochs': 1, 'batch': 16, 'lr': 0.01,
            'mu': None, 'server_lr': 0.03, 'beta_1': None, 'beta_2': None, 'tau': None, 'fraction': 1.0, 'min_clients': None,
            'seeds': [1, 2, 3, 4, 5], 'standardize': 'federated', 'references': True, 'clients': None, 'tests': None,
        },
        inputs={'input': ['clin', None], 'target': ['train', 'outcome'], 'test': ['test', None]},
        seed=1584561333,
        type={
            'kind': 'TrainedModel', 'cohort': 'train', 'outcome': 'survival', 'has_site': True,
            'detail': 'federated cox (fedadam)',
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
    args.out = Path(args.out) if args.out else _resolve('runs/fed_tcga_brca')
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


SPEC_SHA256 = '0bba04f67ac519b6842d7dabd7f0dffce360a46f87407613ed3f33518324bd75'
SPEC_TEXT = (
    '# Fed-TCGA-BRCA (FLamby): a linear Cox model trained across 6 regions without pooling patients.\n'
    '# Needs the shared reference data beside the project (../shared/data/fed_tcga_brca; it is not shipped with radlang):\n'
    '#   radlang run examples/fed_tcga_brca.rad\n'
    '# The run also trains the centralised (pooled) and local-only reference models, over 5 seeds, and scores every\n'
    "# model by the C-index on each region's test patients and on all of them (FLamby's static split).\n"
    'study "Fed-TCGA-BRCA: federated Cox model over six regions" {\n'
    '  seed: 1\n'
    '  out: "runs/fed_tcga_brca"\n'
    '}\n'
    '\n'
    'cohort train = fed_tcga_brca("../../shared/data/fed_tcga_brca") { split: train }\n'
    'cohort test = fed_tcga_brca("../../shared/data/fed_tcga_brca") { split: test }\n'
    '\n'
    'features clin = tabular(train)\n'
    '\n'
    'federate fed = fedavg(clin, target: train.outcome) {\n'
    '  model: cox\n'
    '  strategy: fedadam\n'
    '  server_lr: 0.03\n'
    '  rounds: 30\n'
    '  local_epochs: 1\n'
    '  batch: 16\n'
    '  lr: 0.01\n'
    '  seeds: [1, 2, 3, 4, 5]\n'
    '  test: test\n'
    '}\n'
)


if __name__ == "__main__":
    raise SystemExit(main())
