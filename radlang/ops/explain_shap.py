"""SHAP explanations of a validation stage's final model (a scikit-learn pipeline or a network model), with `shap`.

    explain why = shap(v) { explainer: partition, max_evals: 500, group_by: [family, filter] }
    explain where = shap(fused) { explainer: partition, max_evals: 100, regions: [2, 2, 2], background: 8, cases: 8 }

What is explained: the final model that `evaluate` saved (models/<v>.skops, refit on every training case), as a
function of the feature columns it keeps (the columns its selectors kept; when its steps are not plain column
selections, every input column), on the training cohort's cases. The output is the probability of the positive
class (binary outcomes) or the predicted risk / value; `output: log_odds` explains the logistic margin instead.

The explainer is named, never chosen automatically, and its budget is bounded by `max_evals`:

- `partition` (default): Owen values over a feature hierarchy. Radiomic features are strongly collinear (a
  wavelet or LoG family measures one thing many times), so the hierarchy is a clustering of the features on the
  training cases (complete linkage on 1 - |Pearson r|), and a Partition masker over the background cases.
- `permutation`: sampled Shapley values (antithetic permutations, seeded) with an Independent masker;
  `max_evals` must be at least 2 x features + 1.
- `exact`: exact Shapley values with an Independent masker (2^features evaluations: at most 16 features, and
  `max_evals` at least 2^features).
- `linear`: the closed form of a linear model, phi_i = beta_i (x_i - mean x_i) over an Independent masker, for
  a pipeline whose margin is affine in its features (impute, selection, scaling, then logistic or Cox);
  verified on the training cases.

The background is `background` training cases drawn with the stage's seed (default: every training case).
With `per_fold: true`, each training fold's model is refit as the validation fit it and explained on its held-out
cases, with its background and hierarchy from that fold's training cases only (shap_folds.csv, long format:
repeat, fold, case, feature, value; shap.json's `folds`: mean |SHAP| and in how many folds each feature was kept).
Grouped values sum the members of a group (`group_by`): `family` (the PyRadiomics feature class: firstorder,
glcm, ...), `filter` (original, wavelet, log, ...) or `image_type` (wavelet-LLH, log-sigma-2-0-mm-3D, ...),
from PyRadiomics names `<image type>_<class>_<feature>`; other columns (clinical ones) form the group `other`.

Networks (`cnn`, intermediate fusion: `cnn` on patches joined with a tabular branch, `dann`, and `multitask`'s
primary head: binary probability or logit margin, or a survival head's log relative hazard) are explained on their
own inputs. The features are the image regions, each channel cut into `regions` blocks per axis (x, y[, z], like
a patch; default 2), named `<channel>@x0-8_y0-8_z0-8` (half-open voxel ranges of the patch), then the tabular
branch's columns. A case's game gives a set S of present features the mean, over the background cases, of the
network's output on the case with the features outside S taken from the background case (shap's Independent
masker, for whole regions): so sum_i phi_i = f(x) - mean f(background) holds exactly for `exact`, `permutation`
and `partition`. shap's explainers run on that game with a single all-absent masker row; `partition` uses a
spatial hierarchy: a block's channels merge first, then blocks by halving the grid along its longest axis (as
shap.maskers.Image splits a 2D image; that masker itself takes 2D height x width x channel images only, not 3D
patches), then the image joins the tabular branch (its correlation clustering). The background is at most
NETWORK_BACKGROUND training cases unless `background` says otherwise: one explained case costs `max_evals` x
background forward passes. `linear` is refused (E282): a network is not linear in its inputs.

Outputs under <out>/explain/<stage>/: shap_values.csv (case, base value, model output, one column per feature),
shap_<grouping>.csv, shap.json (settings, features, clustering, mean |SHAP| per feature and group, the largest
efficiency error; for a network, `network`: its channels, regions and image and tabular features), and PNGs
beeswarm.png, bar.png, beeswarm_<grouping>.png, bar_<grouping>.png. A network's values are always grouped by
`channel` too (each channel's regions; the tabular branch as `tabular`); by `family`, `filter` or `image_type`
the image is one group `image`. Its beeswarm colours a region by its mean input intensity, and regions.png draws
the first cases' central slices with their regions' values over them, in the manner of shap.image_plot.

A `train` stage's network is E281 (Grad-CAM explains it); so is a `stack` with a network branch (its voxel columns
would be single features: explain each branch's own evaluation) and an outcome SHAP cannot explain (multiclass).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from radlang.ops.netio import batched_outputs
from radlang.registry import Operator, Port, register
from radlang.types import RType
from radlang.values import Settings

# ----------------------------------------------------------------------------------------------
# self-contained implementation

def feature_groups(names, by):
    """{group: [member names]} of feature columns, by `family` (feature class), `filter` (image filter) or
    `image_type` (filter with its parameters), parsed from PyRadiomics names `<image type>_<class>_<feature>`
    (a `<table>.` prefix is allowed); a column that is not a PyRadiomics feature goes to the group `other`."""
    import re

    classes = ("shape2D", "shape", "firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm")   # PyRadiomics feature classes
    pattern = re.compile(r"^(?:.*\.)?([A-Za-z0-9-]+)_(" + "|".join(classes) + r")_(.+)$")
    groups: dict[str, list[str]] = {}
    for n in names:
        m = pattern.match(str(n))
        if m is None:
            g = "other"
        elif by == "family":
            g = m.group(2)
        elif by == "filter":
            g = m.group(1).split("-", 1)[0]
        else:
            g = m.group(1)
        groups.setdefault(g, []).append(str(n))
    return dict(sorted(groups.items()))


def grouped_values(values, names, groups):
    """(n cases x groups) array: each group's value is the sum of its members' values."""
    import numpy as np

    col = {n: i for i, n in enumerate(names)}
    return np.column_stack([np.asarray(values)[:, [col[m] for m in members]].sum(axis=1) for members in groups.values()])


def network_groups(image_features, tabular_features, by):
    """{group: [member names]} of a network's features: by `channel`, each channel's regions (named `<channel>@...`)
    and the tabular branch as `tabular`; by `family`, `filter` or `image_type`, the image regions as `image` and the
    tabular columns as feature_groups groups them."""
    groups: dict[str, list[str]] = {}
    if by == "channel":
        for n in image_features:
            groups.setdefault(str(n).split("@", 1)[0], []).append(str(n))
        if tabular_features:
            groups["tabular"] = [str(n) for n in tabular_features]
        return groups
    groups["image"] = [str(n) for n in image_features]
    for g, members in feature_groups(tabular_features, by).items():
        groups.setdefault(g, []).extend(members)
    return groups


def feature_clustering(train):
    """A hierarchy of the features from the training cases (n x k): complete linkage on 1 - |Pearson r| (a constant
    feature is at distance 1 from every other). A scipy linkage matrix, as shap's Partition masker takes it."""
    import numpy as np
    from scipy.cluster.hierarchy import linkage
    from scipy.spatial.distance import squareform

    X = np.asarray(train, dtype=float)
    k = X.shape[1]
    if k < 2:
        return np.zeros((0, 4))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.corrcoef(X, rowvar=False)
    d = 1.0 - np.abs(np.nan_to_num(r, nan=0.0))
    np.fill_diagonal(d, 0.0)
    return linkage(squareform(np.clip((d + d.T) / 2, 0.0, 1.0), checks=False), method="complete")


