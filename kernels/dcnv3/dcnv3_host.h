// Host-side argument checks shared by the CPU and the CUDA drivers (ValueError in Python on bad input).
#pragma once

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include "dcnv3_kernels.h"

namespace csr_dcnv3 {

inline Geometry make_geometry(const at::Tensor& input, const at::Tensor& offset, const at::Tensor& mask, int64_t kernel_h,
                              int64_t kernel_w, int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w,
                              int64_t dilation_h, int64_t dilation_w, int64_t group, int64_t group_channels,
                              double offset_scale) {
    TORCH_CHECK_VALUE(input.dim() == 4, "dcnv3: input must be [N, H, W, G*Cg], got ", input.sizes());
    TORCH_CHECK_VALUE(offset.dim() == 4, "dcnv3: offset must be [N, Hout, Wout, G*K*2], got ", offset.sizes());
    TORCH_CHECK_VALUE(mask.dim() == 4, "dcnv3: mask must be [N, Hout, Wout, G*K], got ", mask.sizes());
    TORCH_CHECK_VALUE(kernel_h >= 1 && kernel_w >= 1 && stride_h >= 1 && stride_w >= 1 && dilation_h >= 1 &&
                          dilation_w >= 1 && pad_h >= 0 && pad_w >= 0,
                      "dcnv3: kernel, stride and dilation must be >= 1 and pad >= 0");
    TORCH_CHECK_VALUE(group >= 1 && group_channels >= 1, "dcnv3: group and group_channels must be >= 1");
    TORCH_CHECK_VALUE(input.size(3) == group * group_channels, "dcnv3: input has ", input.size(3),
                      " channels, expected group*group_channels = ", group * group_channels);
    TORCH_CHECK_VALUE(offset.scalar_type() == input.scalar_type() && mask.scalar_type() == input.scalar_type(),
                      "dcnv3: input, offset and mask must have the same dtype");
    TORCH_CHECK_VALUE(offset.device() == input.device() && mask.device() == input.device(),
                      "dcnv3: input, offset and mask must be on the same device");
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
    TORCH_CHECK_VALUE(s.Hout >= 1 && s.Wout >= 1, "dcnv3: empty output for input ", input.sizes());
    const int64_t K = kernel_h * kernel_w;
    TORCH_CHECK_VALUE(offset.size(0) == s.N && offset.size(1) == s.Hout && offset.size(2) == s.Wout &&
                          offset.size(3) == group * K * 2,
                      "dcnv3: offset must be [", s.N, ", ", s.Hout, ", ", s.Wout, ", ", group * K * 2, "], got ",
                      offset.sizes());
    TORCH_CHECK_VALUE(mask.size(0) == s.N && mask.size(1) == s.Hout && mask.size(2) == s.Wout && mask.size(3) == group * K,
                      "dcnv3: mask must be [", s.N, ", ", s.Hout, ", ", s.Wout, ", ", group * K, "], got ", mask.sizes());
    return s;
}

inline void check_out(const at::Tensor& out, const at::Tensor& input, const Geometry& s) {
    TORCH_CHECK_VALUE(out.scalar_type() == input.scalar_type() && out.device() == input.device(),
                      "dcnv3: out must have the input's dtype and device");
    TORCH_CHECK_VALUE(out.dim() == 4 && out.size(0) == s.N && out.size(1) == s.Hout && out.size(2) == s.Wout &&
                          out.size(3) == s.C(),
                      "dcnv3: out must be [", s.N, ", ", s.Hout, ", ", s.Wout, ", ", s.C(), "], got ", out.sizes());
    TORCH_CHECK_VALUE(out.is_contiguous(), "dcnv3: out must be contiguous");
}

}  // namespace csr_dcnv3
