"""Arrays in and out of MONAI networks, shared by the network operators (supervised, predict_mask,
segmentation_metrics, gradcam): reading a case's channels and mask, normalising intensities, crops and
padding, sliding-window inference, weights as bytes, label maps and JSON reports. No operator is declared here.

The first section is self-contained (see radlang/registry.py; operators list these functions among their
`helpers`). The second is run-time glue their `run` functions call: a cohort's cases as arrays (every data
problem collected into one RunError), and a trained network rebuilt from its stage value.
"""

from __future__ import annotations

from radlang.types import RType

# ----------------------------------------------------------------------------------------------
# self-contained implementation


def grid_mismatch(geom, ref, tolerance=1e-3):
    """None when two images lie on one grid, else a description of both: geometries {"size", "spacing", "origin",
    "direction"} (SimpleITK's order); the same size, and spacing, origin and direction within `tolerance` (absolute
    plus relative, numpy.allclose's rule)."""
    def close(a, b):
        return len(a) == len(b) and all(abs(x - y) <= tolerance + tolerance * abs(y) for x, y in zip(a, b))

    if list(geom["size"]) == list(ref["size"]) and all(close(geom[k], ref[k]) for k in ("spacing", "origin", "direction")):
        return None

    def fmt(g):
        return f"size {tuple(g['size'])}, spacing {tuple(round(v, 4) for v in g['spacing'])}, origin {tuple(round(v, 3) for v in g['origin'])}"

    return f"{fmt(geom)} vs {fmt(ref)}"


def load_case(image_paths, mask_path=None, tolerance=1e-3):
    """Read one case: image channels (co-registered files) stacked as float32 [C, z, y, x], the label map
    as int64 [1, z, y, x] (or None), and the geometry of the first channel. Returns (case, problems):
    problems are (column index or "mask", message) for channels whose geometry differs (grid_mismatch)."""
    import numpy as np
    import SimpleITK as sitk

    def geom(im):
        return {"size": im.GetSize(), "spacing": im.GetSpacing(), "origin": im.GetOrigin(), "direction": im.GetDirection()}

    problems, arrays, ref = [], [], None
    for i, p in enumerate(image_paths):
        im = sitk.ReadImage(str(p))
        if ref is None:
            ref = im
        elif (bad := grid_mismatch(geom(im), geom(ref), tolerance)) is not None:
            problems.append((i, f"geometry differs from the first channel: {bad}"))
            continue
        arrays.append(sitk.GetArrayFromImage(im).astype(np.float32))
    label = None
    if mask_path:
        m = sitk.ReadImage(str(mask_path))
        if (bad := grid_mismatch(geom(m), geom(ref), tolerance)) is not None:
            problems.append(("mask", f"mask geometry differs from the image: {bad}"))
        else:
            label = sitk.GetArrayFromImage(m).astype(np.int64)[None]
    image = np.stack(arrays) if len(arrays) == len(image_paths) else None
    geometry = {"spacing": list(ref.GetSpacing()), "origin": list(ref.GetOrigin()), "direction": list(ref.GetDirection())}
    return {"image": image, "label": label, "geometry": geometry}, problems


def normalize_image(image, how):
    """Per image and channel: z-score (`zscore`) or unchanged (`none`)."""
    import numpy as np

    if how == "none":
        return image
    out = np.empty_like(image, dtype=np.float32)
    for c in range(image.shape[0]):
        ch = image[c].astype(np.float64)
        sd = ch.std()
        out[c] = ((ch - ch.mean()) / (sd if sd > 0 else 1.0)).astype(np.float32)
    return out


