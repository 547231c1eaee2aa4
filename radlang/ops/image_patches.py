"""`patches`: the images of a cohort as a feature table of voxels, the input of a network model (radlang/ops/net_models.py).

    features img  = patches(train) { patch: [16, 16, 16], spacing: [1mm, 1mm, 1mm] }              # 3D crop around the ROI
    features sl   = patches(train) { dims: 2, patch: [32, 32], crop: whole }                        # the central axial slice
    features both = patches(train) { patch: [16, 16, 16], mask_channel: true }                      # image + mask as channels
    features mip  = patches(train) { dims: 2, patch: [16, 16], slices: mip }                        # a 3D volume's stated reduction
    features seg  = patches(train) { patch: [16, 16, 16], mask_target: true }                       # + the mask's crop: a target

Each case is read (every image column of the cohort is one channel: several co-registered sequences are stacked,
early fusion; channels and mask must share one grid), resampled to `spacing` (linear for images, nearest for the
mask), z-scored per image and channel (`normalize`; no statistic crosses cases, so nothing leaks), and cropped to a
fixed `patch` size: centred on the mask's bounding box (`crop: roi`) or on the image centre (`crop: whole`), zero outside
the image. With `dims: 2` a 3D volume is reduced to one axial slice by `slices` (`reduce_to_slice`): `center`, the slice
through the middle of the ROI's z-extent (the default); `max_area`, the ROI's largest cross-section; `mip`, the maximum
intensity projection over the ROI's z-extent. A join that fuses such a slice with another image branch needs `slices`
stated (E350), and a 2D branch cannot be fused with a 3D one (E253). Each voxel is one column,
`voxel:<channel>:<z>:<y>:<x>` (2D: `voxel:<channel>:<y>:<x>`), so the table joins, folds and caches like any
feature table; a network model reshapes the columns back to [channels, *size] (the image branches of a join, of one
patch size, stacked as channels). `mask_target: true` adds the mask's crop as `mask:<z>:<y>:<x>` columns: a
segmentation head's target (radlang/ops/multitask.py), never a network input.

`patch_case` and `patch_table` are self-contained (see radlang/registry.py); `patches_on_cohort` is the run-time glue.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from radlang.ops.netio import classification_crop, grid_mismatch, load_case, normalize_image
from radlang.registry import Operator, Port, register
from radlang.types import RType
from radlang.units import Length
from radlang.values import Settings, Sym, contradiction

# ----------------------------------------------------------------------------------------------
# self-contained implementation


def patch_case(image_paths, mask_path, params):
    """One case's fixed-size input [C, *size] (array axis order: z, y, x) and its problems: (column index or "mask",
    message) for channels or a mask on another grid, or ("mask", ...) for `crop: roi` without a mask."""
    import numpy as np
    from scipy.ndimage import zoom

    case, problems = load_case(image_paths, mask_path)
    if problems:
        return None, problems
    image, label = case["image"], case["label"]
    if params["crop"] == "roi" and (label is None or label.max() <= 0):
        return None, [("mask", "`crop: roi` needs a mask with a region of interest")]
    if params.get("spacing"):
        have = case["geometry"]["spacing"]
        factors = [float(h) / float(w) for h, w in zip(reversed(have), reversed(params["spacing"][:len(have)]))]
        if any(abs(f - 1.0) > 1e-9 for f in factors):
            image = np.stack([zoom(ch, factors, order=1, mode="nearest") for ch in image]).astype(np.float32)
            if label is not None:
                label = zoom(label[0], factors, order=0, mode="nearest")[None]
    image = normalize_image(image, params["normalize"])
    if int(params["dims"]) == 2 and image.ndim == 4:
        image, label = reduce_to_slice(image, label, params.get("slices") or "center")
    centre_on = label if params["crop"] == "roi" else None
    crop, _ = classification_crop(image, centre_on, params["patch"])
    if params["mask_channel"] or params.get("mask_target"):
        if label is None:
            return None, [("mask", f"`{'mask_channel' if params['mask_channel'] else 'mask_target'}: true` needs a mask")]
        mcrop, _ = classification_crop((label > 0).astype(np.float32), centre_on, params["patch"])
        if params["mask_channel"]:
            crop = np.concatenate([crop, mcrop], 0)
        if params.get("mask_target"):     # the ROI mask of the same crop: a segmentation head's target, never an input
            return (crop, mcrop), []
    return crop, []


def reduce_to_slice(image, label, how):
    """A 3D volume [C, z, y, x] (and its mask [1, z, y, x] or None) reduced to one axial slice [C, y, x]: `center`, the
    slice through the middle of the ROI's z-extent (of the volume without a ROI); `max_area`, the slice where the ROI
    has the most voxels (the lowest such z on a tie); `mip`, the maximum intensity projection along z over the ROI's
    z-extent (the whole volume without a ROI), with the mask projected the same way."""
    import numpy as np

    zs = np.argwhere(label[0] > 0)[:, 0] if label is not None and label.max() > 0 else None
    if how == "mip":
        lo, hi = (int(zs.min()), int(zs.max()) + 1) if zs is not None else (0, image.shape[1])
        return image[:, lo:hi].max(1), (label[:, lo:hi].max(1) if label is not None else None)
    if zs is None:
        z = image.shape[1] // 2
    elif how == "max_area":
        z = int(np.argmax((label[0] > 0).sum(axis=(1, 2))))
    else:
        z = int((zs.min() + zs.max()) // 2)
    return image[:, z], (label[:, z] if label is not None else None)


def patch_table(crops, case_ids):
    """Crops [C, *size] of every case -> a feature table, one column per voxel (`voxel:<c>:<z>:<y>:<x>`), indexed by
    case_id. A crop given as (image crop, mask crop [1, *size]) adds the mask's voxels as `mask:<z>:<y>:<x>` columns."""
    import numpy as np
    import pandas as pd

    parts = [c if isinstance(c, tuple) else (c,) for c in crops]
    shape = parts[0][0].shape if parts else ()
    names = ["voxel:" + ":".join(str(i) for i in idx) for idx in np.ndindex(*shape)]
    if parts and len(parts[0]) == 2:
        names += ["mask:" + ":".join(str(i) for i in idx) for idx in np.ndindex(*shape[1:])]
    data = np.stack([np.concatenate([a.reshape(-1) for a in p]) for p in parts]).astype(np.float64) if parts else np.zeros((0, len(names)))
    return pd.DataFrame(data, columns=names, index=pd.Index([str(c) for c in case_ids], name="case_id"))


