"""The cache's codec: exact round trips of what the modes store, TypeError for anything else (nothing is ever
pickled), and no cache file can run code when read -- not an old `.pkl` entry, not a blob swapped for a pickle,
not a forged entry whose hashes are consistent."""

from __future__ import annotations

import hashlib
import io
import json
import pickle

import numpy as np
import pandas as pd
import pytest

from radlang.backends.cache import Cache, _document

K = "ab" * 32


class Payload:
    """Unpickling it creates the marker file: the proof that code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _frame():
    df = pd.DataFrame({"case_id": ["a", "b", None], "x": [1.5, np.nan, -0.0], "n": np.array([1, 2, 3], dtype="int32"),
                       "cat": pd.Categorical(["u", "v", "u"]), "s": pd.array(["p", None, "q"], dtype="string"),
                       "t": pd.to_datetime(["2020-01-01", None, "2021-05-06"])},
                      index=pd.Index(["r1", "r2", "r3"], name="row"))
    df.attrs = {"radlang": {"name": "c", "outcome": ("malignant", "binary"), "dims": 3}}
    return df


VALUES = {
    "evaluation": (b"{\"auc\": 0.7}\n", b"case_id,probability\n", {"warnings": ["w"], "auc": {"estimate": 0.7, "ci": [0.5, 0.9]}}),
    "case": {"features": {"original_firstorder_Mean": 61.25, "original_firstorder_Max": float("nan")},
             "diagnostics": {"diagnostics_Versions_PyRadiomics": "v3.0.1"}},
    "training": {"state": bytes(range(256)) * 3, "history": [{"epoch": 1, "loss": 0.5}], "best_epoch": 1},
    "keys": {1: "int key", (2, "b"): "tuple key", "$": "the tag itself", None: [(), [()]]},
    "numpy": {"a": np.arange(12, dtype="float32").reshape(3, 4), "f": np.float64(0.1), "i": np.int64(-3), "b": np.bool_(True),
              "u": np.uint8(200)},
    "floats": [0.1, 1e-300, float("inf"), -float("inf"), 2 ** 70, True, None, "é\ud800"],
}


@pytest.mark.parametrize("name", sorted(VALUES))
def test_round_trip_is_exact(tmp_path, name):
    c = Cache(tmp_path)
    c.put(K, VALUES[name])
    back = Cache(tmp_path).get(K)
    assert repr(back) == repr(VALUES[name])           # repr shows tuple vs list, numpy scalar types, dict order
    assert type(back) is type(VALUES[name])
    if name == "numpy":
        assert back["a"].dtype == np.float32 and np.array_equal(back["a"], VALUES["numpy"]["a"])


def test_dataframes_round_trip_with_dtypes_index_order_and_attrs(tmp_path):
    df = _frame()
    c = Cache(tmp_path)
    c.put(K, {"table": df, "problems": [], "stats": {"/x/a.nii.gz": [1, 2], "/x/b.nii.gz": None}})
    back = Cache(tmp_path).get(K)["table"]
    pd.testing.assert_frame_equal(back, df, check_exact=True)
    assert list(back.columns) == list(df.columns) and list(back.dtypes) == list(df.dtypes)
    assert back.index.name == "row" and back.attrs == df.attrs
    assert type(back.attrs["radlang"]["outcome"]) is tuple


@pytest.mark.parametrize("value", [object(), {1, 2}, bytearray(b"x"), pd.Series([1.0]), np.array([None], dtype=object),
                                   pd.DataFrame({"a": [1, "x"]}), np.longdouble(1), [Payload("x")],
                                   {"ok": 1, "bad": frozenset()}],
                         ids=["object", "set", "bytearray", "series", "object-array", "mixed-column", "longdouble", "custom", "nested"])
def test_what_it_cannot_encode_exactly_is_refused_before_writing(tmp_path, value):
    with pytest.raises(TypeError):
        Cache(tmp_path).put(K, value)
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_an_old_pickle_entry_is_never_opened(tmp_path):
    marker = tmp_path / "marker"
    (tmp_path / K[:2]).mkdir()
    (tmp_path / K[:2] / f"{K}.pkl").write_bytes(pickle.dumps(Payload(marker)))
    c = Cache(tmp_path)
    assert c.get(K) is None and (c.hits, c.misses) == (0, 1)
    assert not marker.exists()


def test_an_entry_or_a_blob_replaced_by_a_pickle_is_a_warning_and_runs_nothing(tmp_path):
    marker = tmp_path / "marker"
    c = Cache(tmp_path)
    c.put(K, (b"metrics", b"predictions", {"auc": 0.5}))
    blobs = [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()]
    assert len(blobs) == 2
    blobs[0].write_bytes(pickle.dumps(Payload(marker)))
    fresh = Cache(tmp_path)
    assert fresh.get(K) is None and fresh.misses == 1
    assert [w[:4] for w in fresh.warnings] == ["W670"] and "blob" in fresh.warnings[0]
    assert not c._path(K).exists()                    # removed: the stage recomputes and writes it again
    c.put(K, ["x"])
    c._path(K).write_bytes(pickle.dumps(Payload(marker)))
    assert Cache(tmp_path).get(K) is None
    assert not marker.exists()


@pytest.mark.parametrize("tag", ["ndarray", "frame", "bytes"])
def test_a_forged_entry_with_consistent_hashes_still_cannot_run_code(tmp_path, tag):
    """Whoever can write the cache folder can recompute every SHA-256; the readers still never unpickle."""
    marker = tmp_path / "marker"
    buf = io.BytesIO()
    np.save(buf, np.array([Payload(marker)], dtype=object), allow_pickle=True)
    for data in (buf.getvalue(), pickle.dumps(Payload(marker))):
        h = hashlib.sha256(data).hexdigest()
        c = Cache(tmp_path)
        c._blob_path(h).parent.mkdir(parents=True, exist_ok=True)
        c._blob_path(h).write_bytes(data)
        c._path(K).parent.mkdir(parents=True, exist_ok=True)
        c._path(K).write_bytes(_document(json.dumps({"$": tag, "sha256": h, "attrs": {}}).encode()))
        value = c.get(K)
        if tag == "bytes":                          # raw bytes are served as bytes, never interpreted
            assert value == data and not c.warnings
        else:
            assert value is None and c.warnings[0].startswith("W670")
        assert not marker.exists()