def classification_crop(image, label, patch):
    """A fixed-size crop [C, *patch] for classification, centred on the mask's bounding box when there is a
    mask, else on the image centre; zero outside the image. Returns (crop, start) with `start` the crop's
    first voxel index (z, y, x) in the image, so a map on the crop can be put back in the image grid."""
    import numpy as np

    roi = list(reversed([int(v) for v in patch]))[-(image.ndim - 1):]
    shape = image.shape[1:]
    if label is not None and label.max() > 0:
        idx = np.argwhere(label[0] > 0)
        centre = ((idx.min(0) + idx.max(0)) // 2).tolist()
    else:
        centre = [s // 2 for s in shape]
    start = [c - r // 2 for c, r in zip(centre, roi)]
    out = np.zeros((image.shape[0],) + tuple(roi), dtype=np.float32)
    src = tuple(slice(max(0, a), min(s, a + r)) for a, r, s in zip(start, roi, shape))
    dst = tuple(slice(sl.start - a, sl.stop - a) for sl, a in zip(src, start))
    out[(slice(None),) + dst] = image[(slice(None),) + src]
    return out, start


def divisible_pad(arrays, k):
    """Pad arrays [C, ...] (end side) to a common shape divisible by k."""
    import numpy as np

    shape = [max(a.shape[d] for a in arrays) for d in range(1, arrays[0].ndim)]
    shape = [((s + k - 1) // k) * k for s in shape]
    return [np.pad(a, [(0, 0)] + [(0, t - s) for s, t in zip(a.shape[1:], shape)]) for a in arrays]


def predict_volume(net, image, params, head, device="cpu", mask=None):
    """Softmax probabilities of one case [classes, z, y, x] (segmentation: sliding-window inference over
    `patch` windows with `overlap`, slice by slice when `slices`) or [classes] (classification)."""
    import numpy as np
    import torch
    from monai.inferers import sliding_window_inference

    torch.set_num_threads(1)        # as in training: the same predictions whatever the machine's core count
    net.eval()
    with torch.no_grad():
        if head == "classification":
            x = torch.from_numpy(classification_crop(image, mask, params["patch"])[0][None]).to(device)
            return torch.softmax(net(x), 1)[0].cpu().numpy()
        k = int(params.get("_divisor", 1))
        if params["slices"]:
            x = torch.from_numpy(np.ascontiguousarray(np.moveaxis(image, 1, 0))).to(device)   # slices as a batch
        else:
            x = torch.from_numpy(image[None]).to(device)
        spatial = list(x.shape[2:])
        if params.get("patch"):
            roi = list(reversed([int(v) for v in params["patch"]]))[-len(spatial):]
        else:
            roi = [((s + k - 1) // k) * k for s in spatial]
        probs = []
        step = int(params["sw_batch"]) * (4 if params["slices"] else 1)
        for i in range(0, x.shape[0], step):
            y = sliding_window_inference(x[i:i + step], roi_size=roi, sw_batch_size=int(params["sw_batch"]), predictor=net,
                                         overlap=float(params["overlap"]), mode="gaussian", padding_mode="constant")
            probs.append(torch.softmax(y, 1).cpu())
        p = torch.cat(probs, 0).numpy()
        return np.moveaxis(p, 0, 1) if params["slices"] else p[0]


def make_optimizer(params, parameters):
    """The optimiser of a training stage's settings (`optimizer`: adam, adamw or sgd; `lr`; `weight_decay`)."""
    import torch

    name, kwargs = optimizer_call(params)
    return getattr(torch.optim, name)(parameters, **kwargs)


def optimizer_call(params):
    """(the `torch.optim` class, its keyword arguments besides the parameters) of a training stage's settings:
    `make_optimizer` calls it, and `radlang render` writes it into the stage's function."""
    name, lr, wd = params["optimizer"], float(params["lr"]), float(params["weight_decay"])
    if name == "sgd":
        return "SGD", {"lr": lr, "momentum": 0.99, "nesterov": True, "weight_decay": wd}
    if name == "adamw":
        return "AdamW", {"lr": lr, "weight_decay": wd}
    return "Adam", {"lr": lr, "weight_decay": wd}


def make_scheduler(opt, schedule, epochs):
    """scheduler_lambda's learning-rate schedule of the optimiser `opt`, run: None for `constant`."""
    import torch

    return eval(scheduler_lambda(schedule, epochs), {"torch": torch})(opt)  # scheduler_lambda's code


def scheduler_code(schedule, epochs):
    """The per-epoch learning-rate schedule of a training stage's settings as Python, a `torch.optim.lr_scheduler` of
    the optimiser named `optimizer` (`cosine`, `poly`, `step`; `ganin`: Ganin et al. (JMLR 2016)'s annealing
    lr_p = lr / (1 + 10 p)^0.75, p = epoch / epochs the training progress, as a LambdaLR), or None (`constant`)."""
    epochs = int(epochs)
    call = {"cosine": f"CosineAnnealingLR(optimizer, T_max={epochs})",
            "poly": f"PolynomialLR(optimizer, total_iters={epochs}, power=0.9)",
            "step": f"StepLR(optimizer, step_size={max(1, epochs // 3)}, gamma=0.1)",
            "ganin": f"LambdaLR(optimizer, lr_lambda=lambda epoch: 1 / (1 + 10 * epoch / {epochs}) ** 0.75)"}.get(schedule)
    return None if call is None else f"torch.optim.lr_scheduler.{call}"


def scheduler_lambda(schedule, epochs):
    """scheduler_code as the function a trainer is given: `lambda optimizer: <the schedule, or None>` (it names `torch`)."""
    return f"lambda optimizer: {scheduler_code(schedule, epochs) or 'None'}"


def training_code(params, seed):
    """The optimiser and learning-rate schedule a training stage's settings make, as Python."""
    name, kwargs = optimizer_call(params)
    lines = [f"torch.optim.{name}(net.parameters(), " + ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) + ")"]
    sched = scheduler_code(params["schedule"], params["epochs"])
    if sched is not None:
        lines.append(sched)
    return lines


def train_step(net, inputs, target, loss_fn, opt, backward=None):
    """One optimisation step: `net(*inputs)`, `loss_fn(output, target)`, backward, `opt.step()`. Returns the loss.
    Every network trainer (segmentation, image classifiers, fusion, multi-task) steps through here. `backward`, when
    given, replaces `loss.backward()`: it takes what `loss_fn` returned, fills the gradients, and returns the loss to
    report (a multi-task model's loss combination, radlang/ops/multitask.py)."""
    opt.zero_grad(set_to_none=True)
    loss = loss_fn(net(*inputs), target)
    if backward is None:
        loss.backward()
    else:
        loss = backward(loss)
    opt.step()
    return float(loss.detach())


def batched_outputs(call, image, tab, n, batch=64):
    """call(image rows, tabular rows or None) -> a tensor, for the n cases in batches of `batch`, as a network
    predicts: without gradients and with one intra-op thread (so the numbers do not depend on the machine's cores);
    the batches' outputs as float64 NumPy, stacked (None for no case)."""
    import numpy as np
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = []
        with torch.no_grad():
            for b in range(0, n, batch):
                xi = torch.from_numpy(np.ascontiguousarray(image[b:b + batch], dtype=np.float32)) if image is not None else None
                xt = torch.from_numpy(np.ascontiguousarray(tab[b:b + batch], dtype=np.float32)) if tab is not None else None
                out.append(call(xi, xt).numpy().astype(np.float64))
    finally:
        torch.set_num_threads(threads)
    return np.concatenate(out) if out else None


def load_weights(net, data):
    import io

    import torch

    net.load_state_dict(torch.load(io.BytesIO(data), map_location="cpu", weights_only=True))
    return net


def save_weights(state):
    """A state_dict as bytes (torch.save); weights only, loadable with weights_only=True."""
    import io

    import torch

    buf = io.BytesIO()
    torch.save({k: v.detach().cpu().clone() for k, v in state.items()}, buf)
    return buf.getvalue()


def write_label_map(labels, geometry, path):
    """Write an int label map (z, y, x) as NIfTI (uint8) in the image's geometry."""
    import numpy as np
    import SimpleITK as sitk

    im = sitk.GetImageFromArray(labels.astype(np.uint8))
    im.SetSpacing([float(v) for v in geometry["spacing"]])
    im.SetOrigin([float(v) for v in geometry["origin"]])
    im.SetDirection([float(v) for v in geometry["direction"]])
    sitk.WriteImage(im, str(path), True)


def metrics_json(obj):
    """The metrics file's text: sorted keys, 2-space indent, infinite values as the string "inf"."""
    import json
    import math

    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return "inf" if v > 0 else ("-inf" if v < 0 else "nan")
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v

    return json.dumps(clean(obj), indent=2, sort_keys=True) + "\n"


# ----------------------------------------------------------------------------------------------
# compile time: the model input of the stages that apply a trained segmentation network


def segmentation_network(ctx, port="model") -> RType | None:
    m = ctx.inputs[port]
    if m.head != "segmentation":
        ctx.error("E209", f"`{ctx.stmt.op.name}` needs a trained segmentation network, but this is a {m.describe()}", port=port)
        return None
    coh = ctx.inputs["cohort"]
    dims_ok = coh.dims == m.dims or (m.dims == 2 and coh.dims == 3)   # a 2D net runs slice by slice
    if not dims_ok:
        ctx.error("E210", f"a {m.dims}D network cannot segment {coh.dims}D images of cohort `{coh.cohort}`", port="cohort")
    if coh.channels and m.channels and coh.channels != m.channels:
        ctx.error("E211", f"the network takes {m.channels} channel(s), but cohort `{coh.cohort}` has {coh.channels} image column(s)",
                  port="cohort")
    return m


# ----------------------------------------------------------------------------------------------
# run time


def _channel_columns(df):
    cols = (df.attrs.get("radlang") or {}).get("images")
    if cols:
        return list(cols)
    return ["image"] if "image" in df.columns else [c for c in df.columns if c.startswith("image.")]


def _source_column(df, col):
    return ((df.attrs.get("radlang") or {}).get("columns") or {}).get(col, col)


def load_cases(stage, ctx, df, *, normalize: str, labels: bool, classes: int | None = None, outcome: bool = False):
    """Every case of a cohort table as arrays (normalised), or one RunError naming every bad case."""
    import pandas as pd

    from radlang.backends.executor import RunError
    from radlang.diagnostics import Diagnostic

    cols = _channel_columns(df)
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
            diags.append(Diagnostic("E620", f"`{stage.name}`: case `{cid}`, column `{_source_column(df, col)}`, file `{path}`: {msg}", stage.span,
                                    hint="co-register the channels (and the mask) onto one grid before training"))
        if problems:
            continue
        if labels and case["label"] is None:
            diags.append(Diagnostic("E621", f"`{stage.name}`: case `{cid}` has no mask", stage.span))
            continue
        if labels and classes is not None:
            mx = int(case["label"].max())
            if case["label"].min() < 0 or mx >= classes:
                diags.append(Diagnostic("E622", f"`{stage.name}`: case `{cid}`, column `{_source_column(df, 'mask')}`, file `{row['mask']}`: "
                                        f"label {mx} found, but the network predicts classes 0..{classes - 1}", stage.span,
                                        hint=f"set `out_channels: {mx + 1}` on the network"))
                continue
        case["image"] = normalize_image(case["image"], normalize)
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


def trained_network(model):
    """The torch module of a trained model (a training stage's value): built by its network operator, weights loaded."""
    from radlang import registry

    spec = model["spec"]
    return load_weights(registry.get(spec["arch"]).impl(spec), model["state"])


def inference_params(stage, model):
    """The training settings, with the applying stage's own sliding-window `overlap` when it sets one."""
    p = dict(model["params"])
    if stage.params.get("overlap") is not None:
        p["overlap"] = stage.params["overlap"]
    return p
