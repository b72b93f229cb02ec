"""The model table of ``cityscapes-seg models``: parameter counts come from the built modules."""

from __future__ import annotations

from typing import Dict, List

import torch

from ..models import MODEL_REGISTRY, EncoderDecoder, SegmentorConfig, UPerHeadConfig
from ..segmenter import count_parameters


def model_rows() -> List[Dict]:
    return [_row(cfg) for cfg in MODEL_REGISTRY.values()]


def _row(cfg: SegmentorConfig) -> Dict:
    with torch.device("meta"):  # shapes only: no memory, no time
        model = EncoderDecoder(cfg)
    ss, ms = cfg.published_miou or (None, None)
    return {
        "name": cfg.name,
        "head": "UperNet" if isinstance(cfg.decode_head, UPerHeadConfig) else "SegFormer",
        "backbone_channels": cfg.backbone.channels,
        "params": count_parameters(model),
        "params_inference": count_parameters(model) - _aux_params(model),
        "published_miou_ss": ss,
        "published_miou_ms": ms,
        "checkpoint": cfg.pretrained.url if cfg.pretrained else None,
    }


def _aux_params(model: EncoderDecoder) -> int:
    aux = getattr(model, "auxiliary_head", None)
    return 0 if aux is None else count_parameters(aux)


def print_model_table(rows: List[Dict]) -> None:
    width = max(len(r["name"]) for r in rows)
    header = f"{'model':<{width}} {'head':<9} {'params':>8} {'infer':>8} {'mIoU ss/ms':>12}"
    print(header)
    print("-" * len(header))
    for r in rows:
        miou = f"{r['published_miou_ss']:.2f}/{r['published_miou_ms']:.2f}"
        print(
            f"{r['name']:<{width}} {r['head']:<9} {r['params'] / 1e6:>7.2f}M {r['params_inference'] / 1e6:>7.2f}M "
            f"{miou:>12}"
        )
    print("\nparams: every weight in the checkpoint (auxiliary head included); infer: without the auxiliary head.")
    print(
        "Checkpoints: https://huggingface.co/OpenGVLab/InternImage (file <model>.pth); mIoU: published, Cityscapes val."
    )
