"""A damaged cache never serves a wrong byte: each kind of entry with one flipped byte is a W670 warning, a
recompute, byte-identical outputs and the entry rewritten exactly as it was; a damaged file-hash index is W671.
Hand-edited outputs are restored on the next run."""

from __future__ import annotations

import json

import pytest
from _cache_util import STUDY, outputs, run_spec, write_spec

from radlang.backends.cache import HASH_INDEX, Cache


def _documents(root):
    """entry path -> its decoded JSON body (tags left as they are), for every cache entry."""
    docs = {}
    for p in sorted(root.glob("??/*.json")):
        docs[p] = json.loads(p.read_bytes().partition(b"\n")[2])
    return docs


def _find(root, kind):
    """The file of one kind of cache entry (or blob) of the small study, and the byte to flip in it."""
    docs = _documents(root)
    if kind == "case entry":
        p = next(p for p, d in docs.items() if "features" in d)
        text = p.read_bytes()
        return p, text.index(b'"original_firstorder_Mean":') + len(b'"original_firstorder_Mean":') + 1   # a digit
    if kind in ("manifest-table entry", "table blob"):
        p, d = next((p, d) for p, d in docs.items() if "table" in d)
        if kind == "manifest-table entry":
            text = p.read_bytes()
            return p, text.index(b'"stats"') + 12
        return root / "blobs" / d["table"]["sha256"][:2] / d["table"]["sha256"], 100
    if kind in ("evaluation entry", "bytes blob"):
        # the evaluation's entry: (metrics bytes, predictions bytes, metrics, ...), the study's only tuple
        p, d = next((p, d) for p, d in docs.items() if d.get("$") == "tuple" and d["v"][0].get("$") == "bytes")
        if kind == "evaluation entry":
            text = p.read_bytes()
            return p, text.index(b'"estimate":') + len(b'"estimate":') + 2
        h = d["v"][0]["sha256"]                           # the metrics JSON's bytes
        return root / "blobs" / h[:2] / h, 40
    raise KeyError(kind)


def _flip(path, at):
    data = bytearray(path.read_bytes())
    c = data[at]
    data[at] = (c - ord("0") + 1) % 10 + ord("0") if chr(c).isdigit() else c ^ 0x01    # a digit stays a digit: still loads
    path.write_bytes(bytes(data))


KINDS = ["case entry", "manifest-table entry", "table blob", "evaluation entry", "bytes blob"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_flipped_byte_is_a_warning_a_recompute_and_the_same_outputs(tmp_path, tiny_manifest, kind):
    spec = write_spec(tmp_path, STUDY.format(manifest=tiny_manifest))
    out = tmp_path / "out"
    first = run_spec(spec, out)
    assert not [w for w in first.warnings if w.startswith("W67")]
    want = outputs(out)
    path, at = _find(out / ".cache", kind)
    original = path.read_bytes()
    _flip(path, at)
    again = run_spec(spec, out)
    hits = [w for w in again.warnings if w.startswith("W670")]
    assert len(hits) == 1 and "failed verification" in hits[0], again.warnings
    assert (again.cache.misses > 0) == (kind in ("case entry", "evaluation entry", "bytes blob"))  # the table has its own counters
    assert outputs(out) == want
    assert path.read_bytes() == original                 # rewritten, byte for byte
    third = run_spec(spec, out)
    assert not [w for w in third.warnings if w.startswith("W67")] and third.cache.misses == 0


def test_without_verification_the_flipped_number_would_be_served(tmp_path, tiny_manifest, monkeypatch):
    """What the check guards: the same flip, read unverified, changes the features table."""
    spec = write_spec(tmp_path, STUDY.format(manifest=tiny_manifest))
    out = tmp_path / "out"
    first = run_spec(spec, out)
    _flip(*_find(out / ".cache", "case entry"))
    monkeypatch.setattr(Cache, "verify", False)
    again = run_spec(spec, out)
    assert not again.results["f"].equals(first.results["f"]) and not [w for w in again.warnings if w.startswith("W67")]


def test_a_damaged_file_hash_index_is_dropped(tmp_path, tiny_manifest, monkeypatch):
    monkeypatch.setattr(Cache, "settle_ns", 0)
    spec = write_spec(tmp_path, STUDY.format(manifest=tiny_manifest))
    out = tmp_path / "out"
    first = run_spec(spec, out)
    want = outputs(out)
    index = out / ".cache" / HASH_INDEX
    text = index.read_bytes()
    digest = first.inputs[str(tiny_manifest)].encode()
    assert digest in text
    index.write_bytes(text.replace(digest, digest[:-1] + (b"0" if digest[-1:] != b"0" else b"1")))   # a wrong digest
    again = run_spec(spec, out)
    assert [w[:4] for w in again.warnings if w.startswith("W67")] == ["W671"]
    assert again.inputs == first.inputs and again.cache.misses == 0
    assert outputs(out) == want


def test_edited_outputs_are_restored(tmp_path, tiny_manifest):
    spec = write_spec(tmp_path, STUDY.format(manifest=tiny_manifest))
    out = tmp_path / "out"
    run_spec(spec, out)
    want = outputs(out)
    feats = out / "features" / "f.csv"
    lines = feats.read_text().split("\n")
    head, row = lines[0].split(","), lines[1].split(",")
    row[1] = str(float(row[1]) + 1.0)                           # one feature value of one case, edited by hand
    feats.write_text("\n".join([",".join(head), ",".join(row)] + lines[2:]))
    (out / "metrics" / "v.json").write_text((out / "metrics" / "v.json").read_text().replace('"estimate"', '"estimate" ', 1))
    (out / "predictions" / "v.csv").write_text("case_id,probability\n")
    again = run_spec(spec, out)
    notes = [w for w in again.warnings if w.startswith("W67")]
    assert len(notes) == 1 and notes[0].startswith("W672") and "features/f.csv" in notes[0]
    assert again.cache.misses == 0
    assert outputs(out) == want
