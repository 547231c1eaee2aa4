"""Data mistakes `radlang check` finds without running (`radlang check --no-data` turns this off).

It reads only what is cheap, for a spec read from a file (paths are relative to it):

- a manifest's (or a `table`'s) header and rows, with the csv module: every column the cohort names exists
  (E601, a table's E640, with a "did you mean"), and every image and mask path it lists exists (E601; no image
  is opened);
- a PyRadiomics parameter file (`params: from_params("file.yaml")`): it exists and is YAML (E602), and it
  passes PyRadiomics' schema (E653, radlang/checks/pyradiomics_params.py).

Then each stage that declares `check_facts` looks at its cohorts' facts (the ids and files a manifest or table lists):

- `dann`: its cohort's site column lists at least two sites (E297), unless the held-out site's images join training;
- `join`: a table of an attribute cohort has a row for every case (or patient) of the join's rows (E361 when none
  of its ids is one, E660 when some lack one);
- `patches`: every case's image channels and mask lie on one grid (E620), from the image headers only (SimpleITK's
  ReadImageInformation: no voxel is read), for a cohort with more than one file per case.

Only stages that will run are checked (a sink is reachable from them: the compiler passes those). The codes
are those `radlang run` gives the same problems. What it learns about each cohort's size (cases,
cases per outcome class, whether a patient has several cases, its case and patient ids, its files) it returns for
radlang/checks/folds.py, and a
survival outcome's last follow-up time for radlang/checks/horizons.py; a phantom's size is known from its settings.
"""

from __future__ import annotations

import os
from pathlib import Path

from radlang.diagnostics import Diagnostic, did_you_mean

SHOWN = 5                                        # missing files listed by name, per column


def spec_folder(stage) -> Path | None:
    """The folder of the spec file a stage was written in; None for a spec that is not a file."""
    f = stage.span.file if stage.span else None
    if not f or f.startswith("<") or not os.path.isfile(f):
        return None
    return Path(f).resolve().parent


def listed(path: str, listings: dict) -> bool:
    """Whether a file or folder exists, from one listing per folder (a manifest's images mostly share a few
    folders: a listing each is far cheaper than a stat per row). String operations, not os.path: this runs
    once per row of every manifest."""
    folder, _, name = path.rstrip(os.sep).rpartition(os.sep)
    names = listings.get(folder)
    if names is None:
        try:
            names = listings[folder] = set(os.listdir(folder or os.sep))
        except (OSError, ValueError):
            names = listings[folder] = set()
    return name in names or (name in ("", os.curdir, os.pardir) and os.path.exists(path))


def span_of(bound, setting, index=None):
    if bound is None:
        return None
    if index is not None and (setting, index) in bound.spans:
        return bound.spans[(setting, index)]
    return bound.spans.get((setting,)) or bound.key_spans.get(setting)


def check_data(stages: dict, bounds: dict, diags: list) -> dict[str, dict]:
    """`stages`: name -> Stage (checked), `bounds`: name -> Bound (for spans). Each stage's operator says what it reads
    (its `check_data`: the generic readers below, with its own columns and codes). Appends diagnostics; returns cohort
    name -> {"cases": n, "classes": {label: n} or None, "grouped": bool} for the cohorts whose size it knows."""
    from radlang import registry

    facts: dict[str, dict] = {}
    listings: dict[str, set] = {}                  # folder -> the names in it, read once per check
    for name, st in stages.items():
        hook = registry.get(st.op).check_data
        if hook is not None:
            got = hook(st, bounds.get(name), spec_folder(st), diags, listings)
            if got is not None:
                facts[name] = got
    if not any(d.is_error for d in diags):         # what stages find in their cohorts' facts, once those are sound
        for name, st in stages.items():
            hook = registry.get(st.op).check_facts
            if hook is not None:
                hook(st, bounds.get(name), stages, facts, diags)
    return facts


