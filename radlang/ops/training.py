"""Training and applying MONAI networks; scoring segmentations (Dice + HD95); federated averaging (signature).

    train fit = supervised(net, train) {
      loss: dice_ce                     # dice | dice_ce | focal | cross_entropy
      optimizer: adam, lr: 1e-3, schedule: cosine
      epochs: 40, batch: 2, patch: [32, 32, 32]       # patch in image axis order (x, y, z)
      sampling: pos_neg(pos: 1, neg: 1), samples: 2   # crops centred on / off the mask
      validate_every: 5, validation: 0.2              # keep the best checkpoint (validation Dice)
    }
    segment pred = predict_mask(fit, test)            # label map + one mask per class (habitats)
    validate seg = segmentation_metrics(fit, test)    # Dice and HD95 per case and class -> <out>/metrics/seg.json

Training is deterministic on CPU (seeded from the stage seed); it uses CUDA when `device: auto` finds it
and never needs it. Checkpoints are weights only (state_dict), loaded with `torch.load(weights_only=True)`.
Intensities are z-scored per image and channel (no statistic crosses cases, so nothing leaks).

Every function in the first section is self-contained (see radlang/registry.py); the executor mode
(radlang/backends/modes/deep.py) only caches, shows progress and writes files.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from radlang.ops.networks import build_network
from radlang.registry import Operator, Port, register
from radlang.types import RType
from radlang.values import Settings, Sym, Variant, out_of_range, variants

# ----------------------------------------------------------------------------------------------
# self-contained implementation


def load_case(image_paths, mask_path=None, tolerance=1e-3):
    """Read one case: image channels (co-registered files) stacked as float32 [C, z, y, x], the label map
    as int64 [1, z, y, x] (or None), and the geometry of the first channel. Returns (case, problems):
    problems are (column index or "mask", message) for channels whose geometry differs."""
    import numpy as np
    import SimpleITK as sitk

    def geom(im):
        return im.GetSize(), im.GetSpacing(), im.GetOrigin(), im.GetDirection()

    def same(a, b):
        return a[0] == b[0] and all(np.allclose(x, y, rtol=tolerance, atol=tolerance) for x, y in zip(a[1:], b[1:]))

    def fmt(g):
        return f"size {tuple(g[0])}, spacing {tuple(round(v, 4) for v in g[1])}, origin {tuple(round(v, 3) for v in g[2])}"

    problems, arrays, ref = [], [], None
    for i, p in enumerate(image_paths):
        im = sitk.ReadImage(str(p))
        if ref is None:
            ref = im
        elif not same(geom(im), geom(ref)):
            problems.append((i, f"geometry differs from the first channel: {fmt(geom(im))} vs {fmt(geom(ref))}"))
            continue
        arrays.append(sitk.GetArrayFromImage(im).astype(np.float32))
    label = None
    if mask_path:
        m = sitk.ReadImage(str(mask_path))
        if not same(geom(m), geom(ref)):
            problems.append(("mask", f"mask geometry differs from the image: {fmt(geom(m))} vs {fmt(geom(ref))}"))
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


def make_loss(name, task):
    """The MONAI / torch loss for a task: dice, dice_ce, focal, cross_entropy."""
    import torch
    from monai.losses import DiceCELoss, DiceLoss, FocalLoss

    if task == "classification":
        if name == "focal":
            f = FocalLoss(to_onehot_y=True, use_softmax=True)
            return lambda logits, y: f(logits, y.view(-1, 1))
        ce = torch.nn.CrossEntropyLoss()
        return lambda logits, y: ce(logits, y.view(-1).long())
    if name == "dice":
        return DiceLoss(to_onehot_y=True, softmax=True)
    if name == "dice_ce":
        return DiceCELoss(to_onehot_y=True, softmax=True)
    if name == "focal":
        return FocalLoss(to_onehot_y=True, use_softmax=True)
    ce = torch.nn.CrossEntropyLoss()
    return lambda logits, y: ce(logits, y[:, 0].long())


def sample_patches(image, label, params, seed):
    """Training crops of one case: `pos_neg` centres crops on mask voxels with probability pos/(pos+neg)
    (MONAI RandCropByPosNegLabel), `uniform` anywhere. With `slices`, crops are one slice thick (2D).
    `patch` is in image axis order (x, y, z); arrays are (z, y, x). Returns [(image, label), ...]."""
    import numpy as np
    from monai.transforms import RandCropByPosNegLabel, RandSpatialCropSamples, SpatialPad

    spatial = image.shape[1:]
    if params.get("patch"):
        roi = list(reversed([int(v) for v in params["patch"]]))
    else:
        roi = list(spatial[-2:]) if params["slices"] else list(spatial)
    if params["slices"]:
        roi = [1] + roi[-2:]
    n = int(params["samples"])
    pad = SpatialPad(roi)
    both = pad(np.concatenate([image, label.astype(np.float32)], 0))
    img, lab = both[: image.shape[0]], both[image.shape[0]:]
    s = params["sampling"]
    if s["kind"] == "pos_neg" and lab.max() > 0:
        crop = RandCropByPosNegLabel(spatial_size=roi, pos=float(s["pos"]), neg=float(s["neg"]), num_samples=n)
        crop.set_random_state(seed=int(seed))
        pairs = crop(np.concatenate([img, lab], 0), label=lab)
    else:
        crop = RandSpatialCropSamples(roi_size=roi, num_samples=n, random_size=False)
        crop.set_random_state(seed=int(seed))
        pairs = crop(np.concatenate([img, lab], 0))
    out = []
    c = image.shape[0]
    for p in pairs:
        p = np.asarray(p)
        im, lb = p[:c], p[c:].round().astype(np.int64)
        if params["slices"]:
            im, lb = im[:, 0], lb[:, 0]
        out.append((im.astype(np.float32), lb))
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


def predict_volume(net, image, params, task, device="cpu", mask=None):
    """Softmax probabilities of one case [classes, z, y, x] (segmentation: sliding-window inference over
    `patch` windows with `overlap`, slice by slice when `slices`) or [classes] (classification)."""
    import numpy as np
    import torch
    from monai.inferers import sliding_window_inference

    net.eval()
    with torch.no_grad():
        if task == "classification":
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


def save_weights(state):
    """A state_dict as bytes (torch.save); weights only, loadable with weights_only=True."""
    import io

    import torch

    buf = io.BytesIO()
    torch.save({k: v.detach().cpu().clone() for k, v in state.items()}, buf)
    return buf.getvalue()


def load_weights(net, data):
    import io

    import torch

    net.load_state_dict(torch.load(io.BytesIO(data), map_location="cpu", weights_only=True))
    return net


def train_network(cases, spec, params, seed, task, progress=None):
    """Train a network on cases [{"case", "image" [C, z, y, x], "label" ([1, z, y, x] or class int), "val": bool}].

    Segmentation: each epoch visits the training cases in a seeded order and takes `samples` crops per case
    (`sampling`); classification: one fixed crop per case. Mini-batches of `batch` crops; `optimizer`, `lr`,
    `schedule` (per epoch). Every `validate_every` epochs (if any validation cases) the model is scored on the
    validation cases (segmentation: mean foreground Dice of sliding-window predictions; classification: loss),
    and the best checkpoint is kept. Returns {"state": bytes, "history": [...], "best_epoch": int, ...}."""
    import math

    import numpy as np
    import torch

    torch.manual_seed(int(seed))
    rng = np.random.default_rng(int(seed))
    want = params.get("device", "auto")
    device = "cuda" if want == "auto" and torch.cuda.is_available() else ("cuda" if want == "cuda" else "cpu")
    net = build_network(spec).to(device)
    loss_fn = make_loss(params["loss"], task)
    opt_name, lr, wd = params["optimizer"], float(params["lr"]), float(params["weight_decay"])
    if opt_name == "sgd":
        opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.99, nesterov=True, weight_decay=wd)
    elif opt_name == "adamw":
        opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=wd)
    else:
        opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=wd)
    epochs = int(params["epochs"])
    sched = params["schedule"]
    if sched == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    elif sched == "poly":
        scheduler = torch.optim.lr_scheduler.PolynomialLR(opt, total_iters=epochs, power=0.9)
    elif sched == "step":
        scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, epochs // 3), gamma=0.1)
    else:
        scheduler = None
    train = [c for c in cases if not c["val"]]
    val = [c for c in cases if c["val"]]
    k = int(params.get("_divisor", 1))
    history, best, best_state, best_epoch = [], None, None, epochs
    every = int(params["validate_every"])
    for epoch in range(1, epochs + 1):
        net.train()
        order = rng.permutation(len(train))
        items = []
        for i in order:
            c = train[i]
            if task == "classification":
                items.append((classification_crop(c["image"], c.get("mask"), params["patch"])[0], np.array([c["label"]], dtype=np.int64)))
            else:
                items.extend(sample_patches(c["image"], c["label"], params, int(rng.integers(2**31 - 1))))
        losses = []
        bs = int(params["batch"])
        for b in range(0, len(items), bs):
            chunk = items[b:b + bs]
            xs, ys = [x for x, _ in chunk], [y for _, y in chunk]
            if task != "classification" and not params.get("patch"):
                xs, ys = divisible_pad(xs, k), divisible_pad(ys, k)
            x = torch.from_numpy(np.stack(xs)).to(device)
            y = torch.from_numpy(np.stack(ys)).to(device)
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(x), y)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        if scheduler is not None:
            scheduler.step()
        rec = {"epoch": epoch, "loss": float(np.mean(losses)) if losses else math.nan, "lr": float(opt.param_groups[0]["lr"])}
        if every and val and (epoch % every == 0 or epoch == epochs):
            if task == "classification":
                net.eval()
                with torch.no_grad():
                    xs = np.stack([classification_crop(c["image"], c.get("mask"), params["patch"])[0] for c in val])
                    ys = np.array([[c["label"]] for c in val], dtype=np.int64)
                    score = -float(loss_fn(net(torch.from_numpy(xs).to(device)), torch.from_numpy(ys).to(device)))
                rec["val_loss"] = -score
            else:
                dices = []
                for c in val:
                    prob = predict_volume(net, c["image"], params, task, device)
                    rows = seg_scores(prob.argmax(0), c["label"][0], prob.shape[0], c["geometry"]["spacing"])
                    dices.append(np.mean([r["dice"] for r in rows]))
                score = float(np.mean(dices))
                rec["val_dice"] = score
            if best is None or score > best:
                best, best_epoch = score, epoch
                best_state = save_weights(net.state_dict())
            rec["best_epoch"] = best_epoch
        history.append(rec)
        if progress is not None:
            progress(epoch, epochs, rec)
    state = best_state if best_state is not None else save_weights(net.state_dict())
    return {"state": state, "history": history, "best_epoch": best_epoch if best_state is not None else epochs,
            "device": device, "train_cases": [c["case"] for c in train], "val_cases": [c["case"] for c in val]}


def split_validation(patients, fraction, seed):
    """Patients held out for validation: a seeded fraction (at least one when fraction > 0 and there are ≥ 2)."""
    import numpy as np

    uniq = sorted(set(patients))
    if fraction <= 0 or len(uniq) < 2:
        return set()
    n = min(len(uniq) - 1, max(1, round(fraction * len(uniq))))
    rng = np.random.default_rng(int(seed) + 1)
    return set(np.array(uniq)[rng.permutation(len(uniq))[:n]].tolist())


def write_label_map(labels, geometry, path):
    """Write an int label map (z, y, x) as NIfTI (uint8) in the image's geometry."""
    import numpy as np
    import SimpleITK as sitk

    im = sitk.GetImageFromArray(labels.astype(np.uint8))
    im.SetSpacing([float(v) for v in geometry["spacing"]])
    im.SetOrigin([float(v) for v in geometry["origin"]])
    im.SetDirection([float(v) for v in geometry["direction"]])
    sitk.WriteImage(im, str(path), True)


