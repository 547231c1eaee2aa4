"""Fixture studies generated from an operator's declaration, for the registry-wide conformance harness.

For an operator and one of its doc examples, `fixture(op, example, prefix, tiny, spec)` builds a study fragment:

- the example statement itself, its names renamed under `prefix` (so many operators' fixtures share one study);
- *providers* for every name the example references, chosen by the kinds the operator's port accepts
  (`PROVIDERS`: Features, Mask, Model, Network, TrainedModel, Evaluation, Split; a `name.attr` reference makes `name` a cohort), all
  derived from cohorts of one variant (`COHORTS`: a tabular binary set, a generated multi-site table, a CT-like phantom manifest with air around
  the body, the `phantom` operator, a habitat label map, a survival set, multi-channel manifests);
- a *consumer* when the operator is not a sink (`CONSUMERS`, by output kind), so that pruning keeps it: a cohort
  feeds an extraction or a model and an evaluation, features a model and an evaluation, a model an evaluation, a split
  an evaluation that holds it out,
  a mask an extraction, a network a training, a trained network its scoring or Grad-CAM.

The variants of cohorts, providers and consumers are tried in order (cheapest first) until the fragment compiles
with no error; if none does, `FixtureError` names the operator and shows the closest attempt's diagnostics.
With `tiny=True` the example's costly settings are shrunk by `TINY` (by setting name: epochs, bootstrap, folds,
phantom cases and size, network channels, ...), so one run takes seconds. The building blocks name a few operators
(the fixture's upstream and downstream stages); the operator under test is never named: a new operator is
exercised through its declaration (statement kind, ports, output, sink) and its examples.
"""

from __future__ import annotations

import csv
import itertools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from radlang.compiler import compile_source
from radlang.ir import nodes as ir
from radlang.syntax.parser import SourceError, parse
from radlang.types import COHORT_ATTRS


class FixtureError(AssertionError):
    pass


# --------------------------------------------------------------------------------------------------
# Cohorts: every provider derives from cohorts of one variant. (dev, held-out) statement bodies.
# DATA is the fixture data folder (phantom cases written by `write_data`), relative to the spec.
# --------------------------------------------------------------------------------------------------

DATA = "fixture_data"
SMALL_KINDS = ("network", "train", "federate", "explain")   # fixtures with these statements get 4-case cohorts


def _phantom(i, small):
    n = 4 if small else (8 if i == 0 else 6)
    return f"phantom({n}{'' if i == 0 else f', seed: {98 + i}'}) {{ size: [16, 16, 16], effect: 2.0, sites: 2 }}"


def _manifest(csv_name, image):
    def body(i, small):
        path = f"{DATA}/{'dev' if i == 0 else 'held'}/{csv_name}{'_small' if small else ''}.csv"
        return f'manifest("{path}") {{ image: {image}, mask: mask, outcome: malignant as binary, site: site, clinical: [age] }}'
    return body


def _dataset(name, dev, held):
    return lambda i, small: f'dataset("{name}") {{ {dev if i == 0 else held} }}'


IMAGE_ATTRS = frozenset(COHORT_ATTRS)
TABLE_ATTRS = IMAGE_ATTRS - {"image", "mask"}
CHANNELS = (2, 3, 4)
# variant -> body(index, small): index 0 is the dev cohort, >= 1 a held-out one; `small` for the deep fixtures
COHORTS = {
    "breast_cancer": _dataset("breast_cancer", "stop: 60", "start: 520"),
    "multisite": lambda i, small: f"multisite(90) {{ sites: 3, split: {'train' if i == 0 else 'test'} }}",
    "ct": _manifest("ct", "image"),
    "phantom": _phantom,
    "habitats": _manifest("habitats", "image"),
    "gbsg2": _dataset("gbsg2", "stop: 80", "start: 620"),
    **{f"channels{k}": _manifest(f"channels{k}", "[" + ", ".join(f"c{i + 1}" for i in range(k)) + "]") for k in CHANNELS},
}
TABLES = ("breast_cancer", "multisite", "gbsg2")
ATTRS = {v: (TABLE_ATTRS if v in TABLES else IMAGE_ATTRS) for v in COHORTS}  # what `cohort.attr` can name
# the largest mask label of a variant's cohorts: habitats carry a rim (1) and a core (2), like a tumour's sub-regions
LABELS = {v: (0 if v in TABLES else 2 if v == "habitats" else 1) for v in COHORTS}
DATA_PARTS = {"dev": 8, "held": 6}   # phantom cases written for the manifest-based cohorts (the _small CSVs: the first 4)