# ----------------------------------------------------------------------------------------------
# run time


def patches_on_cohort(ctx, stage, cohort_df, perturb=None):
    """The stage's voxel table for any cohort table (its own, an external one, new cases for `radlang predict`)."""
    from radlang.backends.executor import RunError
    from radlang.diagnostics import Diagnostic
    from radlang.ops.netio import _channel_columns, _source_column

    if perturb:
        raise RunError([Diagnostic("E646", f"`{stage.name}` (image patches) cannot be re-extracted under {perturb}", stage.span)])
    cols = _channel_columns(cohort_df)
    crops, ids, diags = [], [], []
    for _, row in cohort_df.iterrows():
        cid = str(row["case_id"])
        mask = row.get("mask") if "mask" in cohort_df.columns else None
        mask = mask if isinstance(mask, str) and mask else None
        for c in cols:
            ctx.hash_input(row[c])
        try:
            crop, problems = patch_case([row[c] for c in cols], mask, stage.params)
        except (RuntimeError, OSError) as e:   # an unreadable file (SimpleITK raises RuntimeError)
            diags.append(Diagnostic("E602", f"`{stage.name}`: case `{cid}`: cannot read its images: {e}", stage.span))
            continue
        for where, msg in problems:
            col = "mask" if where == "mask" else cols[where]
            path = mask if where == "mask" else row[col]
            code, hint = ("E665", "give every case a mask with its region of interest, or use `crop: whole`") if "needs a mask" in msg else \
                ("E620", "co-register the channels (and the mask) onto one grid")
            diags.append(Diagnostic(code, f"`{stage.name}`: case `{cid}`, column `{_source_column(cohort_df, col)}`, file `{path}`: {msg}",
                                    stage.span, hint=hint))
        if crop is not None and not problems:
            crops.append(crop)
            ids.append(cid)
    if diags:
        raise RunError(diags)
    return patch_table(crops, ids)


