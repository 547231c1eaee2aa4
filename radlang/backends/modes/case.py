"""Mode `case` (per-case feature extraction) and mode `segment` (lazy: segmentation runs inside the case task).

One task per case, in the process pool (ctx.executor.map), largest cases first: load the image(s) and the
mask, segment, check the mask, perturb (robustness analyses), extract. Only feature rows travel between
processes. Each case's result is cached under a content key (operator, version, settings, segmentation
chain, perturbation, and the content hashes of the case's files), written atomically as soon as the case
finishes, so a re-run recomputes only what changed and a killed run resumes.

Bad data: before any extraction, every case's files and mask are checked (missing/unreadable file, geometry
mismatch, empty mask, absent label); the default fails listing all problems at once. With the study setting
`on_error: "skip"` the bad cases are excluded and listed in the outputs.

Key API (other stages call it for external cohorts and robustness perturbations):

    extract_for_cohort(ctx, feature_stage, cohort_df, perturb=None) -> pandas.DataFrame
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass

from radlang import registry
from radlang.backends.cache import atomic_write_text, key, output_sha256
from radlang.backends.executor import RunError, mode
from radlang.diagnostics import Diagnostic


@dataclass(frozen=True)
class LazyMask:
    """The runtime value of a segment stage: segmentation happens per case, inside the feature task."""

    stage: str
    op: str


@mode("segment")
def run_segment(stage, ctx):
    ctx.keys[stage.name] = ctx.stage_key(stage)
    return LazyMask(stage.name, stage.op)


# ---------------------------------------------------------------------------------------------------
# the chain a feature stage runs per case, as plain data
# ---------------------------------------------------------------------------------------------------

def _stage_by_name(ctx, name):
    for s in ctx.study.stages:
        if s.name == name:
            return s
    raise KeyError(name)


def feature_plan(ctx, stage) -> dict:
    """What one case task needs besides its files: the image column(s), the segmentation step, the
    PyRadiomics config and the content that keys the cache."""
    from radlang.ops.features import params_schema_problems, pyradiomics_config

    p = dict(stage.extra.get("merge", {}).get("params") or stage.params)
    text = None
    if p.get("params"):
        from radlang.backends.modes.cohort import spec_dir

        path = p["params"] if os.path.isabs(p["params"]) else str(spec_dir(stage, ctx) / p["params"])
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
        except OSError as e:
            raise RunError([Diagnostic("E602", f"`{stage.name}`: cannot read the PyRadiomics params file `{path}`: {e.strerror or e}",
                                       stage.span, hint="the path is relative to the spec file")]) from None
        ctx.hash_input(path)
    try:
        config = pyradiomics_config(p, text)
    except Exception as e:  # noqa: BLE001 -- any reader failure is bad data, reported as a diagnostic
        raise RunError([Diagnostic("E602", f"`{stage.name}`: the PyRadiomics params file is not valid YAML: {e}", stage.span)]) from None
    if text is not None:
        import yaml

        bad = params_schema_problems(yaml.safe_load(text))
        if bad:
            raise RunError([Diagnostic("E653", f"`{stage.name}`: the PyRadiomics params file `{path}`: {m}", stage.span,
                                       hint="PyRadiomics checks the file against its schema (radiomics/schemas/paramSchema.yaml)")
                            for m in bad])
    img_ref, mask_ref = stage.inputs["image"], stage.inputs["mask"]
    seg_mode = None if mask_ref.attr == "mask" else registry.get(_stage_by_name(ctx, mask_ref.stage).op).mode
    if mask_ref.attr == "mask":
        seg = {"op": None, "source": "mask", "label": int(config["setting"].get("label", 1))}
    elif seg_mode != "segment":
        # a stage that has already written one mask file per case (e.g. a network's `predict_mask`):
        # extract on those files, keyed by their content like any cohort mask
        seg = {"op": None, "source": "mask", "label": int(config["setting"].get("label", 1)), "table": mask_ref.stage}
    else:
        seg_stage = _stage_by_name(ctx, mask_ref.stage)
        src = next(iter(seg_stage.inputs.values()))
        seg = {"op": seg_stage.op, "params": seg_stage.params, "version": registry.get(seg_stage.op).version,
               "source": src.attr or "mask"}
        config["setting"]["label"] = 1
    try:
        from importlib.metadata import version

        prv = version("pyradiomics")
    except Exception:  # noqa: BLE001
        prv = "?"
    op = registry.get(stage.op)
    return {"config": config, "seg": seg, "image_attr": img_ref.attr or "image", "cohort": img_ref.stage,
            "key": [stage.op, op.version, prv, config, seg]}


def image_columns(df, attr="image") -> list[str]:
    if attr == "image" and "image" in df.columns:
        return ["image"]
    cols = [c for c in df.columns if c.startswith("image.")]
    if attr.startswith("image.") and attr in df.columns:
        return [attr]
    return cols


# ---------------------------------------------------------------------------------------------------
# worker-side functions (module level: picklable for the process pool)
# ---------------------------------------------------------------------------------------------------

def _problem(task, message, file, column, code):
    return {"case": task["case"], "file": file, "column": column, "message": message, "code": code}


def precheck_task(task) -> list[dict]:
    """Cheap checks before extraction: every file readable; for a cohort mask, geometry, emptiness and label."""
    import SimpleITK as sitk

    from radlang.ops.cohorts import image_payload_problem, read_image_header
    from radlang.ops.segment import check_mask, load_image

    problems = []
    headers = {}
    for col, path in task["images"]:
        if not path or not os.path.exists(path):
            problems.append(_problem(task, "file not found", path, col, "E601"))
            continue
        try:
            header = read_image_header(path)
        except Exception as e:  # noqa: BLE001 -- any reader failure is bad data, reported as a diagnostic
            problems.append(_problem(task, f"unreadable or corrupt image ({_short(e)})", path, col, "E602"))
            continue
        bad = image_payload_problem(path)
        if bad:
            problems.append({"case": task["case"], "column": col, **bad})
        else:
            headers[col] = header
    seg = task["seg"]
    if seg["source"] == "mask":
        path, col = task["mask"], task["mask_column"]
        if not path or not os.path.exists(path):
            problems.append(_problem(task, "file not found", path, col, "E601"))
            return problems
        bad = image_payload_problem(path)
        if bad:
            problems.append({"case": task["case"], "column": col, **bad})
            return problems
        try:
            mask = load_image(path)
        except Exception as e:  # noqa: BLE001 -- any reader failure is bad data, reported as a diagnostic
            problems.append(_problem(task, f"unreadable or corrupt mask ({_short(e)})", path, col, "E602"))
            return problems
        if not headers:
            return problems
        img_col, h = next(iter(headers.items()))
        if len(h["size"]) != mask.GetDimension():
            # the image is what differs from its cohort's masks (a 2D slice among 3D volumes, say): name the image
            img_path = dict(task["images"])[img_col]
            dims = " × ".join(str(int(x)) for x in h["size"])
            mdims = " × ".join(str(int(x)) for x in mask.GetSize())
            problems.append(_problem(task, f"the image is {len(h['size'])}D ({dims} voxels) but its mask `{path}` is "
                                           f"{mask.GetDimension()}D ({mdims}): an image and its mask need the same dimensions",
                                     img_path, img_col, "E604"))
            return problems
        ref = sitk.Image([int(x) for x in h["size"]], sitk.sitkUInt8) if len(h["size"]) in (2, 3) else None
        if ref is None:
            return problems
        ref.SetSpacing(h["spacing"])
        ref.SetOrigin(h["origin"])
        ref.SetDirection(h["direction"])
        if seg["op"] is None:
            label, how, tol = seg["label"], "error", 1e-3
        else:
            label, how, tol = int(seg["params"]["label"]), seg["params"]["on_mismatch"], float(seg["params"]["tolerance"])
        if how == "resample" and ref.GetSize() != mask.GetSize():
            mask = sitk.Resample(mask, ref, sitk.Transform(), sitk.sitkNearestNeighbor, 0, mask.GetPixelID())
        _, msgs = check_mask(ref, mask, label, how, tol)
        for code, m in msgs:
            problems.append(_problem(task, m, path, col, code))
    return problems


def _short(e) -> str:
    s = str(e).strip()
    for line in s.splitlines():
        line = line.strip()
        if line and not line.startswith("File") and "sitk::ERROR" not in line[:12]:
            return line[:200]
    return (s.splitlines()[0][:200] if s else type(e).__name__)


def run_case_task(task) -> dict:
    """One case: load, segment, check, perturb, extract. Returns {case, features, diagnostics, problems}."""
    import math

    from radlang.ops.features import extract_features, perturb_case
    from radlang.ops.segment import check_mask, load_image, segment_mask, segment_otsu, segment_threshold

    out = {"case": task["case"], "features": {}, "diagnostics": {}, "problems": []}
    try:
        images = [(col, load_image(path)) for col, path in task["images"]]
    except Exception as e:  # noqa: BLE001 -- any reader failure is bad data, reported as a diagnostic
        out["problems"].append(_problem(task, f"unreadable or corrupt image ({_short(e)})", task["images"][0][1], task["images"][0][0], "E602"))
        return out
    seg = task["seg"]
    first = images[0][1]
    try:
        mask = load_image(task["mask"]) if seg["source"] == "mask" else None
    except Exception as e:  # noqa: BLE001 -- any reader failure is bad data, reported as a diagnostic
        out["problems"].append(_problem(task, f"unreadable or corrupt mask ({_short(e)})", task["mask"], task["mask_column"], "E602"))
        return out
    if seg["op"] is None:
        roi, msgs = check_mask(first, mask, seg["label"], "error")
        if msgs:
            roi = None
    elif seg["op"] == "mask":
        roi, msgs = segment_mask(first, mask, seg["params"])
    elif seg["op"] == "otsu":
        roi, msgs = segment_otsu(first, seg["params"])
    elif seg["op"] == "threshold":
        roi, msgs = segment_threshold(first, seg["params"])
    else:
        raise ValueError(f"no per-case segmentation for the operator `{seg['op']}`")   # a segment operator not wired here: a bug
    if roi is None:
        f, c = (task["mask"], task["mask_column"]) if seg["source"] == "mask" else (task["images"][0][1], task["images"][0][0])
        for code, m in msgs:
            out["problems"].append(_problem(task, m, f, c, code))
        return out
    multi = len(images) > 1
    for col, img in images:
        try:
            img_p, roi_p = perturb_case(img, roi, task.get("perturb"), task["case"])
            feats, diags = extract_features(img_p, roi_p, task["config"])
        except Exception as e:  # noqa: BLE001 -- any reader failure is bad data, reported as a diagnostic
            out["problems"].append(_problem(task, f"PyRadiomics failed: {_short(e)}", task["images"][0][1], col, "E607"))
            return out
        prefix = f"{col}_" if multi else ""
        out["features"].update({prefix + k: v for k, v in feats.items()})
        out["diagnostics"].update({prefix + k: v for k, v in diags.items()})
        bad = [k for k, v in feats.items() if not math.isfinite(v)]
        if bad:
            shown = ", ".join(bad[:6]) + (f" and {len(bad) - 6} more" if len(bad) > 6 else "")
            out["problems"].append(_problem(task, f"PyRadiomics returned NaN/inf for {shown}", task["images"][0][1], col, "E608"))
    return out


# ---------------------------------------------------------------------------------------------------
# the parent side
# ---------------------------------------------------------------------------------------------------

def _tasks(ctx, stage, plan, cohort_df, perturb):
    cols = image_columns(cohort_df, plan["image_attr"])
    names = cohort_df.attrs.get("radlang", {}).get("columns", {})
    table = plan["seg"].get("table")
    masks = {}
    if table is not None:
        mdf = ctx.results[table]
        masks = {str(c): m for c, m in zip(mdf["case_id"], mdf["mask"])}
    tasks = []
    for row in cohort_df.to_dict("records"):
        images = [(col, row[col]) for col in cols]
        if table is not None:
            mask, mask_col = masks.get(str(row["case_id"])), f"{table}.mask"
        else:
            mask, mask_col = (row["mask"] if "mask" in cohort_df.columns else None), names.get("mask", "mask")
        t = {"case": str(row["case_id"]), "images": [(names.get(c, c), p) for c, p in images],
             "mask": mask, "mask_column": mask_col,
             "seg": plan["seg"], "config": plan["config"], "perturb": perturb}
        tasks.append(t)
    return tasks


def _weight(task) -> float:
    w = 0
    for _, p in task["images"]:
        try:
            w += os.path.getsize(p) if os.path.isfile(p) else sum(e.stat().st_size for e in os.scandir(p))
        except OSError:
            pass
    return w


def _content_key(ctx, plan, task) -> str | None:
    try:
        hashes = [ctx.hash_input(p) for _, p in task["images"]]
        mh = ctx.hash_input(task["mask"]) if task["seg"]["source"] == "mask" else None
    except OSError:
        return None
    return key("case", plan["key"], task["perturb"], [c for c, _ in task["images"]], hashes, mh)


def _diagnostics(problems, stage):
    from radlang.backends.modes.cohort import problem_diagnostics

    return problem_diagnostics(sorted(problems, key=lambda p: (str(p.get("case")), p.get("code", ""), p["message"])), stage)


def _extract(ctx, stage, cohort_df, perturb=None):
    """-> (features DataFrame, diagnostics DataFrame, excluded [{case, reason}], content key)."""
    import operator

    import numpy as np
    import pandas as pd

    plan = feature_plan(ctx, stage)
    if not image_columns(cohort_df, plan["image_attr"]):
        raise RunError([Diagnostic("E603", f"`{stage.name}`: the cohort table has no image column", stage.span)])
    if plan["seg"]["source"] == "mask" and "mask" not in cohort_df.columns and not plan["seg"].get("table"):
        raise RunError([Diagnostic("E603", f"`{stage.name}`: the cohort table has no mask column", stage.span,
                                   hint="give the cohort a `mask:` column, or segment one (otsu/threshold)")])
    tasks = _tasks(ctx, stage, plan, cohort_df, perturb)
    keys = [_content_key(ctx, plan, t) for t in tasks]
    results: dict[str, dict] = {}
    todo = []
    for t, k in zip(tasks, keys):
        hit = ctx.cache.get(k) if k else None
        if hit is not None:
            results[t["case"]] = hit
        else:
            todo.append((t, k))
    problems: list[dict] = []
    if todo:
        # 1) cheap checks for every case first: all problems at once, before hours of extraction
        checks = dict(ctx.executor.map(precheck_task, [t for t, _ in todo]))
        bad_cases = set()
        for i, probs in checks.items():
            problems.extend(probs)
            if probs:
                bad_cases.add(todo[i][0]["case"])
        if problems and ctx.on_error != "skip":
            raise RunError(_diagnostics(problems, stage))
        run = [(t, k) for t, k in todo if t["case"] not in bad_cases]
        # 2) extraction, largest cases first; each case cached the moment it finishes
        if run:
            with ctx.progress(len(run), stage.name) as prog:
                what = cohort_df.attrs.get("radlang", {}).get("name") or "cohort"
                if perturb:
                    what += f", {perturb['kind']}"
                bar = prog.add_task(f"{stage.name} ({what}): extracting", total=len(run))
                for i, res in ctx.executor.map(run_case_task, [t for t, _ in run], weights=[_weight(t) for t, _ in run]):
                    t, k = run[i]
                    if res["problems"]:
                        problems.extend(res["problems"])
                    else:
                        entry = {"features": res["features"], "diagnostics": res["diagnostics"]}
                        if k:
                            ctx.cache.put(k, entry)
                        results[t["case"]] = entry
                    prog.advance(bar)
        if problems and ctx.on_error != "skip":
            raise RunError(_diagnostics(problems, stage))
    excluded = []
    for p in sorted(problems, key=lambda p: str(p["case"])):
        msg = f"{p.get('column') or ''}: {p['message']}".strip(": ")
        if excluded and excluded[-1]["case"] == p["case"]:
            excluded[-1]["reason"] += "; " + msg
        else:
            excluded.append({"case": p["case"], "reason": msg, "file": p.get("file")})
    order = [t["case"] for t in tasks if t["case"] in results]
    seen: dict[str, None] = {}
    for c in order:
        seen.update(dict.fromkeys(results[c]["features"]))
    cols = list(seen)
    if "merge" in stage.extra:
        from radlang.ops.features import member_columns

        cols = member_columns(cols, stage.params)
    # one float64 block built by numpy (a list of lists through pandas' object path costs ~0.1 s per 24 cases)
    nan = float("nan")
    pick = operator.itemgetter(*cols) if len(cols) > 1 else None

    def row(f):
        if pick is not None:
            try:
                return pick(f)          # every column present (the usual case): one C-level lookup per row
            except KeyError:
                pass
        return [f.get(n, nan) for n in cols]

    block = np.array([row(results[c]["features"]) for c in order], dtype="float64")
    feats = pd.DataFrame(block.reshape(len(order), len(cols)), index=pd.Index(order, name="case_id"), columns=cols, copy=False)
    dseen: dict[str, None] = {}
    for c in order:
        dseen.update(dict.fromkeys(results[c]["diagnostics"]))
    dcols = list(dseen)
    diag = pd.DataFrame([[results[c]["diagnostics"].get(n, "") for n in dcols] for c in order],
                        index=pd.Index(order, name="case_id"), columns=dcols)
    content = key("features", registry.get(stage.op).version, stage.name if "merge" in stage.extra else None, stage.params, list(keys))
    return feats, diag, excluded, content


def extract_for_cohort(ctx, feature_stage, cohort_df, perturb=None):
    """Run the per-case chain that produces `feature_stage` (image loading, segmentation, perturbation,
    extraction) on `cohort_df` (any cohort table with the same columns), using the cache. `perturb` is None or
    {"kind": "erode"|"dilate", "radius": int} or {"kind": "noise", "sigma": float, "seed": int}.
    Returns the features table (indexed by case_id, PyRadiomics column names); excluded cases (on_error: skip)
    are listed in ctx.excluded."""
    stage = feature_stage if not isinstance(feature_stage, str) else _stage_by_name(ctx, feature_stage)
    feats, _, excluded, _ = _extract(ctx, stage, cohort_df, perturb)
    for e in excluded:
        ctx.excluded.append({"stage": stage.name, **e})
    feats.attrs["radlang"] = {"name": stage.name, "cohort": cohort_df.attrs.get("radlang", {}).get("name"),
                              "excluded": [e["case"] for e in excluded]}
    return feats


@mode("case")
def run_features(stage, ctx):
    from radlang.ops.features import features_csv

    cohort_df = ctx.results[stage.inputs["image"].stage]
    feats, diag, excluded, content = _extract(ctx, stage, cohort_df)
    for e in excluded:
        ctx.excluded.append({"stage": stage.name, **e})
    out = ctx.out / "features"
    # the stamp holds the content key of the files below and their SHA-256: files with that content are not rewritten;
    # a file changed since (edited by hand) or missing is written again
    stamp = out / f".{stage.name}.key"
    names = [f"{stage.name}.csv", f"{stage.name}.diagnostics.csv"]
    try:
        written = json.loads(stamp.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        written = None
    now = {n: output_sha256(out / n) for n in names}
    if not isinstance(written, dict) or written.get("key") != content or written.get("sha256") != now:
        edited = [n for n in names if isinstance(written, dict) and written.get("key") == content and now[n] is not None
                  and now[n] != written.get("sha256", {}).get(n)]
        if edited:
            ctx.warn("W672", f"`{stage.name}`: {', '.join(f'features/{n}' for n in edited)} changed since radlang wrote it; "
                             "rewritten from the run's results")
        if stamp.exists():
            stamp.unlink()
        texts = {names[0]: features_csv(feats), names[1]: diag.to_csv(lineterminator="\n")}
        for n, text in texts.items():
            atomic_write_text(out / n, text)
        atomic_write_text(stamp, json.dumps({"key": content, "sha256": {n: hashlib.sha256(t.encode()).hexdigest()
                                                                        for n, t in texts.items()}}, sort_keys=True) + "\n")
    exc_path = out / f"{stage.name}.excluded.csv"
    if excluded:
        import pandas as pd

        atomic_write_text(exc_path, pd.DataFrame(excluded).to_csv(index=False, lineterminator="\n"))
    elif exc_path.exists():
        exc_path.unlink()
    feats.attrs["radlang"] = {"name": stage.name, "cohort": cohort_df.attrs.get("radlang", {}).get("name"),
                              "excluded": [e["case"] for e in excluded]}
    ctx.keys[stage.name] = content
    return feats