# ----------------------------------------------------------------------------------------------
# settings


class PosNeg(Variant):
    call_name = "pos_neg"
    positional = ("pos", "neg")
    pos: float = Field(1.0, ge=0, description="weight of crops centred on a mask voxel")
    neg: float = Field(1.0, ge=0, description="weight of crops centred on a background voxel")


class Uniform(Variant):
    call_name = "uniform"


class SupervisedSettings(Settings):
    loss: Literal["dice", "dice_ce", "focal", "cross_entropy"] = Field("dice_ce", description="training loss")
    optimizer: Literal["adam", "adamw", "sgd"] = Field("adam", description="optimiser")
    lr: float = Field(1e-3, gt=0, le=10, description="learning rate")
    weight_decay: float = Field(0.0, ge=0, description="weight decay")
    schedule: Literal["constant", "cosine", "poly", "step"] = Field("constant", description="learning-rate schedule (per epoch)")
    epochs: int = Field(50, ge=1, le=100000, description="epochs")
    batch: int = Field(2, ge=1, le=4096, description="crops per optimisation step")
    patch: list[int] | None = Field(None, description="crop size in voxels, image axis order (x, y, z); default: the whole image")
    sampling: Annotated[PosNeg | Uniform, variants(PosNeg, Uniform)] = Field(
        default_factory=PosNeg, description="`pos_neg(pos, neg)`: crops around the mask; `uniform`: anywhere")
    samples: int = Field(1, ge=1, le=256, description="crops per case per epoch")
    slices: bool = Field(False, description="train a 2D network slice by slice on 3D volumes")
    normalize: Literal["zscore", "none"] = Field("zscore", description="per-image, per-channel intensity normalisation")
    validate_every: int = Field(0, ge=0, description="score the validation cases every N epochs and keep the best checkpoint (0 = never)")
    validation: float = Field(0.2, ge=0, lt=1, description="fraction of training patients held out for validation")
    overlap: float = Field(0.25, ge=0, lt=1, description="sliding-window overlap at inference")
    sw_batch: int = Field(4, ge=1, description="windows per sliding-window batch")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA when available, else CPU")

    @field_validator("patch")
    @classmethod
    def _patch(cls, v):
        if v is not None and (not 2 <= len(v) <= 3 or any(x < 4 for x in v)):
            raise out_of_range("`patch` lists 2 or 3 sizes of at least 4 voxels")
        return v