def linear_coefficients(f, x0):
    """(coefficients, intercept) of a function that is affine in its k inputs, from its values at x0 and at x0 plus
    each unit vector."""
    import numpy as np

    x0 = np.asarray(x0, dtype=float)
    k = x0.shape[0]
    pts = np.vstack([x0, x0 + np.eye(k)])
    v = np.asarray(f(pts), dtype=float)
    coef = v[1:] - v[0]
    return coef, float(v[0] - coef @ x0)


def shap_explain(f, X, background, train, explainer, max_evals, seed):
    """SHAP values of f (rows of k features -> one output each) at the rows of X: (values n x k, base values n,
    f(X)). `background` is the masker's data, `train` the training cases the Partition hierarchy is computed on."""
    import numpy as np
    import shap

    X = np.asarray(X, dtype=float)
    bg = np.asarray(background, dtype=float)
    if explainer == "partition":
        masker = shap.maskers.Partition(bg, max_samples=len(bg), clustering=feature_clustering(train))
        e = shap.explainers.PartitionExplainer(f, masker)
        res = e(X, max_evals=int(max_evals), silent=True)
    elif explainer == "permutation":
        e = shap.explainers.PermutationExplainer(f, shap.maskers.Independent(bg, max_samples=len(bg)), seed=int(seed))
        res = e(X, max_evals=int(max_evals), silent=True)
    elif explainer == "exact":
        e = shap.explainers.ExactExplainer(f, shap.maskers.Independent(bg, max_samples=len(bg)))
        res = e(X, max_evals=int(max_evals), silent=True)
    else:
        coef, b = linear_coefficients(f, bg.mean(axis=0))
        e = shap.explainers.LinearExplainer((coef, b), shap.maskers.Independent(bg, max_samples=len(bg)))
        res = e(X)
    values = np.asarray(res.values, dtype=float).reshape(len(X), X.shape[1])
    base = np.broadcast_to(np.asarray(res.base_values, dtype=float).reshape(-1), (len(X),)).copy()
    return values, base, np.asarray(f(X), dtype=float).reshape(-1)


