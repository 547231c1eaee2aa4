"""Modes for deep-learning stages: `network`, `train_network`, `predict_mask`, `segmentation_metrics`,
`gradcam`, `federated`.

Glue only: reading the cohort table, collecting every data problem before raising one RunError, the
stage cache (a trained network is reused on re-run), a progress bar, and atomic file writes. The numbers
come from the self-contained functions in radlang/ops/networks.py, training.py and explain_cnn.py."""

from __future__ import annotations

import json

from radlang.backends.cache import atomic_write_bytes, atomic_write_text, output_sha256
from radlang.backends.executor import RunError, mode
from radlang.diagnostics import Diagnostic


def _image_columns(df):
    cols = (df.attrs.get("radlang") or {}).get("images")
    if cols:
        return list(cols)
    return ["image"] if "image" in df.columns else [c for c in df.columns if c.startswith("image.")]


def _original(df, col):
    return ((df.attrs.get("radlang") or {}).get("columns") or {}).get(col, col)


def _load_cases(stage, ctx, df, *, labels: bool, classes: int | None = None, outcome: bool = False):
    """Every case of a cohort table as arrays (normalised), or one RunError naming every bad case."""
    import pandas as pd

    from radlang.ops.training import load_case, normalize_image

    norm = _train_params(stage, ctx).get("normalize", "zscore")
    cols = _image_columns(df)
    out, diags = [], []
    for _, row in df.iterrows():
        cid = str(row["case_id"])
        mask = row.get("mask") if (labels or "mask" in df.columns) else None
        mask = mask if isinstance(mask, str) and mask else None
        try:
            case, problems = load_case([row[c] for c in cols], mask)
        except (RuntimeError, OSError) as e:  # unreadable file (SimpleITK raises RuntimeError)
            diags.append(Diagnostic("E602", f"`{stage.name}`: case `{cid}`: cannot read its images: {e}", stage.span))
            continue
        for where, msg in problems:
            col = "mask" if where == "mask" else cols[where]
            path = row["mask"] if where == "mask" else row[col]
            diags.append(Diagnostic("E620", f"`{stage.name}`: case `{cid}`, column `{_original(df, col)}`, file `{path}`: {msg}", stage.span,
                                    hint="co-register the channels (and the mask) onto one grid before training"))
        if problems:
            continue
        if labels and case["label"] is None:
            diags.append(Diagnostic("E621", f"`{stage.name}`: case `{cid}` has no mask", stage.span))
            continue
        if labels and classes is not None:
            mx = int(case["label"].max())
            if case["label"].min() < 0 or mx >= classes:
                diags.append(Diagnostic("E622", f"`{stage.name}`: case `{cid}`, column `{_original(df, 'mask')}`, file `{row['mask']}`: "
                                        f"label {mx} found, but the network predicts classes 0..{classes - 1}", stage.span,
                                        hint=f"set `out_channels: {mx + 1}` on the network"))
                continue
        case["image"] = normalize_image(case["image"], norm)
        case["case"] = cid
        case["patient"] = str(row.get("patient_id", cid))
        case["mask"] = case["label"]
        if outcome:
            v = row.get("outcome")
            if v is None or pd.isna(v):
                diags.append(Diagnostic("E623", f"`{stage.name}`: case `{cid}` has no outcome value", stage.span))
                continue
            case["label"] = int(v)
        out.append(case)
    if diags:
        raise RunError(diags)
    return out


def _train_params(stage, ctx):
    """The training stage's settings (for a train stage itself, or for stages applying its model)."""
    if stage.op in ("supervised", "fedavg"):
        return stage.params
    ref = stage.inputs.get("model")
    if ref is not None and isinstance(ctx.results.get(ref.stage), dict):
        return ctx.results[ref.stage]["params"]
    return {}


@mode("network")
def run_network(stage, ctx):
    return {"arch": stage.op, "params": stage.params}


