"""`dann`: a network model adapted across sites (domain-adversarial training, Ganin et al. 2016), refit inside every
training fold of `evaluate`, which validates it leave-one-site-out.

    network enc = resnet(dims: 3, in_channels: 1, out_channels: 2) { depth: 10, widen_factor: 0.125 }
    features img = patches(train) { patch: [16, 16, 16] }
    model adapted = dann(img, target: train.outcome, network: enc) { epochs: 20, target_unlabelled: true }
    validate v = evaluate(adapted) { cv: leave_one_site_out }

The network is `cnn`'s (radlang/ops/net_models.py: the image backbone, adaptive average pooling to a vector, an
optional tabular branch, the MLP label head), with a second head: a domain classifier (`domain_hidden` units) that
predicts each case's site from the pooled image vector, behind a gradient reversal layer. The reversal layer is
the identity forward and multiplies the incoming gradient by -lambda backward, so the domain head learns to tell
the sites apart while the backbone learns features it cannot tell apart. Both heads' cross-entropies are summed
and minimised by one optimiser. lambda follows Ganin et al.'s schedule 2 / (1 + exp(-10 p)) - 1, p the fraction
of the planned training steps taken (0 at the first step, 1 at the last), or is a stated constant (`reversal: 0.3`).

The sites are the training fold's sites. With `target_unlabelled: true` the held-out site's images join the domain
head's batches, unlabelled (its outcomes are never read: the fold engine hands the model the held-out rows'
features only); each step draws a batch of them, as large as the labelled batch, in a seeded order, and the backbone
runs once on both (so its batch-normalisation statistics see both). That transductive use is recorded in
manifest.json and shown by `radlang plan`. Without it, the domain head tells the training sites apart.

Early stopping (the inner, patient-grouped validation split) uses the label loss only. Training is deterministic on
CPU. The domain head is built after the label network from its own seeded generator, with the global random state
restored afterwards, and the target batches come from their own NumPy generator: with lambda = 0 and no target
images the label network's weights are bit-identical to `cnn`'s with the same settings (tests/validation/test_dann.py).
The fitted estimator keeps the label network's weights as NumPy arrays (the domain head only shapes training);
prediction uses them as `cnn` does, and the final model is saved in skops' format like `cnn`'s.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from radlang.ops.fitted_recipe import run_recipe
from radlang.ops.net_models import (
    TRAINING_HELPERS,
    CnnSettings,
    _cnn_type,
    branch_plan,
    budget_warning,
    fusion_module,
    make_cnn_code,
    net_estimator_class,
)
from radlang.registry import Operator, Port, register
from radlang.types import RType
from radlang.values import Sym

# ----------------------------------------------------------------------------------------------
# self-contained implementation


def reverse_gradient(x, lam, _made={}):  # noqa: B006 -- the autograd Function is made once per process
    """The gradient reversal layer: x unchanged forward; backward, the incoming gradient times -lam (Ganin &
    Lempitsky 2015). A torch.autograd.Function, built on first use."""
    if "fn" not in _made:
        import torch

        class GradientReversal(torch.autograd.Function):
            @staticmethod
            def forward(ctx, x, lam):
                ctx.lam = lam
                return x.view_as(x)

            @staticmethod
            def backward(ctx, grad):
                return grad * -ctx.lam, None

        _made["fn"] = GradientReversal
    return _made["fn"].apply(x, float(lam))


def ganin_lambda(p, reversal="ganin"):
    """lambda at training progress p in [0, 1]: Ganin et al.'s 2 / (1 + exp(-10 p)) - 1, or a stated constant."""
    import math

    if reversal == "ganin":
        return 2.0 / (1.0 + math.exp(-10.0 * float(p))) - 1.0
    return float(reversal)


