"""The ClientApp of a federated radlang stage (emitted by `radlang render --target flower`).

Each SuperNode serves one site. Its node config names the site's own files, and nothing else is read:
    data-path   the site's training cases (CSV: case_id, the feature columns, the outcome columns)
    test-path   the site's test cases (optional; same columns)
    audit-log   optional: every file this ClientApp process opens is appended to this file (a privacy audit)
The site's name is its data's folder name unless the node config gives `site`."""

import json
import os
import sys

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from .engine import client_seed, engine_parts, fed_params, score_metric, site_moments

app = ClientApp()
with open(os.path.join(os.path.dirname(__file__), "spec.json"), encoding="utf-8") as _fh:
    SPEC = json.load(_fh)
_AUDITED = set()
# the model, its loss, the local update and the scores: the linear model's, or a network's (its own training loop)
MAKE, LOSS, UPDATE, PREDICT = engine_parts(SPEC["model"], SPEC["n_features"], SPEC["n_outputs"], SPEC.get("net"))
SKIP = int(SPEC["net"]["n_image"]) if SPEC.get("net") else 0     # a network's image columns are not standardised


def _audit(context):
    """Install (once per process) an audit hook that logs every opened path to the node's `audit-log`."""
    log = context.node_config.get("audit-log")
    if not log or log in _AUDITED:
        return
    _AUDITED.add(log)
    fh = open(log, "a", encoding="utf-8")  # noqa: SIM115  open for the life of the process: the hook writes every open to it

    def hook(event, args):
        if event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
            fh.write(os.fsdecode(os.path.abspath(args[0])) + "\n")
            fh.flush()

    sys.addaudithook(hook)


def _site(context):
    return str(context.node_config.get("site") or os.path.basename(os.path.dirname(os.path.abspath(context.node_config["data-path"]))))


def _read(path, targets):
    """(X, y) of one site's CSV, in the columns the spec names (float64, exactly as written): y from the columns
    `targets` (the training targets, or the outcome a test file holds)."""
    import numpy as np
    import pandas as pd

    df = pd.read_csv(path, float_precision="round_trip")
    X = df[SPEC["features"]].to_numpy(dtype=np.float64)
    y = df[SPEC[targets]].to_numpy(dtype=np.float64)
    return X, y


@app.query()
def query(msg: Message, context: Context) -> Message:
    _audit(context)
    X, _ = _read(context.node_config["data-path"], "target_columns")
    m = site_moments(X[:, SKIP:])
    rec = ConfigRecord({"site": _site(context), "n": m["n"], "sum": [float(v) for v in m["sum"]], "sumsq": [float(v) for v in m["sumsq"]]})
    return Message(content=RecordDict({"site": rec}), reply_to=msg)


@app.train()
def train(msg: Message, context: Context) -> Message:
    import numpy as np

    _audit(context)
    cfg = msg.content["config"]
    X, y = _read(context.node_config["data-path"], "target_columns")
    X = (X - np.asarray(cfg["mean"])) / np.asarray(cfg["sd"])
    params = fed_params(SPEC["params"])
    out = UPDATE(MAKE, LOSS, msg.content["arrays"].to_numpy_ndarrays(), X, y, params,
                 client_seed(int(cfg["seed"]), int(cfg["round"]), _site(context)))
    reply = RecordDict({"arrays": ArrayRecord(numpy_ndarrays=out["weights"]),
                        "metrics": MetricRecord({"n": int(out["n"]), "loss": float(out["loss"])})})
    return Message(content=reply, reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    import numpy as np

    _audit(context)
    path = context.node_config.get("test-path")
    metric = None
    n = 0
    if path:
        cfg = msg.content["config"]
        X, y = _read(path, "outcome_columns")
        X = (X - np.asarray(cfg["mean"])) / np.asarray(cfg["sd"])
        metric = score_metric(SPEC["model"], y, PREDICT(MAKE, msg.content["arrays"].to_numpy_ndarrays(), X))
        n = len(X)
    rec = MetricRecord({"metric": float(metric if metric is not None else 0.0), "defined": int(metric is not None), "n": int(n)})
    return Message(content=RecordDict({"metrics": rec}), reply_to=msg)