@dataclass
class World:
    """One choice of variants: the cohort variant, and the cohorts the example names (name -> index)."""

    prefix: str
    cohort_variant: str
    cohort_index: dict[str, int]                # renamed cohort name -> 0 (dev) / 1.. (held-out)
    shared: set[str] = field(default_factory=set)   # fixture-made stages that several providers share (defined once)

    def n(self, local: str) -> str:
        """A fixture-made name (never one of the example's, which are `<prefix>_<name>`)."""
        return f"{self.prefix}_fx_{local}"

    def cohort(self, index: int) -> str:
        """The name of the dev (0) or a held-out (>= 1) cohort, defined on first use."""
        for name, i in self.cohort_index.items():
            if i == index:
                return name
        name = self.n("dev" if index == 0 else f"held{index}")
        self.cohort_index[name] = index
        return name

    def define_cohorts(self, small: bool):
        return [f"cohort {name} = {COHORTS[self.cohort_variant](i, small)}"
                for name, i in sorted(self.cohort_index.items(), key=lambda kv: kv[1])]

    @property
    def dev(self) -> str:
        return self.cohort(0)

    @property
    def held(self) -> str:
        return self.cohort(1)

    @property
    def channels(self) -> int:
        return int(self.cohort_variant[len("channels"):]) if self.cohort_variant.startswith("channels") else 1


# --------------------------------------------------------------------------------------------------
# Providers (a statement defining `name` of a kind) and consumers (statements that use `x` and reach a sink).
# Each is a list of variants, tried in order.
# --------------------------------------------------------------------------------------------------

# A consumer's evaluation: 2 folds, 10 resamples, and no plots (the metrics they draw are not asked for).
EVAL = "{{ cv: {cv}, bootstrap: 10, metrics: [{metrics}] }}"
METRICS = {"stratified_kfold(2)": "auc, brier", "kfold(2)": "c_index", "leave_one_site_out": "auc, brier"}   # binary / survival / by site
UNET = "unet(dims: {d}, in_channels: {c}, out_channels: {k}) {{ channels: [4, 8], strides: [2], num_res_units: 0 }}"
RESNET = "resnet(dims: {d}, in_channels: {c}, out_channels: 2) {{ depth: 10 }}"
TRAIN = "{{ epochs: 1{extra} }}"


def _features(variant):
    def make(w, name):
        if variant == "tabular":
            return [f"features {name} = tabular({w.dev})"]
        if variant == "patches":   # image crops, the input of a network model
            return [f"features {name} = patches({w.dev}) {{ patch: [16, 16, 16] }}"]
        return [f"features {name} = pyradiomics({w.dev}.image, {w.dev}.mask) {{ bin_width: 25, classes: [firstorder, glcm] }}"]
    return make


def _model(model, features):
    def make(w, name):
        f = name + "_in"
        return _features(features)(w, f) + [f"model {name} = {model}({f}, target: {w.dev}.outcome)"]
    return make


def _shared_split(w):
    """The one split every evaluation of a fixture holds out (a comparison needs them on one split)."""
    name = w.n("split")
    if name in w.shared:
        return name, []
    w.shared.add(name)
    return name, [f"split {name} = folds({w.dev}) {{ cv: stratified_kfold(2) }}"]


