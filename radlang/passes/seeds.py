"""Derive each stage's seed from the study seed and the stage name (so reordering changes nothing)."""

from __future__ import annotations

import hashlib


def stage_seed(study_seed: int, name: str) -> int:
    h = hashlib.sha256(f"{study_seed}:{name}".encode()).digest()
    return int.from_bytes(h[:4], "big") & 0x7FFFFFFF


def seeds(study):
    for s in study.stages:
        s.seed = stage_seed(study.seed, s.name)
    return study
