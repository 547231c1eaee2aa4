"""Passes: plain functions, Study in, Study out, one module each, run in this order."""

from radlang.passes.fit_boundaries import fit_boundaries
from radlang.passes.merge import merge_identical
from radlang.passes.merge_features import merge_features
from radlang.passes.prune import prune
from radlang.passes.seeds import seeds

PASSES = (prune, merge_identical, merge_features, fit_boundaries, seeds)


def run_passes(study, passes=PASSES):
    for p in passes:
        study = p(study)
    return study
