"""Fixtures for the cache and output-folder tests: a tiny real NIfTI cohort."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_manifest(tmp_path_factory) -> Path:
    """8 phantom cases of 16x16x16 voxels as NIfTI + manifest.csv (binary outcome `malignant`)."""
    from radlang.ops.cohorts import make_phantom

    d = tmp_path_factory.mktemp("tiny")
    params = {"cases": 8, "effect": 1.5, "sites": 1, "site_shift": 0.0, "noise": 8.0, "size": [16, 16, 16], "spacing": [1.0, 1.0, 1.0]}
    return Path(make_phantom(params, 5, str(d), "t"))