def _evaluation(model, metrics):
    def make(w, name):
        m = name + "_model"
        split, stmts = _shared_split(w)
        return stmts + _model(model, "tabular")(w, m) + [
            f"validate {name} = evaluate({m}, split: {split}) {{ bootstrap: 10, metrics: [{metrics}] }}"]
    return make


def _network_evaluation(w, name):
    """A validated network model (`cnn` on 16^3 patches, one epoch): what a network explanation explains."""
    m, split, stmts = name + "_model", *_shared_split(w)
    return stmts + _network("resnet", 3)(w, m + "_net") + _features("patches")(w, m + "_in") + [
        f"model {m} = cnn({m}_in, target: {w.dev}.outcome, network: {m}_net) {{ epochs: 1, batch: 4, hidden: 4 }}",
        f"validate {name} = evaluate({m}, split: {split}) {{ bootstrap: 10, metrics: [{METRICS['stratified_kfold(2)']}] }}"]


def _split(w, name):
    return [f"split {name} = folds({w.dev}) {{ cv: stratified_kfold(2) }}"]


def _network(net, dims, classes=2):
    def make(w, name):
        return [f"network {name} = {(UNET if net == 'unet' else RESNET).format(d=dims, c=w.channels, k=classes)}"]
    return make


def _train_extra(net, dims):
    """A classification network trains on fixed-size crops (padded around the mask); a 2D segmentation network on slices of the volumes."""
    if net == "resnet":
        return ", loss: cross_entropy, patch: [" + ", ".join(["32"] * dims) + "]"   # DenseNet121 pools down by 32
    return ", slices: true, batch: 16" if dims == 2 else ""   # 16 slices of 16 x 16 voxels a step


def _trained(net, dims, classes=2):
    def make(w, name):
        base = name + "_net"
        return _network(net, dims, classes)(w, base) + [
            f"train {name} = supervised({base}, {w.dev}) {TRAIN.format(extra=_train_extra(net, dims))}"]
    return make


def _mask(w, name):
    return [f"segment {name} = mask({w.dev}.mask)"]


NETWORK_VARIANTS = [(net, d) for net in ("unet", "resnet") for d in (3, 2)]
LABEL_CLASSES = (3,)   # a segmentation network with more classes than the phantom's binary mask (habitat labels)

PROVIDERS = {
    "Features": [_features("tabular"), _features("pyradiomics"), _features("patches")],
    "Mask": [_mask],
    "Model": [_model(m, f) for f in ("tabular", "pyradiomics") for m in ("logistic", "cox")],
    "Network": [_network(n, d) for n, d in NETWORK_VARIANTS] + [_network("unet", 3, k) for k in LABEL_CLASSES],
    "TrainedModel": [_trained(n, d) for n, d in NETWORK_VARIANTS] + [_trained("unet", 3, k) for k in LABEL_CLASSES],
    "Evaluation": [_evaluation("logistic", METRICS["stratified_kfold(2)"]), _evaluation("cox", METRICS["kfold(2)"]), _network_evaluation],
    "Split": [_split],
}


def _consume_features(model, cv):
    def make(w, x, cohort=None):
        m = w.n("model")
        return [f"model {m} = {model}({x}, target: {cohort or w.dev}.outcome)",
                f"validate {w.n('eval')} = evaluate({m}) {EVAL.format(cv=cv, metrics=METRICS[cv])}"]
    return make


def _consume_model(cv):
    return lambda w, x: [f"validate {w.n('eval')} = evaluate({x}) {EVAL.format(cv=cv, metrics=METRICS[cv])}"]


def _consume_cohort(how):
    def make(w, x):
        if how == "images":
            return [f"features {w.n('rad')} = pyradiomics({x}.image, {x}.mask) {{ bin_width: 25, classes: [firstorder] }}"]
        model, cv = how
        f = w.n("tab")
        return [f"features {f} = tabular({x})"] + _consume_features(model, cv)(w, f, cohort=x)
    return make


