"""Conformance, steps 2-4, group `tabular`: the tiny fixtures of these operators run in one study, through
`radlang run`'s executor and through the rendered script, and give the same bytes for every output file."""

from __future__ import annotations

import pytest
from conformance_harness import check_member, check_shared, members, run_group

GROUP = "tabular"


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    return run_group(tmp_path_factory.mktemp(GROUP), GROUP)


@pytest.mark.parametrize("name", members(GROUP))
def test_run_equals_render(result, name):
    check_member(result, name)


def test_shared_files_equal(result):
    check_shared(result)
