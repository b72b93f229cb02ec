"""Test helpers for the DCNv3 core: a naive float64 reference, random inputs, the shapes the models use."""

from __future__ import annotations

import torch


def reference_dcnv3(inp, offset, mask, kh, kw, sh, sw, ph, pw, dh, dw, group, cg, offset_scale):
    """Naive DCNv3 core (the semantics of the official dcnv3_core_pytorch / CUDA op), differentiable.

    x = wo*sw - pw + (dw*(kw-1))//2 + s*(ix*dw - (dw*(kw-1))//2 + off_x), points x-major (p = ix*kh + iy),
    bilinear with zeros outside the image, out = sum_p mask_p * sample_p.
    """
    n, h, w, c = inp.shape
    _, ho, wo, _ = offset.shape
    k = kh * kw
    dt, dev = inp.dtype, inp.device
    off = offset.reshape(n, ho, wo, group, k, 2)
    m = mask.reshape(n, ho, wo, group, k)
    ix = torch.arange(kw, device=dev).repeat_interleave(kh).to(dt)  # p = ix*kh + iy
    iy = torch.arange(kh, device=dev).repeat(kw).to(dt)
    half_w, half_h = (dw * (kw - 1)) // 2, (dh * (kh - 1)) // 2
    bx = (torch.arange(wo, device=dev) * sw - pw + half_w).to(dt).view(1, 1, wo, 1, 1)
    by = (torch.arange(ho, device=dev) * sh - ph + half_h).to(dt).view(1, ho, 1, 1, 1)
    x = bx + offset_scale * (ix * dw - half_w + off[..., 0])  # [n, ho, wo, g, k]
    y = by + offset_scale * (iy * dh - half_h + off[..., 1])
    x0, y0 = torch.floor(x), torch.floor(y)
    lx, ly = x - x0, y - y0
    v = inp.reshape(n, h * w, group, cg)
    out = 0
    for cy, cx, wt in (
        (y0, x0, (1 - ly) * (1 - lx)),
        (y0, x0 + 1, (1 - ly) * lx),
        (y0 + 1, x0, ly * (1 - lx)),
        (y0 + 1, x0 + 1, ly * lx),
    ):
        valid = (cy >= 0) & (cy <= h - 1) & (cx >= 0) & (cx <= w - 1)
        idx = (cy.clamp(0, h - 1) * w + cx.clamp(0, w - 1)).long()  # [n, ho, wo, g, k]
        gidx = idx.permute(0, 3, 1, 2, 4).reshape(n, group, -1)  # [n, g, ho*wo*k]
        vg = v.permute(0, 2, 1, 3)  # [n, g, h*w, cg]
        sampled = torch.gather(vg, 2, gidx.unsqueeze(-1).expand(-1, -1, -1, cg))
        sampled = sampled.reshape(n, group, ho, wo, k, cg).permute(0, 2, 3, 1, 4, 5)
        coef = (wt * m * valid.to(dt)).unsqueeze(-1)
        out = out + (coef * sampled).sum(4)
    return out.reshape(n, ho, wo, group * cg)


def out_size(size, k, s, p, d):
    return (size + 2 * p - (d * (k - 1) + 1)) // s + 1


def make_inputs(
    n, h, w, g, cg, k=3, s=1, p=1, d=1, offset_std=2.0, dtype=torch.float64, device="cpu", seed=0, exact=0.05
):
    gen = torch.Generator().manual_seed(seed)
    ho, wo = out_size(h, k, s, p, d), out_size(w, k, s, p, d)
    kk = k * k
    inp = torch.randn(n, h, w, g * cg, generator=gen, dtype=torch.float64)
    offset = torch.randn(n, ho, wo, g * kk * 2, generator=gen, dtype=torch.float64) * offset_std
    # some points far outside the image, some exactly on pixel centres / borders
    far = torch.rand(offset.shape, generator=gen) < 0.05
    offset[far] = (torch.rand(int(far.sum()), generator=gen, dtype=torch.float64) - 0.5) * 4 * (h + w)
    # (gradients skip these: at a position exactly on -1 the official CUDA op, which we follow, gives zero
    # gradient while grid_sample's one-sided derivative does not)
    exact = torch.rand(offset.shape, generator=gen) < exact
    offset[exact] = torch.round(offset[exact])
    mask = torch.softmax(torch.randn(n, ho, wo, g, kk, generator=gen, dtype=torch.float64) * 2, -1)
    mask = mask.reshape(n, ho, wo, g * kk)
    return [t.to(device=device, dtype=dtype) for t in (inp, offset, mask)]


def rel_err(a, b):
    a, b = a.double(), b.double()
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


# (N, H, W, group, group_channels, offset_scale): the group sizes of the nine models (16 channels per group;
# T 4..32, S 5..40, B 7..56, L 10..80, XL 12..96), odd sizes, offset_scale 1 (T/S/B) and 2 (L/XL).
MODEL_CASES = [
    (2, 13, 17, 4, 16, 1.0),
    (2, 9, 11, 5, 16, 1.0),
    (2, 7, 9, 14, 16, 1.0),
    (2, 11, 7, 10, 16, 2.0),
    (2, 5, 7, 40, 16, 2.0),
    (1, 3, 5, 96, 16, 2.0),
    (2, 1, 1, 8, 16, 1.0),
]
# (N, H, W, group, group_channels, k, stride, pad, dilation, offset_scale): general geometry
GENERAL_CASES = [
    (1, 9, 11, 3, 5, 3, 1, 1, 1, 1.5),
    (2, 10, 7, 2, 8, 3, 2, 1, 2, 1.0),
    (1, 8, 9, 2, 4, 5, 1, 2, 1, 0.5),
    (1, 6, 8, 1, 12, 3, 1, 0, 1, 1.0),
    (1, 7, 7, 2, 3, 1, 1, 0, 1, 1.0),
]


def kernel_args(k, s, p, d, g, cg, os_):
    return (k, k, s, s, p, p, d, d, g, cg, os_)