def _divisor(spec) -> int:
    p = spec["params"]
    if spec["arch"] in ("unet", "attention_unet"):
        k = 1
        for s in p["strides"]:
            k *= int(s)
        return k
    if spec["arch"] == "segresnet":
        return 2 ** (len(p["blocks_down"]) - 1)
    return 1


def _train_type(ctx) -> RType:
    net, coh, s = ctx.inputs["net"], ctx.inputs["cohort"], ctx.settings
    data_dims = 2 if s.slices else coh.dims
    if s.slices and coh.dims != 3:
        ctx.error("E210", "`slices: true` trains slice by slice on 3D volumes, but the cohort's images are 2D", setting="slices")
    elif net.dims == 3 and coh.dims == 2:
        ctx.error("E210", f"a 3D network ({net.detail}) cannot train on 2D images of cohort `{coh.cohort}`",
                  port="net", hint="use `dims: 2` on the network")
    elif s.slices and net.dims == 3:
        ctx.error("E210", "`slices: true` feeds 2D slices, but the network is 3D", port="net", hint="use `dims: 2` on the network")
    elif net.dims == 2 and coh.dims == 3 and not s.slices:
        ctx.error("E210", "a 2D network on 3D volumes", port="net", hint="add `slices: true` to train slice by slice, or use `dims: 3`")
    if coh.channels and net.channels and coh.channels != net.channels:
        ctx.error("E211", f"the network takes {net.channels} input channel(s), but cohort `{coh.cohort}` has {coh.channels} image column(s)",
                  port="net", hint=f"set `in_channels: {coh.channels}` on the network, or list {net.channels} image column(s) in the cohort")
    if s.patch is not None and len(s.patch) != data_dims:
        ctx.error("E306", f"`patch` has {len(s.patch)} sizes, but the network sees {data_dims}D data", setting="patch")
    if net.task == "segmentation":
        if not coh.has_mask:
            ctx.error("E203", f"training a segmentation network needs masks, but cohort `{coh.cohort}` has no mask column",
                      port="cohort", hint="add `mask: <column>` to the cohort")
    else:
        if coh.outcome not in ("binary", "multiclass"):
            ctx.error("E212", f"a classification network needs a binary or multiclass outcome; cohort `{coh.cohort}` has "
                      + (f"a {coh.outcome} outcome" if coh.outcome else "no outcome"), port="cohort")
        if s.loss in ("dice", "dice_ce"):
            ctx.error("E306", f"`{s.loss}` is a segmentation loss; a classification network trains with `cross_entropy` or `focal`", setting="loss")
        if s.patch is None:
            ctx.error("E305", "a classification network needs a fixed input size: set `patch` (cases are cropped around the mask)",
                      setting="patch")
        if s.slices:
            ctx.error("E306", "`slices` applies to segmentation", setting="slices")
    return RType("TrainedModel", cohort=coh.cohort, outcome=coh.outcome if net.task == "classification" else None, dims=net.dims,
                 channels=net.channels, task=net.task, classes=net.classes, has_mask=coh.has_mask, detail=f"trained {net.detail}")


