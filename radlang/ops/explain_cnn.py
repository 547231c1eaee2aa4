"""Grad-CAM for classification networks, with MONAI's `GradCAM`.

    explain cam = gradcam(fit, test) { layer: "class_layers.relu", cases: 8 }

For each case the trained network sees the same crop it was trained on (centred on the mask); the
class-activation map of the target layer is upsampled to the crop, put back in the image grid, and
written as <out>/explain/<stage>/<case>_gradcam.nii.gz (same geometry as the image) with a PNG overlay
of the central slices (<case>_gradcam.png). `radlang plan` states the target layer's spatial
resolution: upsampling makes the map smooth, not detailed.

Grad-CAM needs a convolutional classifier: on a tabular model or a segmentation network it is a type
error in `radlang check`.
"""

from __future__ import annotations

from pydantic import Field

from radlang.ops.netio import classification_crop, grid_mismatch, load_case, load_weights, normalize_image
from radlang.ops.networks import cam_layer, layer_resolution
from radlang.registry import Operator, Port, register
from radlang.types import RType
from radlang.values import Settings

# ----------------------------------------------------------------------------------------------
# self-contained implementation


def gradcam_case(net, image, mask, patch, layer, class_index=None):
    """Grad-CAM of one case: returns (heatmap on the image grid [z, y, x] in [0, 1], predicted
    probabilities, the class explained). `class_index` None explains the predicted class."""
    import numpy as np
    import torch
    from monai.visualize import GradCAM

    torch.set_num_threads(1)        # as in training: the same heatmaps whatever the machine's core count
    crop, start = classification_crop(image, mask, patch)
    x = torch.from_numpy(crop[None])
    net.eval()
    with torch.no_grad():
        prob = torch.softmax(net(x), 1)[0].numpy()
    cls = int(prob.argmax()) if class_index is None else int(class_index)
    cam = GradCAM(nn_module=net, target_layers=layer)
    m = cam(x=x, class_idx=cls)[0, 0].detach().numpy().astype(np.float32)
    full = np.zeros(image.shape[1:], dtype=np.float32)
    shape = image.shape[1:]
    src = tuple(slice(max(0, a), min(s, a + r)) for a, r, s in zip(start, m.shape, shape))
    dst = tuple(slice(sl.start - a, sl.stop - a) for sl, a in zip(src, start))
    full[src] = m[dst]
    return full, prob, cls


def write_heatmap(heatmap, geometry, path):
    """Write a heatmap (z, y, x) as float32 NIfTI in the image's geometry."""
    import SimpleITK as sitk

    im = sitk.GetImageFromArray(heatmap.astype("float32"))
    im.SetSpacing([float(v) for v in geometry["spacing"]])
    im.SetOrigin([float(v) for v in geometry["origin"]])
    im.SetDirection([float(v) for v in geometry["direction"]])
    sitk.WriteImage(im, str(path), True)


