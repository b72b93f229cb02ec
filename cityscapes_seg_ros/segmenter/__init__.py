"""The segmenter: a model built from its options, its weights (hub or file) on a device, in a precision, run on frames.

The entry of this subpackage: everything outside it imports these names from here, never from its modules.
``options`` (``ModelOptions``, ``build_predictor``: the usual way in) -> ``builder`` -> ``checkpoint`` (+ ``hub_cache``),
``devices``, ``precision``, ``choices``; ``inference`` runs the built model (``Predictor``). Importing this package
imports no torch: each name loads its module on first use.
"""

from __future__ import annotations

from ..lazy_exports import lazy_exports

_LAZY = {
    "count_parameters": "builder",
    "build_segmentor": "builder",
    "CheckpointError": "checkpoint",
    "download_from_hub": "checkpoint",
    "parse_hub_source": "checkpoint",
    "read_state_dict": "checkpoint",
    "resolve_checkpoint": "checkpoint",
    "DCNV3_BACKENDS": "choices",
    "DEFAULT_INFERENCE_SIZE": "choices",
    "MODES": "choices",
    "PRECISIONS": "choices",
    "TTA_CHOICES": "choices",
    "device_problem": "devices",
    "resolve_device": "devices",
    "wants_cuda": "devices",
    "cached_checkpoint": "hub_cache",
    "download_command": "hub_cache",
    "fetch_hint": "hub_cache",
    "hub_offline_env": "hub_cache",
    "MEAN_RGB": "inference",
    "STD_RGB": "inference",
    "Prediction": "inference",
    "Predictor": "inference",
    "preprocess": "inference",
    "rescale_size": "inference",
    "scores_to_train_ids": "inference",
    "DEFAULT_MODEL": "options",
    "HUB_CHECKPOINT": "options",
    "NO_CHECKPOINT": "options",
    "RANDOM_WEIGHTS_NOTE": "options",
    "ModelOptions": "options",
    "add_model_arguments": "options",
    "build_predictor": "options",
    "given_options": "options",
    "is_config_file": "options",
    "load_segmentor": "options",
    "model_problem": "options",
    "precision_scope": "precision",
    "estimate_speed": "speed_estimate",
}

__all__ = sorted(_LAZY)

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
