"""The segmenter: a model built from its options, its weights (hub or file) on a device, in a precision, run on frames.

The entry of this subpackage: everything outside it imports these names from here, never from its modules.
``options`` (``ModelOptions``, ``build_predictor``: the usual way in) -> ``builder`` -> ``checkpoint`` (+ ``hub_cache``),
``devices``, ``precision``, ``choices``; ``inference`` runs the built model (``Predictor``). Importing this package
imports no torch: each name loads its module on first use.
"""

from __future__ import annotations

from ..lazy_exports import lazy_exports

_EXPORTS = {  # module -> the names it hands on
    ".models": ("MODEL_REGISTRY", "get_model_config"),  # the registry of the nine, from the networks
    "builder": ("count_parameters", "build_segmentor"),
    "checkpoint": ("CheckpointError", "download_from_hub", "parse_hub_source", "read_state_dict", "resolve_checkpoint"),
    "choices": ("DCNV3_BACKENDS", "DEFAULT_INFERENCE_SIZE", "MODES", "PRECISIONS", "TTA_CHOICES"),
    "devices": ("device_problem", "resolve_device", "wants_cuda"),
    "hub_cache": ("cached_checkpoint", "download_command", "fetch_hint", "hub_offline_env"),
    "inference": (
        "MEAN_RGB",
        "STD_RGB",
        "Prediction",
        "Predictor",
        "preprocess",
        "rescale_size",
        "scores_to_train_ids",
    ),
    "options": (
        "DEFAULT_MODEL",
        "HUB_CHECKPOINT",
        "NO_CHECKPOINT",
        "RANDOM_WEIGHTS_NOTE",
        "ModelOptions",
        "add_model_arguments",
        "build_predictor",
        "given_options",
        "is_config_file",
        "load_segmentor",
        "model_problem",
    ),
    "precision": ("precision_scope",),
    "speed_estimate": ("estimate_speed",),
}
_LAZY = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_LAZY)

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