def _consume_split(model, metrics):
    def make(w, x):
        m = w.n("model")
        return _model(model, "tabular")(w, m) + [f"validate {w.n('eval')} = evaluate({m}, split: {x}) {{ bootstrap: 10, metrics: [{metrics}] }}"]
    return make


def _consume_attribute_table(w, x):
    """A cohort without an outcome (an attribute table keyed by patient): its table joined to the dev cohort's."""
    attr, own, both = w.n("attr"), w.n("own"), w.n("both")
    return [f"features {attr} = tabular({x})", f"features {own} = tabular({w.dev})",
            f"features {both} = join({own}, {attr}) {{ by: patient, prefix: true }}"] + _consume_features("logistic", "stratified_kfold(2)")(w, both)


def _consume_mask(w, x):
    return [f"features {w.n('rad')} = pyradiomics({w.dev}.image, {x}) {{ bin_width: 25, classes: [firstorder] }}"]


def _score(how):
    def make(w, x):
        if how == "segmentation":
            return [f"validate {w.n('seg')} = segmentation_metrics({x}, {w.held})"]
        return [f"explain {w.n('cam')} = gradcam({x}, {w.held}) {{ cases: 2 }}"]
    return make


def _consume_network(net, dims):
    """A training (a sink: it writes the weights), as a segmentation or a classification network, 3D or on 2D slices."""
    return lambda w, x: [f"train {w.n('fit')} = supervised({x}, {w.dev}) {TRAIN.format(extra=_train_extra(net, dims))}"]


CONSUMERS = {
    "Cohort": [_consume_cohort("images"), _consume_cohort(("logistic", "stratified_kfold(2)")), _consume_cohort(("cox", "kfold(2)")),
               _consume_attribute_table],
    "Features": [_consume_features("logistic", "stratified_kfold(2)"), _consume_features("cox", "kfold(2)")],
    "Mask": [_consume_mask],
    "Split": [_consume_split("logistic", METRICS["stratified_kfold(2)"]), _consume_split("cox", METRICS["kfold(2)"])],
    # a model adapted across sites (DANN) is validated leave-one-site-out only (E540)
    "Model": [_consume_model("stratified_kfold(2)"), _consume_model("kfold(2)"), _consume_model("leave_one_site_out")],
    "Network": [_consume_network(n, d) for n, d in NETWORK_VARIANTS],
    "TrainedModel": [_score("segmentation"), _score("gradcam")],
}


# --------------------------------------------------------------------------------------------------
# Shrinking an example for a run: by setting name, from the example's value (an IR node) to new text.
# A function returns None to keep the value; `ADD` settings are added when absent (their defaults cost).
# --------------------------------------------------------------------------------------------------

def _num(v):
    return v.value if isinstance(v, ir.Num) and v.unit is None else None


def _cap(limit):
    """At most `limit`, but never below the setting's own minimum (`ge`): phantom cases >= 4, Grad-CAM cases >= 1."""
    def shrink(v, field):
        if _num(v) is None:
            return None
        floor = max((m.ge for m in field.metadata if getattr(m, "ge", None) is not None), default=limit)
        return str(min(_num(v), max(limit, floor)))
    return shrink


def _always(text):
    return lambda v, field: text


def _cv(v, field):
    if isinstance(v, ir.CallV) and v.name in ("stratified_kfold", "kfold"):
        return f"{v.name}(2)"
    return "2" if _num(v) is not None else None   # an inner CV's folds (lasso)


def _channels(v, field):
    if isinstance(v, ir.ListV):
        return "[" + ", ".join(str(4 * 2 ** i) for i in range(len(v.items))) + "]"
    return None


def _patch(v, field):
    return "[" + ", ".join("16" for _ in v.items) + "]" if isinstance(v, ir.ListV) else None


TINY = {
    "cases": _cap(2), "size": _always("[16, 16, 16]"), "bootstrap": _cap(10), "cv": _cv, "epochs": _cap(1),
    "local_epochs": _cap(1), "rounds": _cap(1), "patch": _patch, "channels": _channels, "batch": _cap(2),
    "validate_every": _cap(1), "n_estimators": _cap(10), "threshold_cv": _cap(2),
}
ADD = {"size": "[16, 16, 16]", "bootstrap": "10", "epochs": "1"}