def dann_module(net, n_domains, hidden, seed):
    """The label network `net` (fusion_module) and a domain head on its pooled image vector behind the gradient
    reversal layer. forward(image, tab, n_labelled, lam) -> (class logits of the first n_labelled rows, domain logits
    of every row). The domain head is initialised from its own generator (seed + 1) with the global random state
    restored after, so building it changes nothing of the label network's random stream."""
    import torch

    class DANN(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net
            width = int(hidden) if int(hidden) > 0 else int(n_domains)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(seed) + 1)
                self.domain = (torch.nn.Sequential(torch.nn.Linear(net.n_img, width), torch.nn.ReLU(), torch.nn.Linear(width, int(n_domains)))
                               if int(hidden) > 0 else torch.nn.Linear(net.n_img, int(n_domains)))

        def forward(self, image, tab, n_labelled, lam):
            vec = self.net.image_vector(image)
            return self.net.head(vec[:n_labelled], tab), self.domain(reverse_gradient(vec, lam))

    return DANN()


def dann_estimator_class(_made={}):  # noqa: B006 -- one class per process, so fitted models pickle and load by name
    """`radlang.ops.dann.RadDANNClassifier`: the network estimator (net_estimator_class) trained with the domain head.
    fold_inputs: {"patients": ..., "sites": {case id: site}} (training and held-out cases). fit(X, y, unlabelled=None):
    `unlabelled` is the held-out rows' features (never their outcomes), passed by the fold engine only when
    `target_unlabelled` is set (`wants_unlabelled`). Fitted state: `cnn`'s (the label network's weights, what predicts)
    and the sites the domain head was trained to tell apart (`domains_`); the domain head is training machinery and is
    not kept."""
    if "cls" in _made:
        return _made["cls"]
    import numpy as np

    base = net_estimator_class()

    class RadDANNClassifier(base):
        @property
        def wants_unlabelled(self):
            return bool((self.params or {}).get("target_unlabelled"))

        def fit(self, X, y, unlabelled=None):
            self._unlabelled = unlabelled if self.wants_unlabelled else None
            try:
                return super().fit(X, y)
            finally:
                del self._unlabelled      # the held-out rows are never part of the fitted (saved) model

        def _adaptation(self, net, X, image):
            import torch

            p = self.params
            sites = (self.fold_inputs or {}).get("sites")
            if not sites:
                raise ValueError("DANN needs each case's site: it is fit inside a validation (`evaluate`) only")
            extra = self._unlabelled
            target_image = None
            if extra is not None and len(extra):
                target_image = extra[self.image_columns_].to_numpy(np.float32).reshape((len(extra),) + tuple(self.image_shape_))
            site_of = [str(sites[str(i)]) for i in X.index]
            target_sites = [str(sites[str(i)]) for i in extra.index] if target_image is not None else []
            self.domains_ = sorted(set(site_of) | set(target_sites))
            if len(self.domains_) < 2:
                raise ValueError(f"DANN needs cases of at least two sites in a fit; all {len(X)} are from site `{self.domains_[0]}` "
                                 "(set `target_unlabelled: true` to add the held-out site's images)")
            domain = torch.from_numpy(np.searchsorted(self.domains_, site_of).astype(np.int64))
            target_domain = torch.from_numpy(np.searchsorted(self.domains_, target_sites).astype(np.int64))
            module = dann_module(net, len(self.domains_), p["domain_hidden"], self.seed)
            rng = np.random.default_rng([int(self.seed), 1])      # the target batches' own stream
            label_loss, ce = self._parts()["loss"], torch.nn.CrossEntropyLoss()   # the label loss given (make_dann_code's)

            def loss_fn(out, target):
                return label_loss(out[0], target[0]) + ce(out[1], target[1])

            def batch(inputs, target, rows, progress):
                lam = ganin_lambda(progress, p["reversal"])
                xi, xt = inputs
                dom = domain[torch.from_numpy(np.asarray(rows))]
                if target_image is not None:
                    pick = rng.choice(len(target_image), size=min(len(rows), len(target_image)), replace=False)
                    xi = torch.cat([xi, torch.from_numpy(target_image[pick])])
                    dom = torch.cat([dom, target_domain[torch.from_numpy(pick)]])
                return (xi, xt, len(rows), lam), (target, dom), loss_fn

            return module, batch

    RadDANNClassifier.__module__ = "radlang.ops.dann"
    RadDANNClassifier.__qualname__ = "RadDANNClassifier"
    _made["cls"] = RadDANNClassifier
    return RadDANNClassifier