def _human(n):
    for u in ("B", "KB", "MB", "GB"):
        if n < 1024 or u == "GB":
            return f"{n:.0f} {u}" if u == "B" else f"{n:.1f} {u}"
        n /= 1024


def _train_plan(stage, memory, study=None):
    from radlang.ops.networks import network_estimates, receptive_field

    if study is None:
        return []
    net_stage = study.by_name().get(stage.inputs["net"].stage)
    if net_stage is None:
        return []
    spec = {"arch": net_stage.op, "params": net_stage.params}
    p = stage.params
    dims = int(spec["params"]["dims"])
    lines = []
    if not p.get("patch"):
        lines.append(("info", "no `patch`: trains on whole images; set `patch` for a memory estimate"))
        return lines
    patch = list(reversed([int(v) for v in p["patch"]]))[-dims:]
    k = _divisor(spec)
    if any(v % k for v in patch):
        lines.append(("warning", (f"patch {p['patch']} is not divisible by {k} (the network's total downsampling); "
                                 f"use multiples of {k}")))
        return lines
    try:
        est = network_estimates(spec, patch, int(p["batch"]), p["optimizer"])
    except ImportError:
        return [("info", "install torch and monai for memory estimates")]
    except RuntimeError as e:
        if "smaller than kernel size" not in str(e):
            raise
        lines.append(("warning", (f"patch {p['patch']} is too small for {spec['arch']}: its feature maps shrink below a "
                                 "kernel before the last layer, so training would fail; use a larger patch "
                                 "(DenseNet and ResNet downsample by 32)")))
        return lines
    rf = receptive_field(spec)
    shape = "x".join(str(v) for v in p["patch"])
    lines.append(("info", f"{dims}D {spec['arch']}: {est['params']:,} parameters; receptive field "
                  + ("global" if rf is None else "x".join(map(str, rf)) + " voxels") + f" vs patch {shape}"))
    lines.append(("info", (f"training memory ≈ {_human(est['train_bytes'])} for batch {p['batch']} x patch {shape} "
                          f"(activations kept for backward {_human(est['saved_bytes'])})")))
    if memory is not None and est["train_bytes"] > memory:
        lines.append(("warning", (f"the training estimate {_human(est['train_bytes'])} exceeds the memory budget {_human(memory)}: "
                                 "lower `batch` or `patch`, or narrow the network")))
    return lines


