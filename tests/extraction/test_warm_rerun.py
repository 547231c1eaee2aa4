"""The warm path: the persistent (path, stat) -> sha256 index lets a re-run skip reading unchanged files, while the
cache stays content-addressed (a changed file is always hashed again and detected)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys

import pandas as pd
import pytest
import SimpleITK as sitk
from _extraction_util import run_spec, write_spec

import radlang.backends.cache as cache_mod
from radlang import registry
from radlang.backends.cache import HASH_INDEX, Cache
from radlang.backends.executors.local import LocalPool


def _sha(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def _no_reading(*_a, **_k):
    raise AssertionError("file content was read although its stat signature is unchanged")


def test_index_persists_and_detects_changes(tmp_path, monkeypatch):
    monkeypatch.setattr(Cache, "settle_ns", 0)
    f = tmp_path / "a.bin"
    f.write_bytes(b"x" * 1000)
    first = Cache(tmp_path / "cache")
    assert first.file_hash(f) == _sha(f)
    first.flush()
    assert str(f.resolve()) in (tmp_path / "cache" / HASH_INDEX).read_text()
    # a new process (a new Cache) trusts the index: the content is not read again
    with monkeypatch.context() as m:
        m.setattr(cache_mod, "file_hash", _no_reading)
        assert Cache(tmp_path / "cache").file_hash(f) == _sha(f)
    # same size, new content, mtime moved: hashed again, the new digest is the content's
    st = f.stat()
    f.write_bytes(b"y" * 1000)
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    again = Cache(tmp_path / "cache")
    assert again.file_hash(f) == _sha(f) == hashlib.sha256(b"y" * 1000).hexdigest()
    # replaced by another file with the same size and mtime (new inode): hashed again too
    g = tmp_path / "b.bin"
    g.write_bytes(b"z" * 1000)
    os.utime(g, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns))
    again.flush()
    os.replace(g, f)
    assert Cache(tmp_path / "cache").file_hash(f) == hashlib.sha256(b"z" * 1000).hexdigest()


def test_young_files_are_not_indexed(tmp_path):
    """A file changed less than settle_ns ago may change again within the same timestamp tick: never indexed."""
    f = tmp_path / "young.bin"
    f.write_bytes(b"abc")
    c = Cache(tmp_path / "cache")
    assert c.file_hash(f) == hashlib.sha256(b"abc").hexdigest()
    c.flush()
    assert not (tmp_path / "cache" / HASH_INDEX).exists()


def test_folder_signature_sees_a_file_changed_inside(tmp_path, monkeypatch):
    """A DICOM series is a folder: editing one file in place leaves the folder's own mtime alone."""
    monkeypatch.setattr(Cache, "settle_ns", 0)
    d = tmp_path / "series"
    d.mkdir()
    for i in range(3):
        (d / f"{i}.dcm").write_bytes(bytes([i]) * 64)
    c = Cache(tmp_path / "cache")
    before = c.file_hash(d)
    assert before == cache_mod.file_hash(d)
    c.flush()
    st = (d / "1.dcm").stat()
    (d / "1.dcm").write_bytes(b"\xff" * 64)
    os.utime(d / "1.dcm", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    after = Cache(tmp_path / "cache").file_hash(d)
    assert after != before and after == cache_mod.file_hash(d)


def test_warm_run_reads_no_image_and_a_changed_image_is_still_detected(tmp_path, tiny_cohort, monkeypatch):
    monkeypatch.setattr(Cache, "settle_ns", 0)
    src = tmp_path / "data"
    shutil.copytree(tiny_cohort.parent, src)
    spec = write_spec(tmp_path, """
        cohort c = manifest("data/manifest.csv") { mask: mask }
        features f = pyradiomics(c.image, c.mask) { classes: [shape(VoxelVolume)] }
    """)
    first = run_spec(spec)
    assert (first.cache.hits, first.cache.misses) == (0, 8)
    csv = (tmp_path / "out" / "features" / "f.csv").read_bytes()
    # warm: every digest comes from the index (no file is read), every case from the cache, same bytes
    with monkeypatch.context() as m:
        m.setattr(cache_mod, "file_hash", _no_reading)
        m.setattr(cache_mod, "_FILE_HASHES", {})
        warm = run_spec(spec)
    assert (warm.cache.hits, warm.cache.misses) == (8, 0)
    assert warm.results["f"].equals(first.results["f"])
    assert (tmp_path / "out" / "features" / "f.csv").read_bytes() == csv
    assert warm.inputs == first.inputs                       # the run manifest records the same content hashes
    # one mask grows by a voxel layer, keeping the file's mtime: the new inode/ctime/size still show the change
    m_ = pd.read_csv(src / "manifest.csv")
    p = src / m_["mask"][2]
    st = p.stat()
    mask = sitk.ReadImage(str(p))
    grown = sitk.BinaryDilate(mask, [1, 1, 1], sitk.sitkBall, 0, 1)
    tmp = p.with_name("tmp_" + p.name)
    sitk.WriteImage(grown, str(tmp), True)
    os.replace(tmp, p)
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    third = run_spec(spec)
    assert (third.cache.hits, third.cache.misses) == (7, 1)
    case = str(m_["case_id"][2])
    assert third.results["f"].loc[case, "original_shape_VoxelVolume"] > first.results["f"].loc[case, "original_shape_VoxelVolume"]
    assert third.inputs[str(p)] == _sha(p)


@pytest.mark.parametrize("cases", [0, 3])
def test_feature_table_assembly_is_float64_in_case_order(tmp_path, tiny_cohort, cases):
    """The numpy-built feature block: float64 columns, manifest order, case_id index (empty cohort included)."""
    from radlang.ops.features import _extract

    spec = write_spec(tmp_path, f"""
        cohort c = manifest("{tiny_cohort}") {{ mask: mask }}
        features f = pyradiomics(c.image, c.mask) {{ classes: [shape(VoxelVolume, Sphericity)] }}
    """)
    ctx = run_spec(spec)
    cohort = ctx.results["c"].iloc[:cases]
    cohort.attrs = ctx.results["c"].attrs
    stage = next(s for s in ctx.study.stages if s.name == "f")
    feats, _, _, _ = _extract(ctx, stage, cohort)
    assert list(feats.index) == [str(c) for c in cohort["case_id"]]
    assert feats.index.name == "case_id"
    if cases:
        assert sorted(feats.columns) == ["original_shape_Sphericity", "original_shape_VoxelVolume"]
        assert (feats.dtypes == "float64").all()
        assert feats.equals(ctx.results["f"].iloc[:cases])
    else:
        assert feats.shape == (0, 0)


# what a re-run must not import when the results that need it are cached
IMAGE_STACK = ("SimpleITK", "radiomics", "torch", "monai")
MODEL_STACK = ("sklearn", "scipy", "statsmodels", "matplotlib", "dcurves", "pingouin")


def _run_and_list_imports(spec, out, workers=2) -> set[str]:
    """`radlang run` in a fresh process (its pool workers too) under -X importtime: the top-level modules imported."""
    p = subprocess.run([sys.executable, "-X", "importtime", "-m", "radlang", "run", str(spec), "--out", str(out),
                        "--workers", str(workers), "--quiet"], capture_output=True, text=True, cwd=spec.parent, check=False)
    assert p.returncode == 0, p.stderr[-3000:]
    mods = {m.group(1).split(".")[0] for m in re.finditer(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)", p.stderr, re.MULTILINE)}
    assert mods, "no -X importtime output"
    return mods


def test_warm_reruns_import_only_what_the_changed_stages_need(tmp_path, tiny_cohort):
    """Everything cached: no image library, no scikit-learn, no matplotlib (the plots are cached with the metrics).
    Only the downstream selection changed: the evaluation really runs again (new metrics), the image stack stays out."""
    study = """
        cohort c = manifest("{m}") {{ mask: mask, outcome: malignant as binary }}
        features f = pyradiomics(c.image, c.mask) {{ classes: [firstorder] }}
        select keep = variance(f) {{ min: {v} }}
        model clf = logistic(keep, target: c.outcome)
        validate v = evaluate(clf) {{ cv: stratified_kfold(2), bootstrap: 20 }}
    """
    spec = write_spec(tmp_path, study.format(m=tiny_cohort, v=0.0))
    out = tmp_path / "out"
    run_spec(spec, out)
    files = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file() and ".cache" not in p.parts}
    assert any(p.suffix == ".png" for p in files)

    mods = _run_and_list_imports(spec, out)
    assert "radlang" in mods and not set(IMAGE_STACK + MODEL_STACK) & mods, sorted(set(IMAGE_STACK + MODEL_STACK) & mods)
    again = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file() and ".cache" not in p.parts}
    assert {k: v for k, v in again.items() if k.name != "run.json"} == {k: v for k, v in files.items() if k.name != "run.json"}
    assert json.loads((out / "run.json").read_text())["cache"] == {"hits": 9, "misses": 0}

    before = (out / "metrics" / "v.json").read_bytes()
    write_spec(tmp_path, study.format(m=tiny_cohort, v=1000.0))
    mods = _run_and_list_imports(spec, out)
    # the refit evaluation saves its final model with skops, whose table of trusted types imports every scikit-learn
    # package, torch's array-API adapter among them, which radlang keeps from importing torch (fold_engine.skops_io)
    assert not set(IMAGE_STACK) & mods, sorted(set(IMAGE_STACK) & mods)
    assert "sklearn" in mods and "skops" in mods
    assert (out / "metrics" / "v.json").read_bytes() != before
    assert json.loads((out / "run.json").read_text())["cache"] == {"hits": 8, "misses": 1}


def test_cold_run_starts_the_workers_with_the_run_and_a_warm_run_does_not(tmp_path, tiny_cohort, monkeypatch):
    """A cold run (empty cache) starts the pool at once with what its per-case stages import; a warm run starts none."""
    calls = []
    monkeypatch.setattr(LocalPool, "start", lambda self, imports=(): calls.append(tuple(imports)))
    shutil.copytree(tiny_cohort.parent, tmp_path / "data")
    spec = write_spec(tmp_path, """
        cohort c = manifest("data/manifest.csv") { mask: mask }
        features f = pyradiomics(c.image, c.mask) { classes: [shape(VoxelVolume)] }
    """)
    run_spec(spec, workers=2)
    assert calls == [tuple(sorted(registry.get("pyradiomics").worker_imports))]
    warm = run_spec(spec, workers=2)
    assert (warm.cache.hits, warm.cache.misses) == (8, 0)
    assert len(calls) == 1