def make_dann(params, seed, fold_inputs=None, backbone=None, loss=None, optimizer=None, scheduler=None):
    """The unfitted DANN model of one fit, from a model stage's split settings (with `networks`: its network's spec) and
    what it trains with (make_dann_code's: the label network's backbone and loss, and the optimiser of the label
    network and the domain head together, with its learning-rate schedule)."""
    return dann_estimator_class()(network=params["networks"]["network"], params=params["hyper"], seed=seed, fold_inputs=fold_inputs,
                                  backbone=backbone, loss=loss, optimizer=optimizer, scheduler=scheduler)


def make_dann_code(params, seed):
    """What the fold pipeline passes to make_dann besides its settings: `cnn`'s (make_cnn_code)."""
    return make_cnn_code(params, seed)


# ----------------------------------------------------------------------------------------------
# run-time glue: each case's site (evaluation_run calls it through `fold_data`)


def dann_fold_data(stage, data, ext_data, splits):
    """{"sites": {case id: site}} for the training cohort's cases and the external cohort's (whose cases count as one
    site named after the cohort when it has no site column). Returns (fold inputs, diagnostics): `check` has already
    refused a training cohort without a site column (E296), and `evaluate` one with a single site (E643)."""
    sites = {}
    for df in [data] + ([ext_data] if ext_data is not None else []):
        name = df.attrs.get("radlang", {}).get("name", "external")
        col = df["site"].astype(str).str.strip() if "site" in df.columns else [f"{name} (external)"] * len(df)
        sites.update(zip(df["case_id"].astype(str), col))
    return {"sites": sites}, []


def dann_transductive(params) -> str | None:
    """A sentence for the manifest and `plan` when the domain head trains on the held-out site's unlabelled images."""
    if not params.get("target_unlabelled"):
        return None
    return ("DANN's domain head trains on the held-out site's images (unlabelled: transductive; never their outcomes), "
            "and the backbone's batch statistics see them")


# ----------------------------------------------------------------------------------------------
# declarations


class DannSettings(CnnSettings):
    reversal: Literal["ganin"] | float = Field("ganin", description="lambda of the gradient reversal layer: `ganin` (2 / (1 + exp(-10 p)) - 1, "
                                               "p the training progress from 0 to 1) or a constant >= 0")
    domain_hidden: int = Field(16, ge=0, le=4096, description="units of the domain head's hidden layer (0: a linear head)")
    target_unlabelled: bool = Field(False, description="train the domain head on the held-out site's images too, unlabelled "
                                    "(transductive: recorded in the manifest)")

    @field_validator("reversal", mode="before")
    @classmethod
    def _r(cls, v):
        v = str(v) if isinstance(v, Sym) else v
        if not isinstance(v, str) and float(v) < 0:
            raise ValueError("`reversal` is `ganin` or a constant >= 0")
        return v


def _dann_type(ctx) -> RType:
    t = _cnn_type(ctx, ("binary", "multiclass"))
    src = ctx.inputs["input"]
    cohort = ctx.types.get(src.cohort) if src.cohort else None
    if cohort is not None and cohort.kind == "Cohort" and not cohort.has_site:
        if cohort.detail == "phantom":       # a one-site phantom writes no site column
            ctx.error("E297", f"DANN adapts across sites, but the phantom cohort `{src.cohort}` has one site", port="input",
                      hint=f"set `sites: 2` or more on `{src.cohort}`, or train a `cnn`: with one site there is nothing to adapt across")
        else:
            ctx.error("E296", f"DANN adapts across sites, but cohort `{src.cohort}` has no site column", port="input",
                      hint=f"add `site: <column>` to `{src.cohort}`, or train a `cnn`")
    return t.with_(detail="DANN model", site_adapted=True)