register(Operator(
    name="supervised", kind="train", output="TrainedModel", settings=SupervisedSettings, fit="outcome", mode="train_network",
    inputs=(Port("net", ("Network",), doc="a `network` stage"), Port("cohort", ("Cohort",), doc="the training cohort")),
    positional=("net", "cohort"), infer=_train_type, impl=train_network, plan=_train_plan, version="1", sink=True,
    helpers=(build_network, load_case, normalize_image, make_loss, sample_patches, classification_crop, divisible_pad,
             predict_volume, seg_scores, save_weights, load_weights, split_validation, _divisor, metrics_json),
    doc=("Supervised training of a MONAI network on a cohort: segmentation (masks; pos/neg crops, 2D slice-wise or 3D) "
         "or classification (binary / multiclass outcome). Deterministic on CPU; best checkpoint by validation; weights only."),
    examples=("train fit = supervised(net, train) { loss: dice_ce, epochs: 40, batch: 2, patch: [32, 32, 32], validate_every: 5 }",),
))


# ----------------------------------------------------------------------------------------------
# applying a trained segmentation network


class PredictSettings(Settings):
    label: int | None = Field(None, ge=1, description="emit only this class as a binary mask (ROI = 1), e.g. one habitat")
    overlap: float | None = Field(None, ge=0, lt=1, description="sliding-window overlap (default: the training stage's)")


