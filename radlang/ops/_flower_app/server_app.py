"""The ServerApp of a federated radlang stage (emitted by `radlang render --target flower`).

It runs the same rounds as `radlang run` (engine.federated_rounds, the same server formulas and seeds); only the
clients' local training happens on the SuperNodes, one per site, through Flower messages. What crosses the boundary:
the global weights (server -> clients), each site's trained weights, case count and mean loss, its per-feature
sums for standardisation, and its test metric (clients -> server). No case leaves a site.
The result (final weights per seed, per-site test metrics, the rounds' history) is written as JSON to the run
config's `out` path."""

import json
import os
import time

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.serverapp import Grid, ServerApp

from .engine import engine_parts, fed_params, federated_rounds, federation_scaling, stop_message

app = ServerApp()
with open(os.path.join(os.path.dirname(__file__), "spec.json"), encoding="utf-8") as _fh:
    SPEC = json.load(_fh)


def _wait_for_sites(grid, expected, timeout):
    """The node ids of the connected SuperNodes, once `expected` of them are there (or the timeout has passed)."""
    deadline = time.monotonic() + timeout
    while True:
        nodes = sorted(grid.get_node_ids())
        if len(nodes) >= expected or time.monotonic() > deadline:
            return nodes
        time.sleep(0.5)


def _ask(grid, node_of, kind, content, timeout):
    """Send one message per site; return ({site: reply content}, {site: error}) (a missing reply is an error)."""
    msgs = {site: Message(content=content(site), dst_node_id=node, message_type=kind) for site, node in sorted(node_of.items())}
    site_of_id = {}
    for site, m in msgs.items():
        site_of_id[m.metadata.dst_node_id] = site
    replies = grid.send_and_receive(list(msgs.values()), timeout=timeout)
    ok, failed = {}, {}
    for r in replies:
        site = site_of_id.get(r.metadata.src_node_id)
        if site is None:
            continue
        if r.has_error():
            failed[site] = f"client error: {r.error.reason}"
        else:
            ok[site] = r.content
    for site in msgs:
        if site not in ok and site not in failed:
            failed[site] = f"no reply within {timeout:g} s"
    return ok, failed


@app.main()
def main(grid: Grid, context: Context) -> None:
    spec = SPEC
    timeout = float(context.run_config["timeout"])
    params, sites = fed_params(spec["params"]), spec["sites"]
    nodes = _wait_for_sites(grid, len(sites), timeout)
    known, failed = _ask(grid, {str(n): n for n in nodes}, "query",
                         lambda _: RecordDict({"config": ConfigRecord({"what": "site"})}), timeout)
    if failed:
        raise RuntimeError("; ".join(f"SuperNode {n}: {m}" for n, m in sorted(failed.items())))
    node_of = {str(c["site"]["site"]): int(n) for n, c in known.items()}
    missing = sorted(set(sites) - set(node_of))
    if missing:
        raise RuntimeError(f"no SuperNode serves site(s) {', '.join(missing)} (connected: {', '.join(sorted(node_of)) or 'none'})")
    moments = [{"n": int(known[str(node_of[s])]["site"]["n"]), "sum": list(known[str(node_of[s])]["site"]["sum"]),
                "sumsq": list(known[str(node_of[s])]["site"]["sumsq"])} for s in sites]
    skip = int(spec["net"]["n_image"]) if spec.get("net") else 0       # a network's image columns are not standardised
    mean, sd = federation_scaling(moments, skip, params["standardize"], spec["n_features"] - skip)
    mean, sd = [float(v) for v in mean], [float(v) for v in sd]
    make, loss, _, _ = engine_parts(spec["model"], spec["n_features"], spec["n_outputs"], spec.get("net"))
    result = {"sites": sites, "scaling": {"mean": mean, "sd": sd}, "seeds": []}
    for seed in spec["seeds"]:
        def train_round(chosen, weights, rnd, seed=seed):
            def content(site):
                cfg = ConfigRecord({"round": int(rnd), "seed": int(seed), "mean": mean, "sd": sd})
                return RecordDict({"arrays": ArrayRecord(numpy_ndarrays=[w.copy() for w in weights]), "config": cfg})

            replies, failed = _ask(grid, {s: node_of[s] for s in chosen}, "train", content, timeout)
            results = {s: {"weights": r["arrays"].to_numpy_ndarrays(), "n": int(r["metrics"]["n"]), "loss": float(r["metrics"]["loss"])}
                       for s, r in replies.items()}
            return results, failed

        fed = federated_rounds({s: None for s in sites}, make, loss, params, seed, train_round=train_round)
        if "stopped" in fed:
            raise RuntimeError(f"seed {seed}, {stop_message(fed['stopped'])}")
        final = fed["weights"]
        scores, failed = _ask(grid, node_of, "evaluate", lambda _, final=final: RecordDict(
            {"arrays": ArrayRecord(numpy_ndarrays=[w.copy() for w in final]),
             "config": ConfigRecord({"mean": mean, "sd": sd})}), timeout)
        result["seeds"].append({"seed": int(seed), "weights": [w.tolist() for w in final], "history": fed["history"],
                                "sites": {s: (None if int(r["metrics"]["defined"]) == 0 else float(r["metrics"]["metric"]))
                                          for s, r in sorted(scores.items())},
                                "evaluation_failed": dict(sorted(failed.items()))})
    out = context.run_config["out"]
    with open(out + ".part", "w", encoding="utf-8") as fh:
        json.dump(result, fh, indent=1, sort_keys=True)
    os.replace(out + ".part", out)          # whole or absent: whoever waits for the result never reads half of it