# --------------------------------------------------------------------------------------------------
# The example: which names it references, and the rewrites (rename, shrink) on its text.
# --------------------------------------------------------------------------------------------------

@dataclass
class Example:
    op: object
    text: str
    stmt: ir.Stmt
    refs: dict[str, tuple[str, ...]]        # referenced name -> accepted kinds ("Cohort" for `name.attr`)
    label: int                              # the largest `label: k` setting: the masks must hold label k

    @classmethod
    def parse(cls, op, text):
        try:
            module = parse(text, f"<{op.name} example>")
        except SourceError as e:
            raise FixtureError(f"`{op.name}` example does not parse: {text!r}: {[d.message for d in e.diagnostics]}") from None
        if len(module.stmts) != 1 or module.study or module.uses:
            raise FixtureError(f"`{op.name}` example must be exactly one statement: {text!r}")
        stmt = module.stmts[0]
        if stmt.op.name != op.name or stmt.kind != op.kind:
            raise FixtureError(f"`{op.name}` example is a `{stmt.kind} ... = {stmt.op.name}(...)` statement, "
                               f"not a `{op.kind} ... = {op.name}(...)` one: {text!r}")
        refs: dict[str, tuple[str, ...]] = {}
        for port, value in _port_values(op, stmt):
            for ref in _refs(value):
                if len(ref.parts) == 1:
                    kinds = port.kinds if port is not None else ()
                    if kinds:
                        refs.setdefault(ref.parts[0], kinds)
                elif ref.parts[1] in COHORT_ATTRS:
                    refs[ref.parts[0]] = ("Cohort",)
        labels = [_num(v) for k, v in _settings(op, stmt) if k == "label" and isinstance(_num(v), int)]
        return cls(op, text, stmt, refs, max(labels, default=0))


def _strings(value):
    if isinstance(value, ir.Str):
        yield value.value
    elif isinstance(value, ir.ListV):
        for item in value.items:
            yield from _strings(item)
    elif isinstance(value, ir.CallV):
        for a in value.args:
            yield from _strings(a.value)


# Files an example names by their kind (suffix), written beside the spec: a YAML file is a PyRadiomics parameter file
# (`pyradiomics { params: from_params("Params.yaml") }`). A CSV is written from the stage's settings (write_example_file).
EXAMPLE_FILES = {
    ".yaml": "setting:\n  binWidth: 25\nimageType:\n  Original: {}\nfeatureClass:\n  firstorder:\n",
    # gene sets over the columns of the tabular fixture (breast_cancer), for a gene-set score's example
    ".gmt": "size\tlesion size\tmean_radius\tmean_perimeter\tmean_area\tworst_area\n"
            "shape\tlesion shape\tmean_smoothness\tmean_compactness\tmean_concavity\tworst_concavity\n",
}


def _refs(value):
    if isinstance(value, ir.Ref):
        yield value
    elif isinstance(value, ir.ListV):
        for item in value.items:
            yield from _refs(item)
    elif isinstance(value, ir.CallV):
        for a in value.args:
            yield from _refs(a.value)
    elif isinstance(value, ir.Compare):
        yield from _refs(value.left)
        yield from _refs(value.right)
    elif isinstance(value, ir.Cast):
        yield from _refs(value.value)


def _port_values(op, stmt):
    """(port or None, value) for every argument and setting of the statement (None: a setting)."""
    pos = [a for a in stmt.op.args if a.name is None]
    for i, a in enumerate(pos):
        yield (op.port(op.positional[i]) if i < len(op.positional) else None), a.value
    for a in stmt.op.args:
        if a.name is not None:
            yield op.port(a.name), a.value
    for s in stmt.settings:
        yield op.port(s.key), s.value