def patches_check_facts(st, bound, stages, facts, diags):
    """`radlang check`: each case's image channels and mask (those a manifest lists: the files `check` found) lie on
    one grid, the run's E620 found before anything runs. Only the headers are read (SimpleITK's ReadImageInformation
    through read_image_header: no voxel), and only for a cohort with more than one file per case. A file whose header
    cannot be read is left to the run (E602, E650 name it)."""
    from radlang.diagnostics import Diagnostic
    from radlang.ops.cohorts import read_image_header

    cohort = stages[st.inputs["cohort"].stage]
    fact = facts.get(cohort.name) or {}
    p = cohort.params
    images = p.get("image") if isinstance(p.get("image"), list) else [p.get("image")]
    columns = [c for c in images + [p.get("mask")] if c and c in fact.get("paths", {})]
    if len(columns) < 2:
        return
    bad = []
    for k, cid in enumerate(fact["ids"]):
        ref = None
        for c in columns:
            path = fact["paths"][c][k]
            if not path or "#" in path:      # an RTSTRUCT ROI or SEG segment is rasterised onto the image's own grid
                continue
            try:
                geom = read_image_header(path)
            except (RuntimeError, OSError, ValueError):
                continue
            if ref is None:
                ref = geom
            elif (msg := grid_mismatch(geom, ref)) is not None:
                what = "mask" if c == p.get("mask") else "channel"
                bad.append(f"case `{cid}`, column `{c}`, file `{path}`: {what} geometry differs from column `{columns[0]}`'s: {msg}")
    if bad:
        more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
        diags.append(Diagnostic("E620", f"`{st.name}`: {len(bad)} image(s) of cohort `{cohort.name}` are not on their case's grid{more}: "
                                + "; ".join(bad[:5]), st.span,
                                hint="co-register the channels and the mask onto one grid before cutting patches"))


def run_patches(stage, ctx):
    from radlang import registry
    from radlang.backends.cache import key
    from radlang.backends.glue import table_key

    op = registry.get(stage.op)
    feats = patches_on_cohort(ctx, stage, ctx.results[stage.inputs["cohort"].stage])
    ctx.keys[stage.name] = key("patches", op.version, stage.params, ctx.keys.get(stage.inputs["cohort"].stage), table_key(feats))
    return feats


# ----------------------------------------------------------------------------------------------
# declaration


class PatchSettings(Settings):
    patch: list[Annotated[int, Field(ge=1, le=512)]] = Field(description="crop size in voxels, image axis order (x, y[, z])",
                                                              min_length=2, max_length=3)
    dims: Literal[2, 3] = Field(3, description="3: a volume crop; 2: an axial slice (of a 3D volume: reduced by `slices`)")
    slices: Literal["center", "max_area", "mip"] | None = Field(
        None, description=("`dims: 2` of a 3D volume: the stated reduction to one slice: the ROI's middle slice (`center`, "
                           "the default), its largest cross-section (`max_area`), or the maximum intensity projection over "
                           "its z-extent (`mip`); fusing the slice with another image branch needs it stated"))
    spacing: list[Annotated[Length, Field(gt=0)]] | None = Field(None, min_length=2, max_length=3,
                                                                 description="resample to this voxel spacing (x, y[, z]) first")
    crop: Literal["roi", "whole"] = Field("roi", description="centre the crop on the mask's bounding box (`roi`) or the image (`whole`)")
    mask_channel: bool = Field(False, description="add the mask as the last channel (image + mask early fusion)")
    mask_target: bool = Field(False, description=("add the mask's crop as `mask:` columns: the target of a segmentation head "
                                                  "(`multitask`), never a network input"))
    normalize: Literal["zscore", "none"] = Field("zscore", description="intensity normalisation per image and channel")

    _s = field_validator("crop", "normalize", "slices", mode="before")(lambda cls, v: str(v) if isinstance(v, Sym) else v)

    @model_validator(mode="after")
    def _dims(self):
        if len(self.patch) != self.dims:
            raise contradiction(f"`patch` needs {self.dims} entries for `dims: {self.dims}` (got {len(self.patch)})")
        if self.slices is not None and self.dims == 3:
            raise contradiction(f"`slices: {self.slices}` reduces a volume to one slice, but `dims: 3` keeps the volume")
        return self


