"""The run's typed artefacts: every table a stage hands on, and manifest.json at the root of the out folder, in the spirit of dbt's manifest: the study's graph (each stage's
operator, settings, seed, inputs and fit boundaries, each validation's refit graph and the stages in it that use the
held-out cases' features, `transductive`), the input files' hashes, and
every artefact the run wrote, with its stage, its type and its sha256.

A stage whose value is a table (a cohort, a clinical feature table, a join) and that wrote no table of its own
(`features/<stage>.csv`) gets `tables/<stage>.csv` (`write_stage_table`): what every later stage read, with paths
relative to the out folder.

`radlang run` and the rendered script write both with these functions (the renderer inlines them), so the two
outputs are the same bytes. Unlike run.json it holds nothing that changes between two runs of the same spec on
the same data (no timings, no platform, no cache counts), so it is a fingerprint of a study's results.
"""

from __future__ import annotations

from radlang.backends.cache import atomic_write_text

# (folder under the out folder, file name ending, artefact type); the first match wins
ARTEFACT_TYPES = (
    ("features", ".diagnostics.csv", "extraction diagnostics (CSV)"),
    ("features", ".csv", "feature table (CSV)"),
    ("tables", ".csv", "stage table (CSV)"),
    ("recipes", ".json", "fitted-stage recipe (JSON)"),
    ("metrics", ".json", "metrics (JSON)"),
    ("predictions", ".csv", "predictions (CSV)"),
    ("plots", ".png", "plot (PNG)"),
    ("models", ".skops", "fitted model (skops)"),
    ("models", ".model.json", "fitted survival model (JSON)"),
    ("models", ".json", "model card (JSON)"),
    ("models", ".pt", "network weights (torch, weights only)"),
    ("masks", "", "mask"),
    ("explain", "", "explanation"),
    ("data", "", "generated cohort data"),
)


def artefact_type(rel: str) -> str:
    folder = rel.split("/", 1)[0]
    return next((t for f, end, t in ARTEFACT_TYPES if f == folder and rel.endswith(end)), "file")


def artefact_stage(rel: str, stages) -> str | None:
    """The stage that wrote an artefact: the longest stage name that its second path part (`plots/<stage>/...`,
    `features/<stage>.csv`, `data/<stage>...`) starts with."""
    parts = rel.split("/")
    if len(parts) < 2:
        return None
    head = parts[1]
    found = [s for s in stages if head == s or head.startswith((s + ".", s + "_", s + "-"))]
    return max(found, key=len) if found else None


def write_stage_table(ctx, name: str, value) -> None:
    """tables/<name>.csv for a stage whose value is a table and that wrote none under features/. A column of absolute
    paths (images, masks) is written relative to the out folder, so the folder can move."""
    import os
    from pathlib import Path

    import pandas as pd

    out = Path(ctx.out)
    if not isinstance(value, pd.DataFrame) or (out / "features" / f"{name}.csv").exists():
        return
    table = value.copy()
    for col in table.columns:
        vals = table[col].dropna()
        if table[col].dtype == object and len(vals) and all(isinstance(v, str) and os.path.isabs(v) for v in vals):
            table[col] = [os.path.relpath(v, out) if isinstance(v, str) else v for v in table[col]]
    named = table.index.name is not None
    text = table.to_csv(index=named, float_format="%.17g", lineterminator="\n")
    (out / "tables").mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "tables" / f"{name}.csv", text)


def out_relative(path, out) -> str:
    """A path inside the out folder as `<out>/<relative path>` (the same text wherever the folder lies); any other
    path as given."""
    from pathlib import Path

    try:
        return "<out>/" + Path(path).resolve().relative_to(Path(out).resolve()).as_posix()
    except ValueError:
        return str(path)


def input_relative(path, out, spec_file) -> str:
    """An input file as run.json and manifest.json record it: `<out>/...` inside the out folder, otherwise
    `<spec>/...` relative to the spec's folder (`..` where it lies above), so a study folder that moves as a whole
    records the same text."""
    import os
    from pathlib import Path

    inside = out_relative(path, out)
    if inside.startswith("<out>/"):
        return inside
    return "<spec>/" + Path(os.path.relpath(Path(path).resolve(), Path(spec_file).resolve().parent)).as_posix()


SPEC_COPY = "spec.rad"     # `radlang run` keeps the spec's text in the out folder, beside run.json


def spec_from_out(spec_file, out) -> str:
    """The spec as run.json names it: its path relative to the out folder (`../study.rad` for an out folder beside it),
    which holds wherever the study folder moves as a whole; `radlang report` finds the spec text there and checks its
    sha256."""
    import os
    from pathlib import Path

    return Path(os.path.relpath(Path(spec_file).resolve(), Path(out).resolve())).as_posix()


def run_record_sources(ctx, spec_file, spec_text) -> dict:
    """run.json's `spec` (its path from the out folder, its sha256) and `inputs` (each input file's sha256, by
    `input_relative` name), for `radlang run` and the rendered script alike; keeps the spec's text as `spec.rad`."""
    import hashlib
    from pathlib import Path

    atomic_write_text(Path(ctx.out) / SPEC_COPY, spec_text)
    return {"spec": {"file": spec_from_out(spec_file, ctx.out), "sha256": hashlib.sha256(spec_text.encode()).hexdigest()},
            "inputs": dict(sorted((input_relative(k, ctx.out, spec_file), v) for k, v in ctx.inputs.items()))}


def manifest_stages(study) -> list[dict]:
    """manifest.json's `stages`: each stage's operator, settings, seed, inputs, outcome kind and fit boundaries (and a
    validation's refit graph and its transductive stages), in the study's order. `radlang report`'s checklists read
    these records."""
    return [{"name": s.name, "kind": s.kind, "op": s.op, "params": s.params, "seed": s.seed,
             "inputs": {port: str(ref) for port, ref in sorted(s.inputs.items())}, "outcome": getattr(s.type, "outcome", None),
             "fit": s.fit, "fit_within": list(s.fit_within), **({"refit": s.extra["refit"]} if "refit" in s.extra else {}),
             **({"transductive": s.extra["transductive"]} if "transductive" in s.extra else {})}
            for s in study.stages]


def write_artefact_manifest(ctx, spec_sha256: str) -> None:
    import hashlib
    import json
    import os
    from pathlib import Path

    out = Path(ctx.out)
    study = ctx.study
    names = [s.name for s in study.stages]
    artefacts = []
    for root, dirs, files in os.walk(out):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for f in sorted(files):
            rel = (Path(root) / f).relative_to(out).as_posix()
            if f.startswith(".") or rel in ("run.json", "manifest.json", SPEC_COPY, "report.html"):   # records, and `radlang report`'s page
                continue
            data = (Path(root) / f).read_bytes()
            artefacts.append({"path": rel, "stage": artefact_stage(rel, names), "type": artefact_type(rel),
                              "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)})

    manifest = {
        "study": study.title,
        "spec_sha256": spec_sha256,
        "seed": study.seed,
        "stages": manifest_stages(study),
        "inputs": dict(sorted((input_relative(k, out, study.file), v) for k, v in ctx.inputs.items())),
        "artefacts": artefacts,
    }
    atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n")