def check_csv(st, bound, folder: Path, diags: list, listings: dict, *, what: str, code: str, wanted: list, path_cols: list,
              missing: tuple) -> dict | None:
    """A cohort CSV (a manifest, a table): its header has every column the stage names, every file of its path columns
    exists. wanted: (role, column, setting, index in a list setting); path_cols: (column, setting, index); code: what
    `radlang run` reports the same problems as; missing: outcome values read as missing (lower case)."""
    import csv

    p = st.params
    path = Path(p["path"]) if os.path.isabs(p["path"]) else folder / p["path"]
    mpath = os.path.abspath(path)
    where = span_of(bound, "path") or st.span
    try:
        with open(mpath, encoding="utf-8", newline="") as fh:
            rows = [r for r in csv.reader(fh) if any(c.strip() for c in r)]
    except FileNotFoundError:
        near = [f.name for f in Path(mpath).parent.glob("*.csv")] if Path(mpath).parent.is_dir() else []
        diags.append(Diagnostic(code, f"`{st.name}`: file `{mpath}`: {what} not found", where,
                                hint=did_you_mean(Path(mpath).name, near) or "the path is relative to the spec file"))
        return None
    except (OSError, ValueError, csv.Error) as e:        # ValueError: bad encoding, or a NUL byte in the path
        diags.append(Diagnostic(code, f"`{st.name}`: file `{mpath}`: cannot read the {what}: {e}", where))
        return None
    if not rows:
        diags.append(Diagnostic(code, f"`{st.name}`: file `{mpath}`: cannot read the {what}: it is empty", where))
        return None
    header = [c.strip() for c in rows[0]]
    body = rows[1:]
    col = {c: i for i, c in reversed(list(enumerate(header)))}
    absent_cols = [(role, c, setting, idx) for role, c, setting, idx in wanted if c not in col]
    for role, c, setting, idx in absent_cols:
        diags.append(Diagnostic(code, f"`{st.name}`: column `{c}`, file `{mpath}`: the {what} has no column `{c}` (the {role} column)",
                                span_of(bound, setting, idx) or st.span,
                                hint=did_you_mean(c, header) or f"its columns are: {', '.join(header)}"))
    if absent_cols:
        return None

    def cell(row, c):
        i = col[c]
        return row[i].strip() if i < len(row) else ""

    base = os.path.dirname(mpath)
    ids = [cell(r, p["id"]) or f"row {i + 2}" for i, r in enumerate(body)]
    prefix = base.rstrip(os.sep) + os.sep
    posix = os.name == "posix"
    paths = {}
    for c, setting, idx in path_cols:
        absent = []
        i = col[c]
        paths[c] = found = []
        for cid, r in zip(ids, body):
            v = r[i].strip() if i < len(r) else ""
            if not v:
                absent.append((cid, "no path given"))
                found.append(None)
            else:
                full = v if (v.startswith(os.sep) if posix else os.path.isabs(v)) else prefix + v
                found.append(full)
                # `path#selector`: a DICOM series of a folder, or an RTSTRUCT ROI / SEG segment (radlang/ops/dicom.py)
                if not listed(full, listings) and not ("#" in full and listed(full.rsplit("#", 1)[0], listings)):
                    absent.append((cid, os.path.normpath(os.path.join(base, v))))
        if absent:
            shown = ", ".join(f"case `{cid}` (`{f}`)" for cid, f in absent[:SHOWN])
            more = f" and {len(absent) - SHOWN} more" if len(absent) > SHOWN else ""
            diags.append(Diagnostic("E601", f"`{st.name}`: column `{c}`: {len(absent)} of {len(body)} file(s) not found: {shown}{more}",
                                    span_of(bound, setting, idx) or st.span,
                                    hint=f"paths in the manifest are relative to it ({base})"))
    out = p.get("outcome")
    classes = None
    if out and out["kind"] in ("binary", "multiclass"):
        classes = {}
        for r in body:
            v = cell(r, out["column"])
            if v.lower() not in missing:
                classes[v] = classes.get(v, 0) + 1
    patients = [cell(r, p["patient"]) for r in body] if p.get("patient") else None
    fact = {"cases": len(body), "classes": classes, "grouped": patients is not None and len(set(patients)) < len(patients),
            "ids": ids, "patients": patients or ids, "paths": paths, "file": mpath}
    if p.get("site"):
        fact["sites"] = sorted({cell(r, p["site"]) for r in body})
    if out and out["kind"] == "survival":
        times = []
        for cid, r in zip(ids, body):
            try:
                times.append((float(cell(r, out["time"])), cid))
            except ValueError:
                continue                      # a bad time is the run's E640/E601, with the case named
        if times:
            last = max(t for t, _ in times)
            fact["follow_up"] = {"column": out["time"], "last": last, "cases": [c for t, c in times if t == last], "file": mpath}
    return fact


def check_params_file(st, bound, folder: Path, diags: list):
    """A PyRadiomics params file (`params: from_params(...)`): readable, YAML, within PyRadiomics' schema."""
    from radlang.checks.pyradiomics_params import params_problems

    rel = st.params["params"]
    path = rel if os.path.isabs(rel) else str(folder / rel)
    where = span_of(bound, "params") or st.span
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError as e:
        near = [f.name for f in Path(path).parent.iterdir() if f.suffix.lower() in (".yaml", ".yml", ".json")] \
            if Path(path).parent.is_dir() else []
        diags.append(Diagnostic("E602", f"`{st.name}`: cannot read the PyRadiomics params file `{path}`: {e.strerror}", where,
                                hint=did_you_mean(Path(path).name, near) or "the path is relative to the spec file"))
        return
    except (OSError, ValueError) as e:                    # ValueError: not UTF-8, or a NUL byte in the path
        diags.append(Diagnostic("E602", f"`{st.name}`: cannot read the PyRadiomics params file `{path}`: "
                                f"{getattr(e, 'strerror', None) or e}", where, hint="a params file is UTF-8 YAML or JSON text"))
        return
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        diags.append(Diagnostic("E602", f"`{st.name}`: the PyRadiomics params file `{path}` is not valid YAML: {e}", where))
        return
    for msg in params_problems(data):
        diags.append(Diagnostic("E653", f"`{st.name}`: the PyRadiomics params file `{path}`: {msg}", where,
                                hint="PyRadiomics checks the file against its schema (radiomics/schemas/paramSchema.yaml) and would refuse it"))
