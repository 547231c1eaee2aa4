"""`predict_mask`: segment a cohort with a trained segmentation network (sliding-window inference).

    segment pred = predict_mask(fit, test)            # label map + one mask per class (habitats)
    segment necrosis = predict_mask(fit, test) { label: 2 }

The stage writes one label map per case (and one binary mask per class) under <out>/masks/<stage>/; a
`pyradiomics` stage reads them like a cohort's masks. `run_predict_mask` is the run-time glue.
"""

from __future__ import annotations

from pydantic import Field

from radlang.ops.netio import (
    classification_crop,
    grid_mismatch,
    load_case,
    load_weights,
    normalize_image,
    predict_volume,
    segmentation_network,
    write_label_map,
)
from radlang.registry import Operator, Port, register
from radlang.types import RType
from radlang.values import Settings


class PredictSettings(Settings):
    label: int | None = Field(None, ge=1, description="emit only this class as a binary mask (ROI = 1), e.g. one habitat")
    overlap: float | None = Field(None, ge=0, lt=1, description="sliding-window overlap (default: the training stage's)")


def _predict_type(ctx) -> RType:
    m = segmentation_network(ctx)
    coh = ctx.inputs["cohort"]
    s = ctx.settings
    if m is not None and s.label is not None and m.classes and s.label >= m.classes:
        ctx.error("E302", f"label {s.label} does not exist: the network predicts classes 0..{m.classes - 1}", setting="label")
    classes = 2 if s.label is not None else (m.classes if m else None)
    return RType("Mask", cohort=coh.cohort, dims=coh.dims, channels=1, classes=classes, detail=f"{ctx.stmt.name} (network)")


def run_predict_mask(stage, ctx):
    """Write every case's predicted label map (and per-class masks); the value is the table case_id -> mask file(s)."""
    import os
    import uuid

    import pandas as pd

    from radlang.backends.cache import output_sha256
    from radlang.ops.netio import inference_params, load_cases, trained_network

    model = ctx.results[stage.inputs["model"].stage]
    df = ctx.results[stage.inputs["cohort"].stage]
    params = inference_params(stage, model)
    k = ctx.stage_key(stage)
    ctx.keys[stage.name] = k
    folder = ctx.out / "masks" / stage.name
    hit = ctx.cache.get(k)          # {"rows": the table's rows, "sha256": mask file -> its SHA-256 when written}
    if hit is not None and all(output_sha256(p) == h for p, h in hit["sha256"].items()):
        out = pd.DataFrame(hit["rows"])
        out.attrs["radlang"] = {"name": stage.name, "classes": int(model["spec"]["params"]["out_channels"]), "label": stage.params.get("label")}
        return out
    if hit is not None:
        ctx.warn("W672", f"`{stage.name}`: a mask under masks/{stage.name}/ changed since radlang wrote it, or is missing; predicted again")
    cases = load_cases(stage, ctx, df, normalize=model["params"].get("normalize", "zscore"), labels=False)
    net = trained_network(model)
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


register(Operator(
    name="predict_mask", kind="segment", output="Mask", settings=PredictSettings,
    behaviour="stateless", run=run_predict_mask,
    inputs=(Port("model", ("TrainedModel",), doc="a `train` stage of a segmentation network"), Port("cohort", ("Cohort",))),
    positional=("model", "cohort"), infer=_predict_type, impl=predict_volume, version="1", sink=True,
    helpers=(grid_mismatch, load_case, normalize_image, classification_crop, load_weights, write_label_map),
    doc=("Segment a cohort with a trained network (sliding-window inference). Writes <out>/masks/<stage>/<case>.nii.gz "
         "(label map in the image geometry) and, for several classes, <case>_class<k>.nii.gz per class (habitats); "
         "`label: k` makes the stage a binary ROI for `features`."),
    examples=("segment pred = predict_mask(fit, test)", "segment necrosis = predict_mask(fit, test) { label: 2 }"),
))