def overlay_png(image, heatmap, centre, spacing, title):
    """PNG bytes: the first channel's central slices through `centre` (z, y, x) with the heatmap overlaid
    (axial, coronal, sagittal for 3D; the image for 2D), drawn with the voxel aspect ratio."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    img = image[0]
    sx, sy = float(spacing[0]), float(spacing[1])
    if img.ndim == 2:
        views = [(img, heatmap, sy / sx, "image")]
    else:
        sz = float(spacing[2])
        z, y, x = (int(v) for v in centre)
        views = [(img[z], heatmap[z], sy / sx, "axial"), (img[:, y, :], heatmap[:, y, :], sz / sx, "coronal"),
                 (img[:, :, x], heatmap[:, :, x], sz / sy, "sagittal")]
    fig, axes = plt.subplots(1, len(views), figsize=(3.2 * len(views), 3.4), dpi=100)
    axes = np.atleast_1d(axes)
    for ax, (im, hm, aspect, name) in zip(axes, views):
        ax.imshow(im, cmap="gray", aspect=aspect, origin="lower" if name != "axial" else "upper")
        ax.imshow(np.ma.masked_less(hm, 0.05), cmap="jet", alpha=0.45, vmin=0, vmax=1, aspect=aspect,
                  origin="lower" if name != "axial" else "upper")
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


# ----------------------------------------------------------------------------------------------
# declaration


class GradCAMSettings(Settings):
    layer: str | None = Field(None, description="target layer (default: DenseNet121 `class_layers.relu`, ResNet `layer4`)")
    class_index: int | None = Field(None, ge=0, description="class to explain (default: the predicted class)")
    cases: int | None = Field(None, ge=1, description="explain only the first N cases (default: all)")


def _gradcam_type(ctx) -> RType:
    m, coh = ctx.inputs["model"], ctx.inputs["cohort"]
    if m.kind != "TrainedModel":
        ctx.error("E209", f"Grad-CAM needs a convolutional network, but this is a {m.describe()} (tabular: no spatial feature maps)",
                  port="model", hint="Grad-CAM explains a `train` stage of densenet121 or resnet")
    elif m.head != "classification":
        ctx.error("E209", f"Grad-CAM explains a classification network, but this is a {m.describe()} ({m.head})", port="model")
    else:
        if m.dims == 3 and coh.dims == 2:
            ctx.error("E210", f"a 3D network cannot explain 2D images of cohort `{coh.cohort}`", port="cohort")
        if coh.channels and m.channels and coh.channels != m.channels:
            ctx.error("E211", f"the network takes {m.channels} channel(s), but cohort `{coh.cohort}` has {coh.channels} image column(s)",
                      port="cohort")
        if m.classes and ctx.settings.class_index is not None and ctx.settings.class_index >= m.classes:
            ctx.error("E302", f"class_index {ctx.settings.class_index} does not exist (classes 0..{m.classes - 1})", setting="class_index")
    return RType("Explanation", cohort=coh.cohort, dims=coh.dims, detail="Grad-CAM")


def _gradcam_plan(stage, memory, study=None):
    if study is None:
        return []
    by = study.by_name()
    fit = by.get(stage.inputs["model"].stage)
    if fit is None or fit.op != "supervised" or "net" not in fit.inputs:
        return []
    net = by[fit.inputs["net"].stage]
    spec = {"arch": net.op, "params": net.params}
    layer = stage.params.get("layer") or cam_layer(net.op)
    patch = fit.params.get("patch")
    if not patch:
        return []
    dims = int(net.params["dims"])
    arr_patch = list(reversed([int(v) for v in patch]))[-dims:]
    try:
        res = layer_resolution(spec, arr_patch, layer)
    except ImportError:
        return [("info", f"Grad-CAM at `{layer}`")]
    if res is None:
        return [("warning", f"the network has no layer `{layer}`")]
    res_xyz = list(reversed(res))
    cell = [p / r for p, r in zip(patch, res_xyz)]
    return [("info", (f"Grad-CAM at `{layer}`: {'x'.join(map(str, res_xyz))} cells for a {'x'.join(map(str, patch))} patch; "
                     f"each cell spans {'x'.join(f'{c:g}' for c in cell)} voxels (upsampling adds no detail)"))]


def run_gradcam(stage, ctx):
    """Heatmaps (NIfTI + PNG overlay) of the first `cases` cases, and <out>/explain/<stage>/gradcam.json."""
    import json
    import uuid

    import numpy as np

    from radlang.backends.cache import atomic_write_bytes, atomic_write_text
    from radlang.backends.executor import RunError
    from radlang.diagnostics import Diagnostic
    from radlang.ops.netio import load_cases, trained_network

    model = ctx.results[stage.inputs["model"].stage]
    df = ctx.results[stage.inputs["cohort"].stage]
    n = stage.params.get("cases")
    if n:
        attrs = df.attrs
        df = df.head(int(n))
        df.attrs = attrs
    layer = stage.params.get("layer") or model["spec"]["cam_layer"]
    net = trained_network(model)
    names = dict(net.named_modules())
    if layer not in names:
        close = [m for m in names if m and m.count(".") <= 1][-8:]
        raise RunError([Diagnostic("E625", f"`{stage.name}`: the network has no layer `{layer}`", stage.span,
                                   hint="layers near the output: " + ", ".join(close))])
    cases = load_cases(stage, ctx, df, normalize=model["params"].get("normalize", "zscore"), labels=False)
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
        if c["mask"] is not None and c["mask"].max() > 0:
            idx = np.argwhere(c["mask"][0] > 0)
            centre = ((idx.min(0) + idx.max(0)) // 2).tolist()
        else:
            centre = [s // 2 for s in heat.shape]
        png = overlay_png(c["image"], heat, centre, c["geometry"]["spacing"], f"{c['case']}: class {cls}, p = {prob[cls]:.2f}")
        atomic_write_bytes(folder / f"{c['case']}_gradcam.png", png)
        summary.append({"case": c["case"], "class": cls, "probabilities": [float(v) for v in prob],
                        "heatmap": dest.relative_to(ctx.out).as_posix()})   # relative to the out folder: the same bytes anywhere
    atomic_write_text(folder / "gradcam.json", json.dumps({"layer": layer, "cases": summary}, indent=2, sort_keys=True) + "\n")
    ctx.keys[stage.name] = ctx.stage_key(stage)
    return summary


register(Operator(
    name="gradcam", kind="explain", output="Explanation", settings=GradCAMSettings, behaviour="stateless", run=run_gradcam, sink=True,
    inputs=(Port("model", ("TrainedModel", "Model"), doc="a `train` stage of a classification network"),
            Port("cohort", ("Cohort",), doc="the cases to explain")),
    positional=("model", "cohort"), infer=_gradcam_type, impl=gradcam_case, plan=_gradcam_plan, version="1",
    helpers=(grid_mismatch, load_case, normalize_image, classification_crop, load_weights, write_heatmap, overlay_png),
    doc=("Grad-CAM heatmaps (MONAI GradCAM) of a classification network: NIfTI in the image geometry plus PNG overlays "
         "of the central slices, under <out>/explain/<stage>/."),
    examples=("explain cam = gradcam(fit, test) { cases: 8 }",),
))
