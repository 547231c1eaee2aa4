"""Fixtures for the extraction tests: tiny real NIfTI cohorts written into tmp folders."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_cohort(tmp_path_factory):
    """8 phantom cases of 20x20x16 voxels written as NIfTI + manifest.csv (binary outcome `malignant`)."""
    from radlang.ops.cohorts import make_phantom

    d = tmp_path_factory.mktemp("tiny")
    params = {"cases": 8, "effect": 1.0, "sites": 2, "site_shift": 0.0, "noise": 8.0, "size": [20, 20, 16], "spacing": [1.0, 1.0, 1.5]}
    make_phantom(params, 11, str(d), "c")
    return d / "manifest.csv"