def _settings(op, stmt):
    """(setting name, value node) for every setting the statement gives, positional ones included."""
    pos = [a for a in stmt.op.args if a.name is None]
    for i, a in enumerate(pos):
        if i < len(op.positional) and op.port(op.positional[i]) is None:
            yield op.positional[i], a.value
    for a in stmt.op.args:
        if a.name is not None and op.port(a.name) is None:
            yield a.name, a.value
    for s in stmt.settings:
        if op.port(s.key) is None:
            yield s.key, s.value


def rewrite(ex: Example, rename: dict[str, str], tiny: bool) -> str:
    stmt, text, edits = ex.stmt, ex.text, []
    edits.append((stmt.name_span.start, stmt.name_span.end, rename[stmt.name]))
    for _, value in _port_values(ex.op, stmt):
        for ref in _refs(value):
            if ref.parts[0] in rename:
                edits.append((ref.span.start, ref.span.end, ".".join((rename[ref.parts[0]],) + ref.parts[1:])))
    added = []
    if tiny:
        fields = ex.op.settings.model_fields
        given = dict(_settings(ex.op, stmt))
        for key, value in given.items():
            new = TINY[key](value, fields[key]) if key in TINY and key in fields else None
            if new is not None:
                edits.append((value.span.start, value.span.end, new))
        added = [f"{k}: {v}" for k, v in ADD.items() if k in fields and k not in given]
    out = text
    for start, end, new in sorted(edits, reverse=True):
        out = out[:start] + new + out[end:]
    if added:
        extra = ", ".join(added)
        out = out.rstrip()
        out = out[:-1].rstrip() + f", {extra} }}" if stmt.settings else out + f" {{ {extra} }}"
    return out


# --------------------------------------------------------------------------------------------------
# The fixture: search the variants until the fragment compiles cleanly.
# --------------------------------------------------------------------------------------------------

@dataclass
class Fixture:
    op: str
    example: str
    stage: str                  # the example's stage name in the fixture
    prefix: str
    text: str                   # the statements (no `study` header)
    cohort_variant: str
    files: list[tuple[str, dict]] = field(default_factory=list)   # (path relative to the spec, stage params): CSVs to write
    texts: list[tuple[str, str]] = field(default_factory=list)    # (path relative to the spec, text): other files to write


def study_text(title: str, bodies: list[str]) -> str:
    return f'study "{title}" {{\n  seed: 5\n}}\n\n' + "\n\n".join(bodies) + "\n"