@mode("train_network")
def run_train(stage, ctx):
    from radlang.ops.training import _divisor, split_validation, train_network

    spec = ctx.results[stage.inputs["net"].stage]
    df = ctx.results[stage.inputs["cohort"].stage]
    task = "segmentation" if spec["arch"] in ("unet", "segresnet", "attention_unet") else "classification"
    params = dict(stage.params)
    params["_divisor"] = _divisor(spec)
    k = ctx.stage_key(stage)
    result = ctx.cache.get(k)
    if result is None:
        if params.get("patch"):
            dims = int(spec["params"]["dims"])
            bad = [v for v in params["patch"][:dims] if v % params["_divisor"]]
            if task == "segmentation" and bad:
                raise RunError([Diagnostic("E624", f"`{stage.name}`: patch {params['patch']} is not divisible by {params['_divisor']}, "
                                           "the network's total downsampling", stage.span, hint=f"use multiples of {params['_divisor']}")])
        cases = _load_cases(stage, ctx, df, labels=task == "segmentation", classes=int(spec["params"]["out_channels"]),
                            outcome=task == "classification")
        held = split_validation([c["patient"] for c in cases], float(params["validation"]), stage.seed) if params["validate_every"] else set()
        for c in cases:
            c["val"] = c["patient"] in held
        with ctx.progress(int(params["epochs"]), stage.name) as bar:
            t = bar.add_task(f"train {stage.name}", total=int(params["epochs"]))

            def progress(epoch, total, rec):
                bits = f"loss {rec['loss']:.4f}" + (f" val dice {rec['val_dice']:.3f}" if "val_dice" in rec else "")
                bar.update(t, completed=epoch, description=f"train {stage.name} ({bits})")

            result = train_network(cases, spec, params, stage.seed, task, progress=progress)
        ctx.cache.put(k, result)
    ctx.keys[stage.name] = k
    model_path = ctx.out / "models" / f"{stage.name}.pt"
    atomic_write_bytes(model_path, result["state"])
    from radlang.ops.training import metrics_json

    atomic_write_text(ctx.out / "metrics" / f"{stage.name}_training.json",
                      metrics_json({"stage": stage.name, "history": result["history"], "best_epoch": result["best_epoch"],
                                    "train_cases": result["train_cases"], "validation_cases": result["val_cases"],
                                    "checkpoint": f"models/{stage.name}.pt"}))   # relative to the out folder: the same bytes anywhere
    return {"spec": spec, "params": params, "state": result["state"], "history": result["history"], "task": task,
            "best_epoch": result["best_epoch"], "checkpoint": str(model_path)}


def _net(model):
    from radlang.ops.networks import build_network
    from radlang.ops.training import load_weights

    return load_weights(build_network(model["spec"]), model["state"])


def _infer_params(stage, model):
    p = dict(model["params"])
    if stage.params.get("overlap") is not None:
        p["overlap"] = stage.params["overlap"]
    return p


@mode("predict_mask")
def run_predict(stage, ctx):
    import os
    import uuid

    import pandas as pd

    from radlang.ops.training import predict_volume, write_label_map

    model = ctx.results[stage.inputs["model"].stage]
    df = ctx.results[stage.inputs["cohort"].stage]
    params = _infer_params(stage, model)
    k = ctx.stage_key(stage)
    ctx.keys[stage.name] = k
    folder = ctx.out / "masks" / stage.name
    hit = ctx.cache.get(k)          # {"rows": the table's rows, "sha256": mask file -> its SHA-256 when written}
    if hit is not None and all(output_sha256(p) == h for p, h in hit["sha256"].items()):
        rows = hit["rows"]
        out = pd.DataFrame(rows)
        out.attrs["radlang"] = {"name": stage.name, "classes": int(model["spec"]["params"]["out_channels"]), "label": stage.params.get("label")}
        return out
    if hit is not None:
        ctx.warn("W672", f"`{stage.name}`: a mask under masks/{stage.name}/ changed since radlang wrote it, or is missing; predicted again")
    cases = _load_cases(stage, ctx, df, labels=False)
    net = _net(model)
    classes = int(model["spec"]["params"]["out_channels"])
    label = stage.params.get("label")
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for c in cases:
        lab = predict_volume(net, c["image"], params, "segmentation").argmax(0)
        row = {"case_id": c["case"]}
        tmp = folder / f".{c['case']}.{uuid.uuid4().hex}.tmp.nii.gz"          # unique: never shared with another writer
        if label is not None:
            write_label_map((lab == label).astype("uint8"), c["geometry"], tmp)
            dest = folder / f"{c['case']}_class{label}.nii.gz"
            os.replace(tmp, dest)
            row["mask"] = str(dest)
        else:
            write_label_map(lab, c["geometry"], tmp)
            dest = folder / f"{c['case']}.nii.gz"
            os.replace(tmp, dest)
            row["mask"] = str(dest)
            if classes > 2:
                for j in range(1, classes):
                    write_label_map((lab == j).astype("uint8"), c["geometry"], tmp)
                    d = folder / f"{c['case']}_class{j}.nii.gz"
                    os.replace(tmp, d)
                    row[f"mask.class{j}"] = str(d)
        rows.append(row)
    ctx.cache.put(k, {"rows": rows, "sha256": {p: output_sha256(p) for r in rows for c, p in r.items() if c.startswith("mask")}})
    out = pd.DataFrame(rows)
    out.attrs["radlang"] = {"name": stage.name, "classes": classes, "label": label}
    return out


