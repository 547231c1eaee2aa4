"""Render hooks for the deep-learning modes of radlang/backends/modes/deep.py. Each stage calls the
mode's own function, inlined verbatim with the operator code (MONAI / PyTorch) it calls."""

from radlang.backends.render import mode_calls

HOOKS = mode_calls("radlang.backends.modes.deep", {
    "network": "run_network",                  # an architecture recipe
    "train_network": "run_train",
    "predict_mask": "run_predict",
    "segmentation_metrics": "run_segmetrics",
    "gradcam": "run_gradcam",
    "federated": "run_federated",
})