def dann_check_facts(st, bound, stages, facts, diags):
    """`radlang check`: the training cohort's site column (read from its manifest or table) lists two sites or more;
    with one, every fit has a single domain (E297), unless `target_unlabelled` adds the held-out (external) site's."""
    from radlang.diagnostics import Diagnostic

    cohort = stages[st.inputs["input"].stage].type.cohort
    sites = (facts.get(cohort) or {}).get("sites")
    if sites is None or len(sites) >= 2 or st.params["target_unlabelled"]:
        return
    diags.append(Diagnostic("E297", f"`{st.name}`: DANN adapts across sites, but the site column of cohort `{cohort}` lists one site"
                            + (f" (`{sites[0]}`)" if sites else ""), st.span,
                            hint="give it cases of two sites or more, or train a `cnn`: with one site there is nothing to adapt across"))


def memory_module(net, image, tab, labelled, domain_hidden):
    """What `plan` measures one DANN step on (training_memory, on the meta device): the network with its domain head
    as one module with one output, and its inputs; image: the step's images (labelled rows first, then the target's)."""
    import torch

    module = dann_module(net, 2, domain_hidden, 0)

    class Both(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.module = module

        def forward(self, image, tab):
            label, dom = self.module(image, tab, labelled, 1.0)
            return torch.cat([label.flatten(), dom.flatten()])

    return Both(), (image, tab)


def _dann_plan(stage, memory, study=None):
    if study is None:
        return []
    p = stage.params
    labelled = int(p["batch"])
    rows = labelled * (2 if p["target_unlabelled"] else 1)

    def adapt(net, image, tab):
        import torch

        return memory_module(net, torch.empty((rows,) + tuple(image.shape[1:])), tab, labelled, p["domain_hidden"])

    try:
        lines, est = branch_plan(study, stage, adapt)
    except ImportError:
        return [("info", "install torch and monai for parameter counts and memory estimates")]
    lam = "Ganin's schedule 2/(1+exp(-10p))-1" if p["reversal"] == "ganin" else f"{float(p['reversal']):g}"
    lines.append(("info", f"domain head: the site, from the pooled image vector behind a gradient reversal layer (lambda: {lam}); "
                  + (f"each step adds {labelled} unlabelled images of the held-out site (counted in the memory estimate)"
                     if p["target_unlabelled"] else "the training sites only")))
    return lines + budget_warning(est, memory)


register(Operator(
    name="dann", kind="model", output="Model", settings=DannSettings,
    inputs=(Port("input", ("Features",), doc="image patches (`patches`), or patches joined with a tabular branch"),
            Port("target", ("Outcome",), doc="the training cohort's outcome, e.g. `train.outcome`"),
            Port("network", ("Network",), doc="the backbone: a `network` stage (densenet121, resnet, segresnet, unet)")),
    positional=("input", "target"), fit="outcome", behaviour="fitted", run=run_recipe, impl=make_dann,
    helpers=(dann_estimator_class, dann_module, reverse_gradient, ganin_lambda, net_estimator_class, fusion_module, make_cnn_code,
             make_dann_code) + TRAINING_HELPERS,
    fold_data=dann_fold_data, transductive=dann_transductive, infer=_dann_type, plan=_dann_plan, check_facts=dann_check_facts, version="1",
    doc="Domain-adversarial training (DANN): `cnn`'s network with a domain head on the site behind a gradient reversal layer "
        "(lambda by Ganin et al.'s schedule, or constant), refit inside every training fold and validated leave-one-site-out; "
        "the held-out site's images train the domain head, unlabelled, only with `target_unlabelled: true` (recorded in the "
        "manifest). Deterministic on CPU.",
    examples=("model adapted = dann(img, target: train.outcome, network: enc) { epochs: 20, target_unlabelled: true }",),
))


def __getattr__(name):
    """`radlang.ops.dann.RadDANNClassifier`: the estimator class, built on first use (see dann_estimator_class)."""
    if name == "RadDANNClassifier":
        return dann_estimator_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