@mode("segmentation_metrics")
def run_segmetrics(stage, ctx):
    from radlang.ops.training import metrics_json, predict_volume, seg_scores, summarize_scores

    model = ctx.results[stage.inputs["model"].stage]
    df = ctx.results[stage.inputs["cohort"].stage]
    params = _infer_params(stage, model)
    classes = int(model["spec"]["params"]["out_channels"])
    k = ctx.stage_key(stage)
    ctx.keys[stage.name] = k
    report = ctx.cache.get(k)
    if report is None:
        cases = _load_cases(stage, ctx, df, labels=True, classes=classes)
        net = _net(model)
        per_case = []
        for c in cases:
            pred = predict_volume(net, c["image"], params, "segmentation").argmax(0)
            for r in seg_scores(pred, c["label"][0], classes, c["geometry"]["spacing"]):
                per_case.append({"case": c["case"], **r})
        report = {"stage": stage.name, "model": stage.inputs["model"].stage, "cohort": stage.inputs["cohort"].stage,
                  "metrics": ["dice", "hd95"], "hd95_unit": "mm", "per_case": per_case, "per_class": summarize_scores(per_case)}
        ctx.cache.put(k, report)
    atomic_write_text(ctx.out / "metrics" / f"{stage.name}.json", metrics_json(report))
    parts = []
    for c, r in sorted(report["per_class"].items(), key=lambda kv: int(kv[0]) if str(kv[0]).isdigit() else str(kv[0])):
        hd = f"{r['hd95_mean']:.2f} mm" if r.get("hd95_mean") is not None else "n/a"
        inf = f" ({r['hd95_infinite']} case(s) without a finite HD95)" if r.get("hd95_infinite") else ""
        parts.append(f"class {c}: mean Dice {r['dice_mean']:.3f}, mean HD95 {hd}{inf}")
    n = len({r["case"] for r in report["per_case"]})
    ctx.summary.append(f"{stage.name}: segmentation of `{report['cohort']}` ({n} cases): " + "; ".join(parts)
                       + f"; wrote metrics/{stage.name}.json")
    return report


@mode("gradcam")
def run_gradcam(stage, ctx):
    import uuid

    from radlang.ops.explain_cnn import DEFAULT_LAYER, gradcam_case, overlay_png, write_heatmap

    model = ctx.results[stage.inputs["model"].stage]
    df = ctx.results[stage.inputs["cohort"].stage]
    n = stage.params.get("cases")
    if n:
        attrs = df.attrs
        df = df.head(int(n))
        df.attrs = attrs
    layer = stage.params.get("layer") or DEFAULT_LAYER.get(model["spec"]["arch"])
    net = _net(model)
    names = dict(net.named_modules())
    if layer not in names:
        close = [m for m in names if m and m.count(".") <= 1][-8:]
        raise RunError([Diagnostic("E625", f"`{stage.name}`: the network has no layer `{layer}`", stage.span,
                                   hint="layers near the output: " + ", ".join(close))])
    cases = _load_cases(stage, ctx, df, labels=False)
    folder = ctx.out / "explain" / stage.name
    folder.mkdir(parents=True, exist_ok=True)
    summary = []
    patch = model["params"]["patch"]
    for c in cases:
        heat, prob, cls = gradcam_case(net, c["image"], c["mask"], patch, layer, stage.params.get("class_index"))
        tmp = folder / f".{c['case']}.{uuid.uuid4().hex}.tmp.nii.gz"          # unique: never shared with another writer
        write_heatmap(heat, c["geometry"], tmp)
        dest = folder / f"{c['case']}_gradcam.nii.gz"
        tmp.replace(dest)
        import numpy as np

        if c["mask"] is not None and c["mask"].max() > 0:
            idx = np.argwhere(c["mask"][0] > 0)
            centre = ((idx.min(0) + idx.max(0)) // 2).tolist()
        else:
            centre = [s // 2 for s in heat.shape]
        png = overlay_png(c["image"], heat, centre, c["geometry"]["spacing"], f"{c['case']}: class {cls}, p = {prob[cls]:.2f}")
        atomic_write_bytes(folder / f"{c['case']}_gradcam.png", png)
        summary.append({"case": c["case"], "class": cls, "probabilities": [float(v) for v in prob], "heatmap": str(dest)})
    atomic_write_text(folder / "gradcam.json", json.dumps({"layer": layer, "cases": summary}, indent=2, sort_keys=True) + "\n")
    ctx.keys[stage.name] = ctx.stage_key(stage)
    return summary


@mode("federated")
def run_federated(stage, ctx):
    raise RunError([Diagnostic("E690", f"`{stage.name}`: federated execution (`{stage.op}`) is not available in this version of radlang",
                               stage.span, hint="the spec checks and plans; train centrally with `supervised` to run it")])
