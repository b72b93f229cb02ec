"""An independent description of the released checkpoints' keys and shapes.

Written from the official InternImage / mmseg 0.x module structure, separately from our model code,
and checked against the official state dicts of the fixtures (test_released_checkpoints.py).
"""

from typing import Dict, Optional, Sequence, Tuple

Shapes = Dict[str, Tuple[int, ...]]


def _conv_module(prefix: str, out_ch: int, in_ch: int, k: int) -> Shapes:
    return {
        f"{prefix}.conv.weight": (out_ch, in_ch, k, k),
        **{f"{prefix}.bn.{n}": (out_ch,) for n in ("weight", "bias", "running_mean", "running_var")},
        f"{prefix}.bn.num_batches_tracked": (),
    }


def backbone_shapes(channels: int, depths: Sequence[int], groups: Sequence[int], post_norm: bool) -> Shapes:
    c0 = channels
    s: Shapes = {
        "patch_embed.conv1.weight": (c0 // 2, 3, 3, 3),
        "patch_embed.conv1.bias": (c0 // 2,),
        "patch_embed.norm1.1.weight": (c0 // 2,),
        "patch_embed.norm1.1.bias": (c0 // 2,),
        "patch_embed.conv2.weight": (c0, c0 // 2, 3, 3),
        "patch_embed.conv2.bias": (c0,),
        "patch_embed.norm2.1.weight": (c0,),
        "patch_embed.norm2.1.bias": (c0,),
    }
    for i, (depth, g) in enumerate(zip(depths, groups)):
        c = c0 * 2**i
        for j in range(depth):
            b = f"levels.{i}.blocks.{j}"
            s.update(
                {
                    f"{b}.gamma1": (c,),
                    f"{b}.gamma2": (c,),
                    f"{b}.norm1.0.weight": (c,),
                    f"{b}.norm1.0.bias": (c,),
                    f"{b}.dcn.dw_conv.0.weight": (c, 1, 3, 3),
                    f"{b}.dcn.dw_conv.0.bias": (c,),
                    f"{b}.dcn.dw_conv.1.1.weight": (c,),
                    f"{b}.dcn.dw_conv.1.1.bias": (c,),
                    f"{b}.dcn.offset.weight": (g * 18, c),
                    f"{b}.dcn.offset.bias": (g * 18,),
                    f"{b}.dcn.mask.weight": (g * 9, c),
                    f"{b}.dcn.mask.bias": (g * 9,),
                    f"{b}.dcn.input_proj.weight": (c, c),
                    f"{b}.dcn.input_proj.bias": (c,),
                    f"{b}.dcn.output_proj.weight": (c, c),
                    f"{b}.dcn.output_proj.bias": (c,),
                    f"{b}.norm2.0.weight": (c,),
                    f"{b}.norm2.0.bias": (c,),
                    f"{b}.mlp.fc1.weight": (4 * c, c),
                    f"{b}.mlp.fc1.bias": (4 * c,),
                    f"{b}.mlp.fc2.weight": (c, 4 * c),
                    f"{b}.mlp.fc2.bias": (c,),
                }
            )
        if not post_norm:
            s[f"levels.{i}.norm.0.weight"] = (c,)
            s[f"levels.{i}.norm.0.bias"] = (c,)
        if i < len(depths) - 1:
            s[f"levels.{i}.downsample.conv.weight"] = (2 * c, c, 3, 3)
            s[f"levels.{i}.downsample.norm.1.weight"] = (2 * c,)
            s[f"levels.{i}.downsample.norm.1.bias"] = (2 * c,)
    return s


def upernet_shapes(in_channels: Sequence[int], ch: int, num_classes: int) -> Shapes:
    s: Shapes = {"conv_seg.weight": (num_classes, ch, 1, 1), "conv_seg.bias": (num_classes,)}
    for k in range(4):
        s.update(_conv_module(f"psp_modules.{k}.1", ch, in_channels[-1], 1))
    s.update(_conv_module("bottleneck", ch, in_channels[-1] + 4 * ch, 3))
    for i, cin in enumerate(in_channels[:-1]):
        s.update(_conv_module(f"lateral_convs.{i}", ch, cin, 1))
        s.update(_conv_module(f"fpn_convs.{i}", ch, ch, 3))
    s.update(_conv_module("fpn_bottleneck", ch, len(in_channels) * ch, 3))
    return s


def segformer_shapes(in_channels: Sequence[int], ch: int, num_classes: int) -> Shapes:
    s: Shapes = {"conv_seg.weight": (num_classes, ch, 1, 1), "conv_seg.bias": (num_classes,)}
    for i, cin in enumerate(in_channels):
        s.update(_conv_module(f"convs.{i}", ch, cin, 1))
    s.update(_conv_module("fusion_conv", ch, len(in_channels) * ch, 1))
    return s


def fcn_shapes(in_ch: int, ch: int, num_classes: int) -> Shapes:
    return {
        **_conv_module("convs.0", ch, in_ch, 3),
        "conv_seg.weight": (num_classes, ch, 1, 1),
        "conv_seg.bias": (num_classes,),
    }


def released_shapes(
    channels: int,
    depths: Sequence[int],
    groups: Sequence[int],
    post_norm: bool,
    head: str,
    head_channels: int,
    aux_channels: Optional[int],
    num_classes: int = 150,
    head_in_channels: Optional[Sequence[int]] = None,
) -> Shapes:
    """Keys (with the backbone./decode_head./auxiliary_head. prefixes) -> shapes of a released checkpoint."""
    stages = head_in_channels or [channels * 2**i for i in range(len(depths))]
    parts = {"backbone": backbone_shapes(channels, depths, groups, post_norm)}
    if head == "upernet":
        parts["decode_head"] = upernet_shapes(stages, head_channels, num_classes)
    else:
        parts["decode_head"] = segformer_shapes(stages, head_channels, num_classes)
    if aux_channels is not None:
        parts["auxiliary_head"] = fcn_shapes(stages[2], aux_channels, num_classes)
    return {f"{prefix}.{key}": shape for prefix, shapes in parts.items() for key, shape in shapes.items()}


# The nine released models (official configs): channels, depths, groups, post_norm, head, head ch, aux ch.
_SIZES = {
    "t": (64, (4, 4, 18, 4), (4, 8, 16, 32), False),
    "s": (80, (4, 4, 21, 4), (5, 10, 20, 40), True),
    "b": (112, (4, 4, 21, 4), (7, 14, 28, 56), True),
    "l": (160, (5, 5, 22, 5), (10, 20, 40, 80), True),
    "xl": (192, (5, 5, 24, 5), (12, 24, 48, 96), True),
}
RELEASED = {
    **{f"upernet_internimage_{s}_512x1024_160k_cityscapes": (*_SIZES[s], "upernet", 512, 256) for s in _SIZES},
    **{
        f"upernet_internimage_{s}_512x1024_160k_mapillary2cityscapes": (*_SIZES[s], "upernet", 512, 256)
        for s in ("l", "xl")
    },
    **{
        f"segformer_internimage_{s}_512x1024_160k_mapillary2cityscapes": (*_SIZES[s], "segformer", 256, None)
        for s in ("l", "xl")
    },
}

# From ../shared/design (counted on the official modules, auxiliary head included), in millions.
PUBLISHED_PARAMS_M = {
    "upernet_internimage_t_512x1024_160k_cityscapes": 59.08,
    "upernet_internimage_s_512x1024_160k_cityscapes": 79.87,
    "upernet_internimage_b_512x1024_160k_cityscapes": 128.39,
    "upernet_internimage_l_512x1024_160k_cityscapes": 255.60,
    "upernet_internimage_xl_512x1024_160k_cityscapes": 367.73,
    "upernet_internimage_l_512x1024_160k_mapillary2cityscapes": 255.60,
    "upernet_internimage_xl_512x1024_160k_mapillary2cityscapes": 367.73,
    "segformer_internimage_l_512x1024_160k_mapillary2cityscapes": 219.87,
    "segformer_internimage_xl_512x1024_160k_mapillary2cityscapes": 330.01,
}
