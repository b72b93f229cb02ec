// The geometry of a call, shared by the CPU and the CUDA drivers. The arguments were checked once, at the
// Python entry (cityscapes_seg_ros/ops/dcnv3_args.py): 4-D contiguous tensors of one dtype on one device,
// offset [N, Hout, Wout, G*K*2] and mask [N, Hout, Wout, G*K], `out` (when given) [N, Hout, Wout, G*Cg]; the
// drivers trust them.
#pragma once

#include <ATen/ATen.h>

#include "dcnv3_kernels.h"

namespace csr_dcnv3 {

inline Geometry make_geometry(const at::Tensor& input, int64_t kernel_h, int64_t kernel_w, int64_t stride_h,
                              int64_t stride_w, int64_t pad_h, int64_t pad_w, int64_t dilation_h, int64_t dilation_w,
                              int64_t group, int64_t group_channels, double offset_scale) {
    Geometry s;
    s.N = input.size(0);
    s.H = input.size(1);
    s.W = input.size(2);
    s.G = group;
    s.Cg = group_channels;
    s.kh = static_cast<int>(kernel_h);
    s.kw = static_cast<int>(kernel_w);
    s.sh = static_cast<int>(stride_h);
    s.sw = static_cast<int>(stride_w);
    s.ph = static_cast<int>(pad_h);
    s.pw = static_cast<int>(pad_w);
    s.dh = static_cast<int>(dilation_h);
    s.dw = static_cast<int>(dilation_w);
    s.offset_scale = offset_scale;
    s.Hout = (s.H + 2 * pad_h - (dilation_h * (kernel_h - 1) + 1)) / stride_h + 1;
    s.Wout = (s.W + 2 * pad_w - (dilation_w * (kernel_w - 1) + 1)) / stride_w + 1;
    return s;
}

}  // namespace csr_dcnv3