def fixture(op, example: str, prefix: str, tiny: bool, spec: Path) -> Fixture:
    """The first combination of variants under which the example compiles with no errors (see the module doc)."""
    ex = Example.parse(op, example)
    cohort_refs = [n for n, k in ex.refs.items() if k == ("Cohort",)]
    other = [n for n, k in ex.refs.items() if k != ("Cohort",)]
    rename = {n: f"{prefix}_{n}" for n in [ex.stmt.name, *ex.refs]}
    choices = []
    for n in other:
        kinds = [k for k in ex.refs[n] if k in PROVIDERS]
        if not kinds:
            raise FixtureError(f"`{op.name}`: no fixture provider for `{n}` of kind {' or '.join(ex.refs[n])}; add one to PROVIDERS")
        choices.append([(k, i) for k in kinds for i in range(len(PROVIDERS[k]))])
    consumers = [None] if op.sink else list(range(len(CONSUMERS.get(op.output, ()))))
    if not consumers:
        raise FixtureError(f"`{op.name}` outputs {op.output}, is not a sink, and CONSUMERS has no consumer for {op.output}: "
                           f"add one (statements that use it and reach a sink), or pruning drops it")
    own_cohort = op.output == "Cohort"
    best = (float("inf"), 0, "")   # the first attempt with the fewest errors, reported if none compiles
    attempts = itertools.count()
    # cohort indices: each cohort the example names is the dev one (0) or a held-out one (1, 2, ...)
    index_choices = list(itertools.permutations(range(len(cohort_refs) + 1), len(cohort_refs)))
    # names of one kind get different providers where they can (a join of a table with itself is refused at run time)
    picks_all = list(itertools.product(*choices))
    picks_all = [p for p in picks_all if len(set(p)) == len(p)] + [p for p in picks_all if len(set(p)) < len(p)]
    for picks, variant, indices, consumer in itertools.product(picks_all, COHORTS, index_choices, consumers):
        if LABELS[variant] < ex.label:
            continue
        w = World(prefix, variant, {rename[n]: i for n, i in zip(cohort_refs, indices)})
        stmts = []
        for n, (kind, i) in zip(other, picks):
            stmts += PROVIDERS[kind][i](w, rename[n])
        stmts.append(rewrite(ex, rename, tiny))
        if consumer is not None:
            stmts += CONSUMERS[op.output][consumer](w, rename[ex.stmt.name])
        # a network cross-validated by `evaluate` (a network model) needs both classes in every fold: full-size cohorts
        small = any(x.split(" ", 1)[0] in SMALL_KINDS for x in stmts) and not any(x.startswith("validate ") and "= evaluate(" in x for x in stmts)
        body = "\n".join(w.define_cohorts(small=small) + stmts)
        if not own_cohort and not w.cohort_index:
            continue
        missing = sorted({f"{c}.{a}" for c in w.cohort_index for a in re.findall(rf"\b{c}\.(\w+)", body) if a not in ATTRS[variant]})
        if missing:   # the checker does not know a tabular cohort has no images; the run would
            continue
        res = compile_source(study_text("fixture", [body]), str(spec))
        if res.ok and not any(d.severity == "error" for d in res.diagnostics):
            stage = rename[ex.stmt.name]
            if stage not in {s.name for s in res.study.stages}:
                best = min(best, (0, next(attempts), f"  the stage `{stage}` was pruned (no sink downstream)\n{body}"))
                continue
            files = [(s.params["path"], s.params) for s in res.study.stages
                     if s.name == stage and isinstance(s.params.get("path"), str)]
            texts = [(v, EXAMPLE_FILES[Path(v).suffix]) for _, value in _settings(op, ex.stmt) for v in _strings(value)
                     if Path(v).suffix in EXAMPLE_FILES]
            return Fixture(op.name, example, stage, prefix, body, variant, files, texts)
        errors = [f"  {d.code} {d.message}" for d in res.diagnostics if d.severity == "error"]
        best = min(best, (len(errors), next(attempts), "\n".join(errors) + "\n" + body))
    raise FixtureError(f"`{op.name}`: no fixture study compiles around the example {example!r}; "
                       f"the closest attempt gave:\n{best[2]}")


# --------------------------------------------------------------------------------------------------
# Data files: phantom cases for the manifest-based cohort variants, and the CSV an example reads (its `path`).
# --------------------------------------------------------------------------------------------------

def write_data(spec_dir: Path, data: str = DATA):
    """Phantom cases (16^3) under <spec_dir>/<data>/{dev,held}, with channels<k>.csv manifests."""
    from radlang.ops.cohorts import make_phantom

    rows = {}
    for part, n in DATA_PARTS.items():
        folder = spec_dir / data / part
        params = {"cases": n, "effect": 2.0, "sites": 2, "site_shift": 0.0, "noise": 8.0, "size": [16, 16, 16],
                  "spacing": [1.0, 1.0, 1.0]}
        manifest = make_phantom(params, 17 if part == "dev" else 99, str(folder), part)
        with open(manifest, newline="", encoding="utf-8") as fh:
            rows[part] = list(csv.DictReader(fh))
        tables = {"habitats": _habitats(folder, rows[part]), "ct": _ct(folder, rows[part])}
        for k in CHANNELS:
            tables[f"channels{k}"] = [["case_id"] + [f"c{i + 1}" for i in range(k)] + ["mask", "malignant", "site", "age"]] + [
                [r["case_id"]] + [r["image"]] * k + [r["mask"], r["malignant"], r["site"], r["age"]] for r in rows[part]]
        for name, table in tables.items():
            for suffix, body in (("", table[1:]), ("_small", table[1:5])):
                with open(folder / f"{name}{suffix}.csv", "w", newline="", encoding="utf-8") as fh:
                    csv.writer(fh, lineterminator="\n").writerows([table[0]] + body)
    return rows