def shap_plots(values, data, names, base, title, seed, max_display=15):
    """{"beeswarm.png": ..., "bar.png": ...}: shap's beeswarm (its layout jitter seeded with `seed`) and bar (mean |SHAP|)
    plots, at a fixed size and dpi with no metadata stamp, so the same values give the same bytes. `data` (the
    feature values that colour the beeswarm) may be None (grouped values have no single feature value)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import shap

    expl = shap.Explanation(values=np.asarray(values, dtype=float), base_values=np.asarray(base, dtype=float),
                            data=None if data is None else np.asarray(data, dtype=float), feature_names=list(names))
    out = {}
    for kind in ("beeswarm", "bar"):
        fig = plt.figure(figsize=(8, 0.4 * min(len(names), max_display) + 1.6), dpi=100)
        ax = fig.add_subplot(1, 1, 1)
        if kind == "beeswarm":     # its layout jitter draws from NumPy's global generator: seeded here, restored after
            state = np.random.get_state()
            np.random.seed(int(seed))
            try:
                shap.plots.beeswarm(expl, max_display=max_display, ax=ax, show=False, plot_size=None,
                                    color_bar=data is not None, **({} if data is not None else {"color": "#1E88E5"}))
            finally:
                np.random.set_state(state)
        else:
            shap.plots.bar(expl, max_display=max_display, ax=ax, show=False)
        ax.set_title(title, fontsize=9)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
        plt.close(fig)
        out[f"{kind}.png"] = buf.getvalue()
    return out


def image_regions(shape, regions):
    """The regions of an image patch [C, *spatial] (spatial in array order: z, y, x): each channel cut into a grid of
    `regions` blocks per axis (given x, y[, z], like a patch), with boundaries at round(k x side / blocks). Returns
    (labels: an int array of the patch's shape, each voxel's region index, channel-major; [(channel index, ((start, stop)
    per axis, x first))] per region)."""
    import itertools

    import numpy as np

    spatial = list(shape[1:])
    per_axis = list(reversed([int(r) for r in regions]))            # array order
    cuts = [np.round(np.linspace(0, s, n + 1)).astype(int) for s, n in zip(spatial, per_axis)]
    labels = np.zeros(tuple(shape), dtype=np.int64)
    blocks = []
    for c in range(int(shape[0])):
        for idx in itertools.product(*[range(n) for n in per_axis]):
            sl = tuple(slice(int(cut[i]), int(cut[i + 1])) for cut, i in zip(cuts, idx))
            labels[(c,) + sl] = len(blocks)
            blocks.append((c, tuple((s.start, s.stop) for s in reversed(sl))))
    return labels, blocks


def tree_linkage(tree, n):
    """A scipy linkage matrix (as shap's Partition masker takes it) of a nested tree of the leaves 0..n-1 (a leaf is an
    int, a node a list of subtrees, merged left to right); a node's height is one more than its highest child's."""
    import numpy as np

    rows = []

    def walk(t):
        if isinstance(t, (int, np.integer)):
            return int(t), 0, 1
        parts = [walk(c) for c in t]
        cur = parts[0]
        for q in parts[1:]:
            rows.append([cur[0], q[0], max(cur[1], q[1]) + 1, cur[2] + q[2]])
            cur = (n + len(rows) - 1, max(cur[1], q[1]) + 1, cur[2] + q[2])
        return cur

    walk(tree)
    return np.asarray(rows, dtype=float).reshape(-1, 4)


def region_hierarchy(regions, channels, tab_clustering, n_tab):
    """The Partition hierarchy of a network's features (image regions channel-major, then tabular columns): a region's
    channels merge first, then the blocks by halving the grid along its longest axis (as shap's Image masker splits
    an image), then the image joins the tabular branch, whose hierarchy is `tab_clustering` (a linkage of its columns)."""
    import itertools

    import numpy as np
    from scipy.cluster.hierarchy import to_tree

    grid = list(reversed([int(r) for r in regions]))
    per_channel = int(np.prod(grid))
    cells = {idx: k for k, idx in enumerate(itertools.product(*[range(n) for n in grid]))}

    def split(box):
        sizes = [b - a for a, b in box]
        if max(sizes) == 1:
            k = cells[tuple(a for a, _ in box)]
            members = [c * per_channel + k for c in range(int(channels))]
            return members[0] if len(members) == 1 else members
        ax = int(np.argmax(sizes))
        a, b = box[ax]
        mid = a + (b - a) // 2
        return [split(box[:ax] + [(a, mid)] + box[ax + 1:]), split(box[:ax] + [(mid, b)] + box[ax + 1:])]

    image = split([(0, n) for n in grid])
    n_img = per_channel * int(channels)
    if not n_tab:
        return tree_linkage(image, n_img)

    def nested(node):
        return n_img + node.id if node.is_leaf() else [nested(node.left), nested(node.right)]

    tab = nested(to_tree(tab_clustering)) if len(tab_clustering) else n_img
    return tree_linkage([image, tab], n_img + int(n_tab))


def network_output(est, output):
    """predict(image [N, C, *spatial], tabular [N, T] or None) -> [N] float64: the explained output of a fitted network
    estimator (`cnn`, `dann`: its class logits; `multitask`: its primary head) on its own inputs (the tabular branch
    already imputed and standardised, as the estimator's `_arrays` gives it): the positive class's probability, the
    logit margin (`output: log_odds`), or a survival head's log relative hazard. Evaluated in batches of 64 with one
    intra-op thread, as the estimator predicts."""
    import numpy as np
    import torch

    net = est._module()
    net.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in est.weights_.items()})
    net.eval()
    heads = getattr(est, "heads_", None)
    k = next(i for i, h in enumerate(heads) if h["primary"]) if heads else None
    kind = heads[k]["kind"] if heads else "binary"

    def explained(xi, xt):
        o = net(xi, xt)
        o = o[1][k] if heads else o
        if kind != "binary":
            return o[:, 0]
        return o[:, 1] - o[:, 0] if output == "log_odds" else torch.softmax(o, 1)[:, 1]

    def predict(image, tab):
        out = batched_outputs(explained, image, tab, len(image))
        return out if out is not None else np.zeros(0)

    return predict


def masked_game(predict, image, tab, bg_image, bg_tab, labels, max_batch=512):
    """The value function of one case's SHAP game over a network's features (the image regions of `labels`, then the
    tabular columns): g(Z) for rows Z of 0/1 (feature present or not) is the mean, over the background cases, of the
    network's output with the present features taken from the case and the absent ones from the background case (as
    shap's Independent masker does for a table). g(1) = f(x); g(0) = the mean of f over the background."""
    import numpy as np

    n_img = int(labels.max()) + 1
    B = len(bg_image)

    def g(Z):
        Z = np.asarray(Z, dtype=bool).reshape(-1, n_img + (0 if tab is None else len(tab)))
        out = np.empty(len(Z))
        per = max(1, max_batch // B)
        for a in range(0, len(Z), per):
            zs = Z[a:a + per]
            keep = zs[:, :n_img][:, labels]                                    # [z, C, *spatial]
            imgs = np.where(keep[:, None], image[None, None], bg_image[None]).reshape((-1,) + image.shape)
            tabs = None
            if tab is not None:
                tabs = np.where(zs[:, None, n_img:], tab[None, None], bg_tab[None]).reshape(-1, len(tab))
            out[a:a + per] = np.asarray(predict(imgs, tabs), dtype=float).reshape(len(zs), B).mean(axis=1)
        return out

    return g


def network_shap(predict, images, tabs, bg_images, bg_tabs, labels, explainer, max_evals, seed, clustering):
    """SHAP values of a network at each case (images [n, C, *spatial], tabs [n, T] or None) over its image regions
    (`labels`) and tabular columns: for each case, shap's explainer on that case's masked game (masked_game) at the
    all-present row, with an Independent masker whose one background row is all-absent (the game averages over
    the background cases itself) or, for `partition`, a Partition masker over `clustering`. Returns (values n x
    features, base values n, f at each case)."""
    import numpy as np
    import shap

    n_feat = int(labels.max()) + 1 + (0 if tabs is None else tabs.shape[1])
    absent, present = np.zeros((1, n_feat)), np.ones((1, n_feat))
    values, base, fx = [], [], []
    for i in range(len(images)):
        g = masked_game(predict, images[i], None if tabs is None else tabs[i], bg_images, bg_tabs, labels)
        if explainer == "partition":
            e = shap.explainers.PartitionExplainer(g, shap.maskers.Partition(absent, max_samples=1, clustering=clustering))
        elif explainer == "permutation":
            e = shap.explainers.PermutationExplainer(g, shap.maskers.Independent(absent, max_samples=1), seed=int(seed))
        else:
            e = shap.explainers.ExactExplainer(g, shap.maskers.Independent(absent, max_samples=1))
        res = e(present, max_evals=int(max_evals), silent=True)
        values.append(np.asarray(res.values, dtype=float).reshape(n_feat))
        base.append(float(np.asarray(res.base_values, dtype=float).reshape(-1)[0]))
        fx.append(float(g(present)[0]))
    return np.asarray(values).reshape(len(images), n_feat), np.asarray(base), np.asarray(fx)


def region_overlay_png(images, maps, cases, channels, title):
    """PNG bytes in the manner of shap.image_plot: one row per case, per channel its central slice (axial for 3D) in
    grey with the regions' SHAP values over it (red raises the output, blue lowers it; one symmetric scale for the
    panel). images, maps: [n, C, *spatial] (maps hold each voxel's region value)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    n, C = images.shape[0], images.shape[1]
    lim = float(np.max(np.abs(maps))) if maps.size else 0.0
    lim = lim if lim > 0 else 1.0
    fig, axes = plt.subplots(n, C, figsize=(2.6 * C + 1.4, 2.5 * n + 0.6), dpi=100, squeeze=False)
    for i in range(n):
        for c in range(C):
            img, m = images[i, c], maps[i, c]
            if img.ndim == 3:
                img, m = img[img.shape[0] // 2], m[m.shape[0] // 2]
            ax = axes[i, c]
            ax.imshow(img, cmap="gray")
            im = ax.imshow(m, cmap="bwr", vmin=-lim, vmax=lim, alpha=0.5)
            ax.set_title(f"{cases[i]}: {channels[c]}", fontsize=8)
            ax.axis("off")
    fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8, label="SHAP value of the region", format="%.2g")
    fig.suptitle(title, fontsize=9)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


# ----------------------------------------------------------------------------------------------
# declaration

EXACT_MAX_FEATURES = 16
OVERLAY_CASES = 4            # cases drawn in a network explanation's regions.png
NETWORK_BACKGROUND = 16      # a network's default background: every background case costs one forward pass per evaluation


def _words(v):
    return [str(x) for x in v] if isinstance(v, list) else ([str(v)] if isinstance(v, str) else v)


class ShapSettings(Settings):
    explainer: Literal["partition", "permutation", "exact", "linear"] = Field(
        "partition", description="partition (Owen values over a feature clustering of the training cases; a network: over a spatial "
        "hierarchy of its regions), permutation, exact or linear (not for a network)")
    max_evals: int = Field(500, ge=1, description="model evaluations per explained case (partition, permutation, exact)")
    background: int | None = Field(None, ge=1, description="background cases drawn from the training cases with the stage's seed (default: all; a network: 16)")
    cases: int | None = Field(None, ge=1, description="explain only the first N training cases (default: all)")
    output: Literal["probability", "log_odds"] = Field("probability", description="binary outcomes: the probability or the logistic margin")
    per_fold: bool = Field(False, description="also explain each training fold's model (refit) on its held-out cases: shap_folds.csv")
    group_by: list[Literal["channel", "family", "filter", "image_type"]] = Field(
        default_factory=lambda: ["family", "filter"],
        description="groupings whose values sum their members' (PyRadiomics names; `channel`: a network's image channels)")
    regions: list[int] | None = Field(
        None, description="a network: image regions per axis (x, y[, z]) of its patch, in every channel (default: 2 per axis)")

    _e = field_validator("explainer", "output", mode="before")(lambda cls, v: str(v) if isinstance(v, str) else v)
    _g = field_validator("group_by", mode="before")(lambda cls, v: _words(v))


def _shap_type(ctx) -> RType:
    m = ctx.inputs["model"]
    s = ctx.settings
    if m.kind == "TrainedModel":
        ctx.error("E281", f"SHAP explains the final model of an `evaluate` stage, not a {m.describe()}", port="model",
                  hint="explain a `train` stage's network with `gradcam`, or validate a network model (`cnn`, `multitask`, `dann`) with `evaluate`")
    elif m.patch is not None and not m.head:
        ctx.error("E281", "SHAP cannot explain a stacked model with a network branch: its image columns would be thousands of "
                  "single-voxel features", port="model",
                  hint="validate each branch with its own `evaluate` and explain those: a network over its image regions")
    elif m.outcome not in ("binary", "continuous", "survival"):
        what = f"a {m.outcome} outcome" if m.outcome else f"a {m.detail or 'validation'} without a model's predictions"
        ctx.error("E281", f"SHAP explains the final model of an `evaluate` stage with a binary, continuous or survival outcome, "
                  f"not {what}", port="model", hint="explain an `evaluate` stage of a `model`")
    elif s.output == "log_odds" and m.outcome != "binary":
        ctx.error("E331", f"`output: log_odds` needs a binary outcome; this model's outcome is {m.outcome}", setting="output")
    if m.kind == "Evaluation" and m.head:          # a network model: its image regions and tabular columns are the features
        if s.explainer == "linear":
            ctx.error("E282", "`explainer: linear` needs a model that is linear in its features, not a network", setting="explainer",
                      hint="use `explainer: partition` (Owen values over the patch's regions), `permutation` or `exact`")
        if s.regions is not None and m.patch is not None and (len(s.regions) != len(m.patch) or any(r < 1 or r > q for r, q in zip(s.regions, m.patch))):
            ctx.error("E283", f"`regions: {s.regions}` does not cut the network's {'x'.join(map(str, m.patch))} patch into blocks: "
                      f"give {len(m.patch)} numbers, each from 1 to that axis' voxels", setting="regions",
                      hint=f"e.g. `regions: [{', '.join('2' for _ in m.patch)}]`")
    elif m.kind == "Evaluation" and m.patch is None and m.outcome in ("binary", "continuous", "survival"):
        if s.regions is not None:
            ctx.error("E282", "`regions` cuts a network's image patch, but this evaluation's model is not a network", setting="regions")
        if "channel" in s.group_by:
            ctx.error("E282", "`group_by: channel` groups a network's image channels, but this evaluation's model is not a network",
                      setting="group_by", hint="group PyRadiomics features by `family`, `filter` or `image_type`")
    return RType("Explanation", cohort=m.cohort, outcome=m.outcome, detail="SHAP")


def _shap_plan(stage, memory, study=None):
    """`plan`'s line for a network's SHAP: its regions and what one explained case costs in forward passes."""
    if study is None:
        return []
    v = study.by_name().get(stage.inputs["model"].stage)
    if v is None or not v.type.head or v.type.patch is None:
        return []
    p = stage.params
    regions = p.get("regions") or [2] * len(v.type.patch)
    bg = p.get("background") or NETWORK_BACKGROUND
    return [("info", (f"network SHAP: {' x '.join(map(str, regions))} regions of each channel of the {'x'.join(map(str, v.type.patch))} patch "
                      f"(plus the tabular columns, if any); at most {int(p['max_evals'])} x {bg} background forward passes per explained case, "
                      f"{p.get('cases') or 'every'} training case(s)"))]


def _kept_columns(pipe, X, predict):
    """The input columns the final pipeline's output depends on: those its last top-level selector kept, when
    changing every other column leaves its predictions unchanged on the training cases; else every column."""
    import numpy as np

    from radlang.ops.fold_engine import fitted_selections

    est = getattr(pipe, "best_estimator_", pipe)
    sel = fitted_selections(est)
    top = [name for name, _ in getattr(est, "steps", []) if name in sel]
    kept = [c for c in sel[top[-1]] if c in X.columns] if top else []
    if not kept or len(kept) == X.shape[1]:
        return list(X.columns)
    other = [c for c in X.columns if c not in kept]
    shifted = X.copy()
    shifted[other] = shifted[other].to_numpy()[::-1] * 3.0 + 1.0
    return kept if np.allclose(predict(X), predict(shifted), rtol=0, atol=1e-12) else list(X.columns)


def _background(stage, train, what, default=None):
    """The background rows of `train` (an array of the training cases): `background` of them (default: `default`, or
    every case) drawn with the stage's seed, in their order. A background larger than the training data is E526."""
    import numpy as np

    from radlang.backends.executor import RunError
    from radlang.diagnostics import Diagnostic

    n_bg = stage.params.get("background")
    if n_bg is not None and n_bg > len(train):
        raise RunError([Diagnostic("E526", f"`{stage.name}`: a background of {n_bg} cases, but {what} was trained on {len(train)} cases",
                                   stage.span, hint=f"set `background` to at most {len(train)}, or leave it out to use every training case")])
    n_bg = min(len(train), default) if n_bg is None and default is not None else n_bg
    rng = np.random.default_rng(int(stage.seed))
    return train if n_bg is None or n_bg == len(train) else train[np.sort(rng.choice(len(train), int(n_bg), replace=False))]


def _budget(stage, k, what):
    """E527 when the explainer's budget cannot cover k features."""
    from radlang.backends.executor import RunError
    from radlang.diagnostics import Diagnostic

    ex, budget = stage.params["explainer"], int(stage.params["max_evals"])
    if ex == "exact" and (k > EXACT_MAX_FEATURES or budget < 2 ** k):
        raise RunError([Diagnostic("E527", f"`{stage.name}`: the exact explainer needs 2^{k} model evaluations per case for the {k} "
                                   f"features of {what}" + (f", but `max_evals` is {budget}" if k <= EXACT_MAX_FEATURES else ""), stage.span,
                                   hint="use `explainer: partition`" + (f", or set `max_evals: {2 ** k}`" if k <= EXACT_MAX_FEATURES else ""))])
    if ex == "permutation" and budget < 2 * k + 1:
        raise RunError([Diagnostic("E527", f"`{stage.name}`: the permutation explainer needs `max_evals` >= {2 * k + 1} "
                                   f"(2 x {k} features of {what} + 1), not {budget}", stage.span, hint=f"set `max_evals: {2 * k + 1}` or more")])


def _network(pipe):
    """The fitted network estimator at the end of a pipeline (`cnn`, `dann`, `multitask`: it keeps its weights and its
    image columns), or None for a scikit-learn model."""
    pipe = getattr(pipe, "best_estimator_", pipe)
    last = pipe.steps[-1][1] if hasattr(pipe, "steps") else pipe
    return last if hasattr(last, "weights_") and getattr(last, "image_columns_", None) else None


def _explain(stage, pipe, X, explain, outcome, what, channels=None):
    """SHAP values of one fitted pipeline: trained on the rows of X (which give the background and the Partition
    hierarchy), explained at the rows of the table `explain`. `what` names the model in diagnostics ("the final model of `v`",
    "the model of fold 2 of repeat 1 of `v`"). Returns (features, values, base values, outputs, background size, the
    features' values at the explained cases, network details or None). A network is explained by _explain_network."""
    import numpy as np
    import pandas as pd

    from radlang.backends.executor import RunError
    from radlang.diagnostics import Diagnostic

    p = stage.params
    pipe = getattr(pipe, "best_estimator_", pipe)
    if _network(pipe) is not None:
        return _explain_network(stage, pipe, X, explain, what, channels)
    if outcome == "binary":
        predict = (lambda D: pipe.decision_function(D)) if p["output"] == "log_odds" else (lambda D: pipe.predict_proba(D)[:, 1])
    else:
        predict = pipe.predict
    medians = X.median()

    def full(Z, cols):
        D = pd.DataFrame(np.broadcast_to(medians.to_numpy(), (len(Z), X.shape[1])).copy(), columns=X.columns)
        D[cols] = np.asarray(Z, dtype=float)
        return D

    kept = _kept_columns(pipe, X, predict)
    f = (lambda Z: predict(full(Z, kept))) if len(kept) < X.shape[1] else (lambda Z: predict(pd.DataFrame(np.asarray(Z, dtype=float), columns=X.columns)))
    train = X[kept].to_numpy()
    bg = _background(stage, train, what)
    ex, budget = p["explainer"], int(p["max_evals"])
    _budget(stage, len(kept), what)
    if ex == "linear":
        coef, b = linear_coefficients(f, train.mean(axis=0))
        err = float(np.max(np.abs(train @ coef + b - np.asarray(f(train), dtype=float))))
        if not err <= 1e-8 * max(1.0, float(np.max(np.abs(f(train))))):
            raise RunError([Diagnostic("E528", f"`{stage.name}`: {what} (output {p['output']}) is not linear in its features "
                                       f"(off by up to {err:.3g})", stage.span,
                                       hint="use `explainer: partition`; `linear` fits a logistic margin (`output: log_odds`) or a Cox risk")])
    data = explain[kept].to_numpy()
    values, base, fx = shap_explain(f, data, bg, train, ex, budget, stage.seed)
    return kept, values, base, fx, len(bg), data, None


def _explain_network(stage, pipe, X, explain, what, channels):
    """SHAP values of a network pipeline over its image regions (`regions` blocks per axis of each channel) and its
    tabular columns, with the background drawn from the training rows of X (at most NETWORK_BACKGROUND cases unless
    `background` says otherwise); steps before the network (if any) transform the table first. The feature values
    returned for the plots are each region's mean input intensity and the tabular columns as given."""
    import numpy as np
    import pandas as pd

    p = stage.params
    est = _network(pipe)
    if len(pipe.steps) > 1:
        def net_input(D):
            T = pipe[:-1].transform(D)
            return T if hasattr(T, "columns") else pd.DataFrame(T, index=D.index, columns=pipe[:-1].get_feature_names_out())
        X, explain = net_input(X), net_input(explain)
    img, tab = est._arrays(X)
    img_x, tab_x = est._arrays(explain)
    shape = list(est.image_shape_)
    regions = p.get("regions") or [2] * (len(shape) - 1)
    labels, blocks = image_regions(shape, regions)
    names = [f"{channels[c] if channels and len(channels) == shape[0] else f'c{c}'}@"
             + "_".join(f"{ax}{a}-{b}" for ax, (a, b) in zip("xyz", box)) for c, box in blocks]
    tab_names = [str(c) for c in est.tabular_columns_]
    rows = _background(stage, np.arange(len(X)), what, default=NETWORK_BACKGROUND)
    _budget(stage, len(names) + len(tab_names), what)
    clustering = None
    if p["explainer"] == "partition":
        clustering = region_hierarchy(regions, shape[0], feature_clustering(tab) if tab is not None else np.zeros((0, 4)), len(tab_names))
    predict = network_output(est, p["output"])
    values, base, fx = network_shap(predict, img_x, tab_x, img[rows], None if tab is None else tab[rows], labels,
                                    p["explainer"], int(p["max_evals"]), stage.seed, clustering)
    n_reg = len(names)
    means = np.stack([img_x.reshape(len(img_x), -1)[:, (labels == r).ravel()].mean(axis=1) for r in range(n_reg)], axis=1)
    data = np.hstack([means, explain[tab_names].to_numpy(dtype=float)]) if tab_names else means
    detail = {"labels": labels, "images": img_x, "channels": [n.split("@", 1)[0] for n in names[::len(names) // shape[0]]],
              "regions": [int(r) for r in regions], "image_features": names, "tabular_features": tab_names}
    return names + tab_names, values, base, fx, len(rows), data, detail


def _channel_names(ctx, v):
    """The image channels of a validated network model, from the `patches` stage its input comes from (through joins):
    the cohort's image columns (`image.t1` is `t1`), then `mask` when the patches add it; None for other models."""
    from radlang.ops.netio import _channel_columns

    by = ctx.study.by_name()
    model = by.get(v.inputs["model"].stage) if "model" in v.inputs else None
    todo = [model.inputs["input"].stage] if model is not None and "input" in model.inputs else []
    while todo:
        s = by[todo.pop(0)]
        if s.op == "patches":
            names = [c.split(".", 1)[1] if c.startswith("image.") else c for c in _channel_columns(ctx.results[s.inputs["cohort"].stage])]
            return names + (["mask"] if s.params.get("mask_channel") else [])
        if s.op == "join":
            todo += [r.stage for _, r in sorted(s.inputs.items())]
    return None


def _importable_estimator_classes():
    """Where radlang itself cannot be imported (the rendered script), make radlang's classes that saved models name
    (predict.trusted_classes: `radlang.ops.select.RadSelector`, `radlang.ops.net_models.RadNetRegressor`, ...) importable by
    those names, so skops loads the final and the fold models: each of their modules is a stand-in holding the classes
    their factories build. Under `radlang run` the modules are there and nothing changes."""
    import importlib.util
    import sys
    import types

    from radlang.predict import trusted_classes

    by_module = {}
    for name, factory in trusted_classes().items():
        module, _, cls = name.rpartition(".")
        by_module.setdefault(module, {})[cls] = factory
    for module, factories in by_module.items():
        if module in sys.modules:
            continue
        try:
            found = importlib.util.find_spec(module) is not None
        except ImportError:
            found = False
        if not found:
            stand_in = types.ModuleType(module)
            for cls, factory in factories.items():
                setattr(stand_in, cls, factory())
            sys.modules[module] = stand_in


def run_shap(stage, ctx):
    """SHAP values of the final model of the validation stage on its training cases (and, with `per_fold`, of each
    training fold's model on its held-out cases), grouped, plotted and written under <out>/explain/<stage>/."""
    import json

    import numpy as np
    import pandas as pd

    from radlang.backends.cache import atomic_write_bytes, atomic_write_text
    from radlang.backends.executor import RunError
    from radlang.backends.refit import assemble
    from radlang.ops.clinical_metrics import evaluation_csv
    from radlang.ops.fold_engine import run_fold
    from radlang.predict import PredictError, load_card, load_model

    p = stage.params
    v = ctx.study.stage(stage.inputs["model"].stage)
    _importable_estimator_classes()
    try:
        card, data = load_card(ctx.out, v)
        pipe = load_model(data, v)
    except PredictError as e:
        raise RunError(e.diagnostics) from None
    cohort_df = ctx.results[card["cohort"]]
    X = assemble(ctx, v, card["refit"], card["cohort"])
    X.index = X.index.astype(str)
    ids = [c for c in cohort_df["case_id"].astype(str) if c in X.index]
    X = X.loc[ids, card["columns"]].astype(float)
    outcome, ex = card["outcome"], p["explainer"]
    rows = X.index if not p.get("cases") else X.index[:int(p["cases"])]
    channels = _channel_names(ctx, v)
    kept, values, base, fx, n_bg, data, net = _explain(stage, pipe, X, X.loc[rows], outcome, f"the final model of `{v.name}`", channels)

    folder = ctx.out / "explain" / stage.name
    table = pd.DataFrame({"case_id": list(rows), "base_value": base, "output": fx})
    atomic_write_bytes(folder / "shap_values.csv", evaluation_csv(pd.concat([table, pd.DataFrame(values, columns=kept)], axis=1)))
    title = f"{stage.name}: SHAP ({ex}) of the final model of {v.name}, {len(rows)} training cases"
    plots = shap_plots(values, data, kept, base, title, stage.seed)
    linkage = "complete linkage on 1 - |Pearson r|, training cases"
    if net:
        linkage = "image regions: a block's channels, then halves of the patch along its longest axis" + (
            f"; tabular branch: {linkage}" if net["tabular_features"] else "")
    summary = {"stage": stage.name, "validation": v.name, "model": card["operator"], "cohort": card["cohort"], "explainer": ex,
               "max_evals": int(p["max_evals"]) if ex != "linear" else None, "background": n_bg, "cases": len(rows),
               "output": p["output"] if outcome == "binary" else "prediction", "features": kept,
               "clustering": linkage if ex == "partition" else None,
               "mean_abs": dict(zip(kept, np.abs(values).mean(axis=0).tolist())),
               "efficiency_max_error": float(np.max(np.abs(values.sum(axis=1) + base - fx))) if len(rows) else 0.0, "groups": {}}
    if net:
        summary["network"] = {k: net[k] for k in ("channels", "regions", "image_features", "tabular_features")}
        n_show = min(len(rows), OVERLAY_CASES)
        maps = values[:n_show, :len(net["image_features"])][:, net["labels"]]
        plots["regions.png"] = region_overlay_png(net["images"][:n_show], maps, list(rows[:n_show]), net["channels"],
                                                  f"{title}: image regions (first {n_show})")
    for by in (["channel"] if net else []) + [b for b in p["group_by"] if not (net and b == "channel")]:
        groups = network_groups(net["image_features"], net["tabular_features"], by) if net else feature_groups(kept, by)
        gv = grouped_values(values, kept, groups)
        atomic_write_bytes(folder / f"shap_{by}.csv",
                           evaluation_csv(pd.concat([table, pd.DataFrame(gv, columns=list(groups))], axis=1)))
        summary["groups"][by] = {"members": groups, "mean_abs": dict(zip(groups, np.abs(gv).mean(axis=0).tolist()))}
        for name, png in shap_plots(gv, None, list(groups), base, f"{title}, by {by}", stage.seed).items():
            plots[name.replace(".png", f"_{by}.png")] = png
    if p["per_fold"]:
        long, errors = [], []
        for rep, fold, job in ctx.results[v.name]["folds"]():
            # the fold's pipeline, refit on its training rows and loaded as the final model is (skops, trusted types only)
            model = load_model(run_fold({**job, "rule": None, "save_model": True})["model_bytes"], v)
            Xf = job["X"].iloc[job["train"]]
            test_ids = list(job["X"].index[job["test"]])
            what = f"the model of fold {fold + 1} of repeat {rep + 1} of `{v.name}`"
            k_f, v_f, b_f, fx_f, *_ = _explain(stage, model, Xf, job["X"].iloc[job["test"]], outcome, what, channels)
            errors.append(float(np.max(np.abs(v_f.sum(axis=1) + b_f - fx_f))) if len(test_ids) else 0.0)
            for i, cid in enumerate(test_ids):
                long += [{"repeat": rep, "fold": fold, "case_id": cid, "feature": c, "value": float(v_f[i, j]), "base_value": float(b_f[i]),
                          "output": float(fx_f[i])} for j, c in enumerate(k_f)]
        per = pd.DataFrame(long, columns=["repeat", "fold", "case_id", "feature", "value", "base_value", "output"])
        atomic_write_bytes(folder / "shap_folds.csv", evaluation_csv(per))
        explained = per.groupby(["repeat", "fold", "case_id"]).ngroups          # held-out cases, over every repeat
        summary["folds"] = {"folds": len(errors), "efficiency_max_error": max(errors, default=0.0),
                            # a feature a fold's model does not keep has no effect there: it counts as 0 in the mean
                            "mean_abs": (per["value"].abs().groupby(per["feature"]).sum() / max(explained, 1)).to_dict(),
                            "kept_in": per.drop_duplicates(["repeat", "fold", "feature"]).groupby("feature").size().to_dict()}
    for name, png in sorted(plots.items()):
        atomic_write_bytes(folder / name, png)
    atomic_write_text(folder / "shap.json", json.dumps(summary, indent=2, sort_keys=True) + "\n")
    ctx.keys[stage.name] = ctx.stage_key(stage)
    ctx.summary.append(f"{stage.name}: SHAP ({ex}) of {len(kept)} features for {len(rows)} cases -> explain/{stage.name}/")
    return summary


register(Operator(
    name="shap", kind="explain", output="Explanation", settings=ShapSettings, behaviour="stateless", run=run_shap, sink=True,
    inputs=(Port("model", ("Evaluation", "TrainedModel"), doc="an `evaluate` stage: its final model is explained"),),
    positional=("model",), infer=_shap_type, impl=shap_explain, plan=_shap_plan, version="1",
    helpers=(feature_clustering, linear_coefficients, feature_groups, grouped_values, shap_plots, network_groups, image_regions,
             tree_linkage, region_hierarchy, network_output, batched_outputs, masked_game, network_shap, region_overlay_png),
    doc=("SHAP values (shap) of a validation stage's final model on its training cases (and, with `per_fold`, of each "
         "fold's model on its held-out cases): an explicitly chosen "
         "explainer (partition over a feature clustering of the training cases, permutation, exact, linear) with bounded "
         "`max_evals`; values grouped by PyRadiomics feature family, filter or image type; CSV, JSON and beeswarm / bar PNGs "
         "under <out>/explain/<stage>/. A network model (cnn, fusion, dann, multitask) is explained over its image regions "
         "(`regions` blocks per axis of each channel) and tabular columns, with a regions.png panel and values by channel."),
    examples=("explain why = shap(v) { explainer: partition, max_evals: 200, per_fold: true, group_by: [family, filter] }",
              "explain where = shap(v) { explainer: partition, max_evals: 100, regions: [2, 2, 2], background: 8, cases: 8, group_by: [channel] }"),
))
