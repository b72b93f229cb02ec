// DCNv3 CPU op: the per-sample code of dcnv3_kernels.h, run with at::parallel_for.
//   forward : parallel over N*Hout*Wout*G (pixel, group) tasks; each loops its group's channels contiguously.
//   backward: parallel over the N*G (image, group) slices, which own disjoint channels of grad_input, so
//             no atomics are needed; grad_input is accumulated in fp32 (fp64 for fp64) and cast at the end.
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/extension.h>

#include <optional>
#include <vector>

#define CSR_STRINGIFY_(x) #x
#define CSR_STRINGIFY(x) CSR_STRINGIFY_(x)

#include "dcnv3_host.h"
#include "dcnv3_kernels.h"

namespace csr_dcnv3 {
namespace {

template <typename scalar_t, typename acc_t, int CH>
void forward_cpu_impl(const Geometry& s, const scalar_t* in, const scalar_t* off, const scalar_t* msk, scalar_t* out) {
    const int64_t tasks = s.pixels() * s.G;
    at::parallel_for(0, tasks, 256, [&](int64_t begin, int64_t end) {
        // decompose the first task once, then step (g -> wo -> ho -> n) without divisions
        int64_t pix = begin / s.G, g = begin - pix * s.G;
        int64_t n = pix / (s.Hout * s.Wout), r = pix - n * s.Hout * s.Wout;
        int64_t ho = r / s.Wout, wo = r - ho * s.Wout;
        for (int64_t t = begin; t < end; ++t) {
            for (int64_t c0 = 0; c0 < s.Cg; c0 += CH)
                forward_group_chunk_batched<scalar_t, acc_t, CH>(s, in, off, msk, out, n, ho, wo, g, c0);
            if (++g == s.G) {
                g = 0;
                if (++wo == s.Wout) {
                    wo = 0;
                    if (++ho == s.Hout) { ho = 0; ++n; }
                }
            }
        }
    });
}

template <typename scalar_t>
void forward_cpu_dispatch(const Geometry& s, const scalar_t* in, const scalar_t* off, const scalar_t* msk,
                          scalar_t* out) {
    using acc_t = at::opmath_type<scalar_t>;
    if (s.Cg % 16 == 0)
        forward_cpu_impl<scalar_t, acc_t, 16>(s, in, off, msk, out);
    else if (s.Cg % 8 == 0)
        forward_cpu_impl<scalar_t, acc_t, 8>(s, in, off, msk, out);
    else if (s.Cg % 4 == 0)
        forward_cpu_impl<scalar_t, acc_t, 4>(s, in, off, msk, out);
    else
        forward_cpu_impl<scalar_t, acc_t, 1>(s, in, off, msk, out);
}

}  // namespace

at::Tensor dcnv3_forward_cpu(const at::Tensor& input, const at::Tensor& offset, const at::Tensor& mask,
                             int64_t kernel_h, int64_t kernel_w, int64_t stride_h, int64_t stride_w, int64_t pad_h,
                             int64_t pad_w, int64_t dilation_h, int64_t dilation_w, int64_t group,
                             int64_t group_channels, double offset_scale, std::optional<at::Tensor> out_) {
    const Geometry s = make_geometry(input, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h,
                                     dilation_w, group, group_channels, offset_scale);
    at::Tensor out = out_.has_value() ? *out_ : at::empty({s.N, s.Hout, s.Wout, s.C()}, input.options());
    if (out.numel() == 0) return out;
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "dcnv3_forward_cpu", [&] {
        forward_cpu_dispatch<scalar_t>(s, input.const_data_ptr<scalar_t>(), offset.const_data_ptr<scalar_t>(),
                                       mask.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>());
    });
    return out;
}

