"""`segmentation_metrics`: Dice and HD95 (mm) of a trained segmentation network on held-out cases.

    validate seg = segmentation_metrics(fit, test)    # per case and class -> <out>/metrics/seg.json

`seg_scores` and `summarize_scores` are self-contained (see radlang/registry.py); `run_segmentation_metrics`
is the run-time glue (the stage cache, the JSON report, the summary line).
"""

from __future__ import annotations

from pydantic import Field

from radlang.ops.netio import (
    classification_crop,
    grid_mismatch,
    load_case,
    load_weights,
    metrics_json,
    normalize_image,
    predict_volume,
    segmentation_network,
)
from radlang.registry import Operator, Port, register
from radlang.types import RType
from radlang.values import Settings

# ----------------------------------------------------------------------------------------------
# self-contained implementation


def seg_scores(pred, truth, classes, spacing):
    """Dice and HD95 (mm) per foreground class for one case, with MONAI's DiceMetric and
    HausdorffDistanceMetric(percentile=95) on one-hot label maps. `pred`, `truth`: int arrays
    (z, y, x); `spacing` in image order (x, y, z). A class absent from both is reported as
    dice 1.0, hd95 0.0; absent from one only: dice 0.0, hd95 inf."""
    import torch
    from monai.metrics import DiceMetric, HausdorffDistanceMetric
    from monai.networks.utils import one_hot

    p = one_hot(torch.as_tensor(pred, dtype=torch.long)[None, None], classes)
    t = one_hot(torch.as_tensor(truth, dtype=torch.long)[None, None], classes)
    sp = list(reversed([float(v) for v in spacing]))[-pred.ndim:]
    import warnings

    dice = DiceMetric(include_background=False, reduction="none", ignore_empty=False)(p, t)[0].numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)   # a MONAI deprecation notice inside the metric
        hd = HausdorffDistanceMetric(include_background=False, percentile=95, reduction="none")(p, t, spacing=sp)[0].numpy()
    out = []
    for c in range(1, classes):
        in_p, in_t = bool(p[0, c].any()), bool(t[0, c].any())
        if not in_p and not in_t:
            d, h = 1.0, 0.0
        elif not in_p or not in_t:
            d, h = 0.0, float("inf")
        else:
            d, h = float(dice[c - 1]), float(hd[c - 1])
        out.append({"class": c, "dice": d, "hd95": h, "voxels_true": int(t[0, c].sum()), "voxels_pred": int(p[0, c].sum())})
    return out


def summarize_scores(rows):
    """Per-class summary of per-case scores: mean, sd, median of Dice and HD95 (finite values; the count of
    infinite HD95, a class missing from prediction or truth, is reported)."""
    import numpy as np

    out = {}
    for c in sorted({r["class"] for r in rows}):
        d = np.array([r["dice"] for r in rows if r["class"] == c], dtype=float)
        h = np.array([r["hd95"] for r in rows if r["class"] == c], dtype=float)
        fin = h[np.isfinite(h)]
        out[str(c)] = {"cases": len(d), "dice_mean": float(d.mean()), "dice_sd": float(d.std(ddof=1)) if len(d) > 1 else 0.0,
                       "dice_median": float(np.median(d)), "hd95_mean": float(fin.mean()) if len(fin) else None,
                       "hd95_median": float(np.median(fin)) if len(fin) else None, "hd95_infinite": int((~np.isfinite(h)).sum())}
    return out


# ----------------------------------------------------------------------------------------------
# settings, types, run time


class SegMetricsSettings(Settings):
    overlap: float | None = Field(None, ge=0, lt=1, description="sliding-window overlap (default: the training stage's)")


def _segmetrics_type(ctx) -> RType:
    m = segmentation_network(ctx)
    coh = ctx.inputs["cohort"]
    if not coh.has_mask:
        ctx.error("E203", f"scoring a segmentation needs reference masks, but cohort `{coh.cohort}` has no mask column", port="cohort")
    if m is not None and m.cohort and m.cohort == coh.cohort:
        ctx.error("E503", f"`{ctx.stmt.name}` scores the network on `{coh.cohort}`, the cohort it was trained on", port="cohort",
                  hint="score on held-out cases: a separate test cohort")
    return RType("Evaluation", cohort=coh.cohort, dims=coh.dims, detail="Dice + HD95")


def run_segmentation_metrics(stage, ctx):
    """Score the network's segmentation of every case (cached), write <out>/metrics/<stage>.json, add a summary line."""
    from radlang.backends.cache import atomic_write_text
    from radlang.ops.netio import inference_params, load_cases, trained_network

    model = ctx.results[stage.inputs["model"].stage]
    df = ctx.results[stage.inputs["cohort"].stage]
    params = inference_params(stage, model)
    classes = int(model["spec"]["params"]["out_channels"])
    k = ctx.stage_key(stage)
    ctx.keys[stage.name] = k
    report = ctx.cache.get(k)
    if report is None:
        cases = load_cases(stage, ctx, df, normalize=model["params"].get("normalize", "zscore"), labels=True, classes=classes)
        net = trained_network(model)
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


register(Operator(
    name="segmentation_metrics", kind="validate", output="Evaluation", settings=SegMetricsSettings,
    behaviour="stateless", run=run_segmentation_metrics,
    inputs=(Port("model", ("TrainedModel",), doc="a `train` stage of a segmentation network"),
            Port("cohort", ("Cohort",), doc="held-out cases with reference masks")),
    positional=("model", "cohort"), infer=_segmetrics_type, impl=seg_scores, sink=True, version="1",
    helpers=(grid_mismatch, load_case, normalize_image, classification_crop, load_weights, predict_volume, summarize_scores, metrics_json),
    doc=("Dice and the 95th-percentile Hausdorff distance (mm), MONAI's metrics, per case and per class, of a trained "
         "network's sliding-window segmentation of held-out cases. Writes <out>/metrics/<stage>.json."),
    examples=("validate seg = segmentation_metrics(fit, test)",),
))
