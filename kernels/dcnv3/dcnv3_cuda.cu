// DCNv3 CUDA op: the per-sample code of dcnv3_kernels.h (the same functions the CPU op runs), one thread per
//   forward : (pixel, group, chunk of CH channels); CH = 16 bytes of scalar_t where the group's channels allow,
//             so neighbouring threads read neighbouring 16-byte pieces of each corner pixel;
//   backward: (pixel, group, point); grad_input accumulated with atomicAdd into an fp32 (fp64) buffer.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>
#include <optional>
#include <vector>

#include "dcnv3_host.h"
#include "dcnv3_kernels.h"

namespace csr_dcnv3 {
namespace {

constexpr int kThreads = 256;

inline unsigned int blocks_for(int64_t total) {
    const int64_t b = (total + kThreads - 1) / kThreads;
    return static_cast<unsigned int>(std::max<int64_t>(1, std::min<int64_t>(b, int64_t(1) << 30)));
}

template <typename scalar_t, typename acc_t, int CH>
__global__ void __launch_bounds__(kThreads)
    dcnv3_forward_kernel(const Geometry s, const scalar_t* __restrict__ in, const scalar_t* __restrict__ off,
                         const scalar_t* __restrict__ msk, scalar_t* __restrict__ out, const int64_t total) {
    const int64_t chunks = s.Cg / CH;
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const int64_t t = i / chunks;
        const int64_t chunk = i - t * chunks;
        const int64_t pix = t / s.G;
        const int64_t g = t - pix * s.G;
        const int64_t n = pix / (s.Hout * s.Wout);
        const int64_t r = pix - n * s.Hout * s.Wout;
        const int64_t ho = r / s.Wout;
        forward_group_chunk<scalar_t, acc_t, CH>(s, in, off, msk, out, n, ho, r - ho * s.Wout, g, chunk * CH);
    }
}

template <typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kThreads)
    dcnv3_backward_kernel(const Geometry s, const scalar_t* __restrict__ in, const scalar_t* __restrict__ off,
                          const scalar_t* __restrict__ msk, const scalar_t* __restrict__ grad_out,
                          acc_t* __restrict__ grad_in, scalar_t* __restrict__ grad_off, scalar_t* __restrict__ grad_msk,
                          const int64_t total) {
    const int K = s.K();
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const int64_t t = i / K;
        const int p = static_cast<int>(i - t * K);
        const int64_t pix = t / s.G;
        const int64_t g = t - pix * s.G;
        backward_point<scalar_t, acc_t>(s, in, off, msk, grad_out, grad_in, grad_off, grad_msk, pix, g, p);
    }
}

template <typename scalar_t, typename acc_t, int CH>
void launch_forward(const Geometry& s, const scalar_t* in, const scalar_t* off, const scalar_t* msk, scalar_t* out,
                    cudaStream_t stream) {
    const int64_t total = s.pixels() * s.G * (s.Cg / CH);
    dcnv3_forward_kernel<scalar_t, acc_t, CH><<<blocks_for(total), kThreads, 0, stream>>>(s, in, off, msk, out, total);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <typename scalar_t>
void forward_cuda_dispatch(const Geometry& s, const scalar_t* in, const scalar_t* off, const scalar_t* msk,
                           scalar_t* out, cudaStream_t stream) {
    using acc_t = at::opmath_type<scalar_t>;
    int ch = static_cast<int>(16 / sizeof(scalar_t));  // 16-byte pieces of a corner pixel per thread
    while (ch > 1 && s.Cg % ch != 0) ch /= 2;
    switch (ch) {
        case 8: launch_forward<scalar_t, acc_t, 8>(s, in, off, msk, out, stream); break;
        case 4: launch_forward<scalar_t, acc_t, 4>(s, in, off, msk, out, stream); break;
        case 2: launch_forward<scalar_t, acc_t, 2>(s, in, off, msk, out, stream); break;
        default: launch_forward<scalar_t, acc_t, 1>(s, in, off, msk, out, stream); break;
    }
}

}  // namespace

at::Tensor dcnv3_forward_cuda(const at::Tensor& input, const at::Tensor& offset, const at::Tensor& mask,
                              int64_t kernel_h, int64_t kernel_w, int64_t stride_h, int64_t stride_w, int64_t pad_h,
                              int64_t pad_w, int64_t dilation_h, int64_t dilation_w, int64_t group,
                              int64_t group_channels, double offset_scale, std::optional<at::Tensor> out_) {
    const Geometry s = make_geometry(input, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h,
                                     dilation_w, group, group_channels, offset_scale);
    const c10::cuda::CUDAGuard guard(input.device());
    at::Tensor out = out_.has_value() ? *out_ : at::empty({s.N, s.Hout, s.Wout, s.C()}, input.options());
    if (out.numel() == 0) return out;
    cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "dcnv3_forward_cuda", [&] {
        forward_cuda_dispatch<scalar_t>(s, input.const_data_ptr<scalar_t>(), offset.const_data_ptr<scalar_t>(),
                                        mask.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(), stream);
    });
    return out;
}

std::vector<at::Tensor> dcnv3_backward_cuda(const at::Tensor& input, const at::Tensor& offset,
                                            const at::Tensor& mask, int64_t kernel_h, int64_t kernel_w,
                                            int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w,
                                            int64_t dilation_h, int64_t dilation_w, int64_t group,
                                            int64_t group_channels, double offset_scale,
                                            const at::Tensor& grad_output) {
    const Geometry s = make_geometry(input, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h,
                                     dilation_w, group, group_channels, offset_scale);
    const c10::cuda::CUDAGuard guard(input.device());
    const auto acc_type = at::toOpMathType(input.scalar_type());
    at::Tensor grad_input_acc = at::zeros(input.sizes(), input.options().dtype(acc_type));
    at::Tensor grad_offset = at::zeros_like(offset);
    at::Tensor grad_mask = at::zeros_like(mask);
    const int64_t total = s.pixels() * s.G * s.K();
    if (input.numel() > 0 && total > 0) {
        cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
        AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "dcnv3_backward_cuda", [&] {
            using acc_t = at::opmath_type<scalar_t>;
            dcnv3_backward_kernel<scalar_t, acc_t><<<blocks_for(total), kThreads, 0, stream>>>(
                s, input.const_data_ptr<scalar_t>(), offset.const_data_ptr<scalar_t>(), mask.const_data_ptr<scalar_t>(),
                grad_output.const_data_ptr<scalar_t>(), grad_input_acc.mutable_data_ptr<acc_t>(),
                grad_offset.mutable_data_ptr<scalar_t>(), grad_mask.mutable_data_ptr<scalar_t>(), total);
            C10_CUDA_KERNEL_LAUNCH_CHECK();
        });
    }
    at::Tensor grad_input =
        grad_input_acc.scalar_type() == input.scalar_type() ? grad_input_acc : grad_input_acc.to(input.scalar_type());
    return {grad_input, grad_offset, grad_mask};
}

}  // namespace csr_dcnv3