std::vector<at::Tensor> dcnv3_backward_cpu(const at::Tensor& input, const at::Tensor& offset, const at::Tensor& mask,
                                           int64_t kernel_h, int64_t kernel_w, int64_t stride_h, int64_t stride_w,
                                           int64_t pad_h, int64_t pad_w, int64_t dilation_h, int64_t dilation_w,
                                           int64_t group, int64_t group_channels, double offset_scale,
                                           const at::Tensor& grad_output) {
    const Geometry s = make_geometry(input, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h,
                                     dilation_w, group, group_channels, offset_scale);
    const auto acc_type = at::toOpMathType(input.scalar_type());
    at::Tensor grad_input_acc = at::zeros(input.sizes(), input.options().dtype(acc_type));
    at::Tensor grad_offset = at::empty_like(offset);
    at::Tensor grad_mask = at::empty_like(mask);
    if (input.numel() == 0 || grad_mask.numel() == 0) {
        grad_offset.zero_();
        grad_mask.zero_();
        return {grad_input_acc.to(input.scalar_type()), grad_offset, grad_mask};
    }
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "dcnv3_backward_cpu", [&] {
        using acc_t = at::opmath_type<scalar_t>;
        const scalar_t* in = input.const_data_ptr<scalar_t>();
        const scalar_t* off = offset.const_data_ptr<scalar_t>();
        const scalar_t* msk = mask.const_data_ptr<scalar_t>();
        const scalar_t* go = grad_output.const_data_ptr<scalar_t>();
        acc_t* gin = grad_input_acc.mutable_data_ptr<acc_t>();
        scalar_t* goff = grad_offset.mutable_data_ptr<scalar_t>();
        scalar_t* gm = grad_mask.mutable_data_ptr<scalar_t>();
        const int64_t hw_out = s.Hout * s.Wout;
        const int K = s.K();
        // (image, group) slices write disjoint parts of grad_input: no races.
        at::parallel_for(0, s.N * s.G, 1, [&](int64_t begin, int64_t end) {
            for (int64_t t = begin; t < end; ++t) {
                const int64_t n = t / s.G, g = t - n * s.G;
                for (int64_t pix = n * hw_out; pix < (n + 1) * hw_out; ++pix)
                    for (int p = 0; p < K; ++p)
                        backward_point<scalar_t, acc_t>(s, in, off, msk, go, gin, goff, gm, pix, g, p);
            }
        });
    });
    at::Tensor grad_input =
        grad_input_acc.scalar_type() == input.scalar_type() ? grad_input_acc : grad_input_acc.to(input.scalar_type());
    return {grad_input, grad_offset, grad_mask};
}

}  // namespace csr_dcnv3

#ifndef DCN_NO_CPU_MODULE
PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.doc() = "cityscapes_seg_ros DCNv3 core, CPU op (same per-sample code as the CUDA op)";
    m.def("forward", &csr_dcnv3::dcnv3_forward_cpu, "DCNv3 forward (CPU)", py::arg("input"), py::arg("offset"),
          py::arg("mask"), py::arg("kernel_h"), py::arg("kernel_w"), py::arg("stride_h"), py::arg("stride_w"),
          py::arg("pad_h"), py::arg("pad_w"), py::arg("dilation_h"), py::arg("dilation_w"), py::arg("group"),
          py::arg("group_channels"), py::arg("offset_scale"), py::arg("out") = py::none());
    m.def("backward", &csr_dcnv3::dcnv3_backward_cpu, "DCNv3 backward (CPU): grad_input, grad_offset, grad_mask",
          py::arg("input"), py::arg("offset"), py::arg("mask"), py::arg("kernel_h"), py::arg("kernel_w"),
          py::arg("stride_h"), py::arg("stride_w"), py::arg("pad_h"), py::arg("pad_w"), py::arg("dilation_h"),
          py::arg("dilation_w"), py::arg("group"), py::arg("group_channels"), py::arg("offset_scale"),
          py::arg("grad_output"));
#ifdef CSR_SOURCE_DIGEST
    // set by the build (compiled.py, setup.py): lets the loader tell a build of these sources from a stale one
    m.attr("source_digest") = CSR_STRINGIFY(CSR_SOURCE_DIGEST);
#endif
    m.attr("device_type") = "cpu";
}
#endif