def _seg_model(ctx, port="model"):
    m = ctx.inputs[port]
    if m.task != "segmentation":
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


def _predict_type(ctx) -> RType:
    m = _seg_model(ctx)
    coh = ctx.inputs["cohort"]
    s = ctx.settings
    if m is not None and s.label is not None and m.classes and s.label >= m.classes:
        ctx.error("E302", f"label {s.label} does not exist: the network predicts classes 0..{m.classes - 1}", setting="label")
    classes = 2 if s.label is not None else (m.classes if m else None)
    return RType("Mask", cohort=coh.cohort, dims=coh.dims, channels=1, classes=classes, detail=f"{ctx.stmt.name} (network)")


register(Operator(
    name="predict_mask", kind="segment", output="Mask", settings=PredictSettings, mode="predict_mask",
    inputs=(Port("model", ("TrainedModel",), doc="a `train` stage of a segmentation network"), Port("cohort", ("Cohort",))),
    positional=("model", "cohort"), infer=_predict_type, impl=predict_volume, version="1", sink=True,
    helpers=(build_network, load_case, normalize_image, classification_crop, load_weights, write_label_map),
    doc=("Segment a cohort with a trained network (sliding-window inference). Writes <out>/masks/<stage>/<case>.nii.gz "
         "(label map in the image geometry) and, for several classes, <case>_class<k>.nii.gz per class (habitats); "
         "`label: k` makes the stage a binary ROI for `features`."),
    examples=("segment pred = predict_mask(fit, test)", "segment necrosis = predict_mask(fit, test) { label: 2 }"),
))


# ----------------------------------------------------------------------------------------------
# Dice + HD95


class SegMetricsSettings(Settings):
    overlap: float | None = Field(None, ge=0, lt=1, description="sliding-window overlap (default: the training stage's)")


