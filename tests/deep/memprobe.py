"""Measure the peak memory of one training step on CPU, in a fresh process (run as a script).

Prints JSON: {"measured": bytes, "estimate": bytes}. The measured value is the peak resident set during
one step (forward, loss, backward, Adam update) minus the resident set just before it, once the network,
the optimiser and the batch exist. The peak is reset right before the step (Linux: `5` written to
/proc/self/clear_refs resets VmHWM), so nothing earlier (imports, set-up) can mask it. The estimate is
radlang's compile-time `network_estimates`."""

import json
import sys


def status(field):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(field)


def main():
    spec = json.loads(sys.argv[1])
    patch = json.loads(sys.argv[2])
    batch = int(sys.argv[3])
    import torch
    from monai.losses import DiceCELoss

    from radlang.ops.networks import build_network, network_estimates

    torch.set_num_threads(1)
    est = network_estimates(spec, patch, batch)
    torch.manual_seed(0)
    net = build_network(spec)
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    x = torch.randn((batch, spec["params"]["in_channels"]) + tuple(patch))
    t = (torch.rand((batch, 1) + tuple(patch)) > 0.5).float()
    import gc

    gc.collect()
    before = status("VmRSS")
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    opt.zero_grad()
    loss = loss_fn(net(x), t)
    loss.backward()
    opt.step()
    after = status("VmHWM")
    print(json.dumps({"measured": after - before, "estimate": est["train_bytes"], "saved": est["saved_bytes"], "params": est["params"]}))


if __name__ == "__main__":
    main()