def _patches_type(ctx) -> RType:
    c = ctx.inputs["cohort"]
    s = ctx.settings
    if c.dims == 2 and s.dims == 3:
        ctx.error("E251", f"cohort `{c.cohort}` has 2D images; a 3D crop cannot be cut from them", setting="dims", hint="use `dims: 2`")
    if (s.crop == "roi" or s.mask_channel or s.mask_target) and not c.has_mask:
        what = "centre the crop on" if s.crop == "roi" else ("add as a channel" if s.mask_channel else "crop as a segmentation target")
        ctx.error("E252", f"cohort `{c.cohort}` has no mask to {what}",
                  setting="crop" if s.crop == "roi" else ("mask_channel" if s.mask_channel else "mask_target"),
                  hint="use `crop: whole`, or give the cohort a mask column")
    if c.dims == 2 and s.slices is not None:
        ctx.error("E352", f"cohort `{c.cohort}` has 2D images: there is no volume for `slices: {s.slices}` to reduce", setting="slices",
                  hint="remove `slices`")
    channels = (c.channels or 1) + (1 if s.mask_channel else 0)
    size = "x".join(map(str, s.patch))
    # 2D patches of 3D volumes: the reduction to a slice, stated or not (a fusion with another image branch needs it stated)
    reduction = (s.slices or "unstated") if s.dims == 2 and c.dims != 2 else None
    how = f", {s.slices} slice" if reduction and s.slices else ""
    return RType("Features", cohort=c.cohort, outcome=None, dims=s.dims, channels=channels, patch=tuple(s.patch), reduction=reduction,
                 has_mask=s.mask_target,    # a patch table: it holds the mask's crop as a segmentation target
                 detail=f"{s.dims}D image patches {size}, {channels} channel(s){how}" + (" + mask target" if s.mask_target else ""))


register(Operator(
    name="patches", kind="features", output="Features", settings=PatchSettings, positional=("cohort",),
    inputs=(Port("cohort", ("Cohort",), doc="a cohort with images (every image column is one channel)"),),
    behaviour="stateless", run=run_patches, on_cohort=patches_on_cohort, check_facts=patches_check_facts, impl=patch_case,
    helpers=(grid_mismatch, load_case, normalize_image, classification_crop, reduce_to_slice, patch_table),
    infer=_patches_type,
    doc="Fixed-size image crops (around the ROI or the image centre, resampled to a stated spacing, 2D or 3D; a 3D volume "
        "reduced to one slice by a stated `slices`: middle, largest cross-section or maximum intensity projection) as a feature "
        "table of voxels: the image input of a network model (`cnn`, `multitask`), with the mask's crop as a segmentation "
        "target (`mask_target`).",
    examples=("features img = patches(train) { patch: [16, 16, 16], spacing: [1mm, 1mm, 1mm] }",
              "features sl = patches(train) { dims: 2, patch: [24, 24], crop: whole }",
              "features proj = patches(train) { dims: 2, patch: [16, 16], slices: mip, mask_target: true }"),
))