def _ct(folder: Path, rows: list[dict]) -> list[list[str]]:
    """The ct table: the phantom cases inside a shell of air (-1000 HU, 2 voxels thick), as a CT scan has around the body
    (the phantom's field of view is all tissue: an intensity window such as [-100, 300] HU would select all of it)."""
    import SimpleITK as sitk

    table = [["case_id", "image", "mask", "malignant", "site", "age"]]
    for r in rows:
        image = sitk.ReadImage(str(folder / r["image"]))
        arr = sitk.GetArrayFromImage(image)
        arr[:2], arr[-2:], arr[:, :2], arr[:, -2:], arr[:, :, :2], arr[:, :, -2:] = -1000, -1000, -1000, -1000, -1000, -1000
        out = sitk.GetImageFromArray(arr)
        out.CopyInformation(image)
        path = r["image"].replace("_image.", "_ct.")
        sitk.WriteImage(out, str(folder / path), True)
        table.append([r["case_id"], path, r["mask"], r["malignant"], r["site"], r["age"]])
    return table


def _habitats(folder: Path, rows: list[dict]) -> list[list[str]]:
    """The habitats table: the phantom cases with a label map per case, 1 = the lesion's rim, 2 = its core (eroded by 1 voxel)."""
    import numpy as np
    import SimpleITK as sitk
    from scipy import ndimage

    table = [["case_id", "image", "mask", "malignant", "site", "age"]]
    for r in rows:
        mask = sitk.ReadImage(str(folder / r["mask"]))
        lesion = sitk.GetArrayFromImage(mask) > 0
        labels = lesion.astype(np.uint8) + ndimage.binary_erosion(lesion).astype(np.uint8)
        out = sitk.GetImageFromArray(labels)
        out.CopyInformation(mask)
        path = r["mask"].replace("_mask.", "_labels.")
        sitk.WriteImage(out, str(folder / path), True)
        table.append([r["case_id"], r["image"], path, r["malignant"], r["site"], r["age"]])
    return table


def write_example_file(spec_dir: Path, rel: str, params: dict, rows: list[dict], data_dir: Path):
    """The CSV an example reads: one row per phantom case, each column under the name the example's settings give
    its role (id, patient, image(s), mask, outcome, site, clinical); an `age` column is a feature of a table."""
    path = spec_dir / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    cols: dict[str, callable] = {}

    def rel_to(p):
        return os.path.relpath(data_dir / p, path.parent).replace(os.sep, "/")

    cols[params.get("id") or "case_id"] = lambda r: r["case_id"]
    if params.get("patient"):
        cols[params["patient"]] = lambda r: r["case_id"]
    images = params.get("image")
    for name in ([images] if isinstance(images, str) else images or []):
        cols[name] = lambda r: rel_to(r["image"])
    if params.get("mask"):
        cols[params["mask"]] = lambda r: rel_to(r["mask"])
    outcome = params.get("outcome") or {}
    if outcome.get("column"):
        cols[outcome["column"]] = lambda r: r["malignant"]
    if outcome.get("time"):
        cols[outcome["time"]] = lambda r: str(10 + int(r["age"]) % 50)
        cols[outcome["event"]] = lambda r: r["malignant"]
    if params.get("site"):
        cols[params["site"]] = lambda r: r["site"]
    for name in params.get("clinical") or params.get("columns") or ["age"]:
        cols[name] = lambda r: r["age"]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        wr = csv.writer(fh, lineterminator="\n")
        wr.writerow(list(cols))
        for r in rows:
            wr.writerow([f(r) for f in cols.values()])