def _segmetrics_type(ctx) -> RType:
    m = _seg_model(ctx)
    coh = ctx.inputs["cohort"]
    if not coh.has_mask:
        ctx.error("E203", f"scoring a segmentation needs reference masks, but cohort `{coh.cohort}` has no mask column", port="cohort")
    if m is not None and m.cohort and m.cohort == coh.cohort:
        ctx.error("E503", f"`{ctx.stmt.name}` scores the network on `{coh.cohort}`, the cohort it was trained on", port="cohort",
                  hint="score on held-out cases: a separate test cohort")
    return RType("Evaluation", cohort=coh.cohort, dims=coh.dims, detail="Dice + HD95")


register(Operator(
    name="segmentation_metrics", kind="validate", output="Evaluation", settings=SegMetricsSettings, mode="segmentation_metrics",
    inputs=(Port("model", ("TrainedModel",), doc="a `train` stage of a segmentation network"),
            Port("cohort", ("Cohort",), doc="held-out cases with reference masks")),
    positional=("model", "cohort"), infer=_segmetrics_type, impl=seg_scores, sink=True, version="1",
    helpers=(build_network, load_case, normalize_image, classification_crop, load_weights, predict_volume, summarize_scores, metrics_json),
    doc=("Dice and the 95th-percentile Hausdorff distance (mm), MONAI's metrics, per case and per class, of a trained "
         "network's sliding-window segmentation of held-out cases. Writes <out>/metrics/<stage>.json."),
    examples=("validate seg = segmentation_metrics(fit, test)",),
))


# ----------------------------------------------------------------------------------------------
# federated averaging: the signature (and its checks); execution is not available in this version


class FedAvgSettings(Settings):
    by: str = Field("site", description="the cohort attribute that defines the federation's nodes (only `site`)")
    rounds: int = Field(20, ge=1, description="communication rounds")
    local_epochs: int = Field(1, ge=1, description="local epochs per round")
    loss: Literal["dice", "dice_ce", "focal", "cross_entropy"] = Field("dice_ce")
    lr: float = Field(1e-3, gt=0)
    batch: int = Field(2, ge=1)
    patch: list[int] | None = None

    @field_validator("by", mode="before")
    @classmethod
    def _by(cls, v):
        return str(v) if isinstance(v, Sym) else v


def _fed_type(ctx) -> RType:
    net, coh, s = ctx.inputs["net"], ctx.inputs["cohort"], ctx.settings
    if s.by != "site":
        ctx.error("E306", f"`by: {s.by}`: federated nodes are defined by the cohort's `site`", setting="by", hint="write `by: site`")
    if not coh.has_site:
        ctx.error("E203", f"federated training needs sites, but cohort `{coh.cohort}` has no site column", port="cohort",
                  hint=f"add `site: <column>` to cohort `{coh.cohort}`")
    if coh.channels and net.channels and coh.channels != net.channels:
        ctx.error("E211", f"the network takes {net.channels} channel(s), but cohort `{coh.cohort}` has {coh.channels} image column(s)", port="net")
    if net.dims == 3 and coh.dims == 2:
        ctx.error("E210", "a 3D network cannot train on 2D images", port="net")
    ctx.error("W690", "federated execution is not available in this version: the stage is checked and planned, "
              "but `radlang run` stops at it", hint="train with `supervised` on the pooled cohort meanwhile")
    return RType("TrainedModel", cohort=coh.cohort, outcome=coh.outcome, dims=net.dims, channels=net.channels, task=net.task,
                 classes=net.classes, has_site=True, detail=f"federated {net.detail}")


register(Operator(
    name="fedavg", kind="federate", output="TrainedModel", settings=FedAvgSettings, fit="outcome", mode="federated",
    inputs=(Port("net", ("Network",)), Port("cohort", ("Cohort",), doc="a cohort with a `site` column")),
    positional=("net", "cohort"), infer=_fed_type, version="1",
    doc=("Federated averaging across the cohort's sites (signature and checks only: running it reports that "
         "federated execution is not available in this version)."),
    examples=("federate fed = fedavg(net, glioma) { by: site, rounds: 20, local_epochs: 2 }",),
))
