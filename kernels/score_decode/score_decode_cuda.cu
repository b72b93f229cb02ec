// The class decision on the GPU, from the per-pixel code of score_decode_pixel.h (the functions the CPU op runs):
//   decode_logits  : a thread per output pixel interpolates each channel's logit from the low-resolution logits
//                    (as F.interpolate's CUDA kernel does: width, then height; fused multiply-adds as torch's
//                    build when `fused`), keeps the first highest, then sums exp(l - l_max): the [C, H, W]
//                    resized logits are never made;
//   decode_scores  : the same decision on full-size scores (logits or probabilities);
//   label_histogram: pixels and summed confidence per label value, so the node's statistics stay on the GPU;
//   resize_bilinear: the resize alone (tests).
// The Python entry (cityscapes_seg_ros/ops/score_decode.py) checks the arguments once; these functions trust them:
// contiguous CUDA tensors, logits / scores [C >= 1, h, w] of float, half or bfloat16, uint8 labels, float32
// confidence of their size.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>
#include <optional>
#include <tuple>

#include "score_decode_pixel.h"

namespace csr_score_decode {
namespace {

constexpr int kThreads = 256;
constexpr int kHistogramRun = 16;  // consecutive pixels per thread of the histogram: runs of one label add once

struct ResizeGeometry {
    int64_t channels, in_height, in_width, out_height, out_width;
    float scale_height, scale_width;
};

ResizeGeometry make_geometry(const at::Tensor& logits, int64_t out_height, int64_t out_width) {
    const int64_t in_height = logits.size(1), in_width = logits.size(2);
    return {logits.size(0), in_height, in_width, out_height, out_width, axis_scale(in_height, out_height),
            axis_scale(in_width, out_width)};
}

// Blocks of kThreads along a row, one row of blocks per output row (at most 65535, the rest by striding).
dim3 pixel_grid(int64_t height, int64_t width) {
    return dim3(static_cast<unsigned int>((width + kThreads - 1) / kThreads),
                static_cast<unsigned int>(std::min<int64_t>(height, 65535)));
}

// The four input samples of one output pixel and their weights: the interpolated logit of channel c.
template <typename scalar_t, bool kFused>
struct Bilinear {
    const scalar_t *upper_first, *upper_second, *lower_first, *lower_second;
    int64_t plane;
    Tap row, column;

    __device__ __forceinline__ Bilinear(const scalar_t* logits, const ResizeGeometry& g, int64_t y, int64_t x) {
        row = linear_tap<kFused>(g.scale_height, y, g.in_height, g.out_height);
        column = linear_tap<kFused>(g.scale_width, x, g.in_width, g.out_width);
        const scalar_t* upper = logits + static_cast<int64_t>(row.first) * g.in_width;
        const scalar_t* lower = logits + static_cast<int64_t>(row.second) * g.in_width;
        upper_first = upper + column.first;
        upper_second = upper + column.second;
        lower_first = lower + column.first;
        lower_second = lower + column.second;
        plane = g.in_height * g.in_width;
    }

    __device__ __forceinline__ float operator()(int64_t c) const {
        const int64_t o = c * plane;
        const float top = combine<kFused>(static_cast<float>(upper_first[o]), static_cast<float>(upper_second[o]),
                                          column.weight_first, column.weight_second);
        const float bottom = combine<kFused>(static_cast<float>(lower_first[o]), static_cast<float>(lower_second[o]),
                                             column.weight_first, column.weight_second);
        return combine<kFused>(top, bottom, row.weight_first, row.weight_second);
    }
};

template <typename scalar_t, bool kFused>
__global__ void __launch_bounds__(kThreads)
    decode_logits_kernel(const scalar_t* __restrict__ logits, const ResizeGeometry g, const int32_t num_valid,
                         const uint8_t ignore, uint8_t* __restrict__ labels, float* __restrict__ confidence) {
    const int64_t x = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (x >= g.out_width) return;
    for (int64_t y = blockIdx.y; y < g.out_height; y += gridDim.y) {
        const Bilinear<scalar_t, kFused> value(logits, g, y, x);
        float best = value(0);
        int32_t winner = 0;
        for (int64_t c = 1; c < g.channels; ++c) keep_max(value(c), static_cast<int32_t>(c), best, winner);
        float sum = 0.0f;
        for (int64_t c = 0; c < g.channels; ++c) sum += exp_nonpositive(value(c) - best);
        labels[y * g.out_width + x] = train_id(winner, num_valid, ignore);
        confidence[y * g.out_width + x] = 1.0f / sum;
    }
}

template <typename scalar_t, bool kFused>
__global__ void __launch_bounds__(kThreads)
    resize_bilinear_kernel(const scalar_t* __restrict__ logits, const ResizeGeometry g, float* __restrict__ out) {
    const int64_t x = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (x >= g.out_width) return;
    const int64_t out_plane = g.out_height * g.out_width;
    for (int64_t y = blockIdx.y; y < g.out_height; y += gridDim.y) {
        const Bilinear<scalar_t, kFused> value(logits, g, y, x);
        for (int64_t c = 0; c < g.channels; ++c) out[c * out_plane + y * g.out_width + x] = value(c);
    }
}

template <typename scalar_t>
__global__ void __launch_bounds__(kThreads)
    decode_scores_kernel(const scalar_t* __restrict__ scores, const int64_t channels, const int64_t pixels,
                         const bool from_logits, const int32_t num_valid, const uint8_t ignore,
                         uint8_t* __restrict__ labels, float* __restrict__ confidence) {
    for (int64_t p = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; p < pixels;
         p += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        float best = static_cast<float>(scores[p]);
        int32_t winner = 0;
        for (int64_t c = 1; c < channels; ++c)
            keep_max(static_cast<float>(scores[c * pixels + p]), static_cast<int32_t>(c), best, winner);
        float result = best;
        if (from_logits) {
            float sum = 0.0f;
            for (int64_t c = 0; c < channels; ++c)
                sum += exp_nonpositive(static_cast<float>(scores[c * pixels + p]) - best);
            result = 1.0f / sum;
        }
        labels[p] = train_id(winner, num_valid, ignore);
        confidence[p] = result;
    }
}

// Each thread takes kHistogramRun consecutive pixels and adds each run of one label once to the block's bins
// (shared memory); the block then adds its bins to the global ones. Label images are mostly long runs, so few
// atomic adds meet on one bin.
__global__ void __launch_bounds__(kThreads)
    label_histogram_kernel(const uint8_t* __restrict__ labels, const float* __restrict__ confidence,
                           const int64_t pixels, unsigned long long* __restrict__ counts, double* __restrict__ sums) {
    __shared__ unsigned int block_counts[256];
    __shared__ double block_sums[256];
    block_counts[threadIdx.x] = 0;
    block_sums[threadIdx.x] = 0.0;
    __syncthreads();
    const int64_t segments = (pixels + kHistogramRun - 1) / kHistogramRun;
    for (int64_t s = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; s < segments;
         s += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const int64_t begin = s * kHistogramRun, end = begin + kHistogramRun < pixels ? begin + kHistogramRun : pixels;
        int label = labels[begin];
        unsigned int run = 0;
        float run_sum = 0.0f;
        for (int64_t p = begin; p < end; ++p) {
            const int next = labels[p];
            if (next != label) {
                atomicAdd(&block_counts[label], run);
                if (confidence != nullptr) atomicAdd(&block_sums[label], static_cast<double>(run_sum));
                label = next;
                run = 0;
                run_sum = 0.0f;
            }
            ++run;
            if (confidence != nullptr) run_sum += confidence[p];
        }
        atomicAdd(&block_counts[label], run);
        if (confidence != nullptr) atomicAdd(&block_sums[label], static_cast<double>(run_sum));
    }
    __syncthreads();
    const unsigned int count = block_counts[threadIdx.x];
    if (count != 0) {
        atomicAdd(&counts[threadIdx.x], static_cast<unsigned long long>(count));
        if (confidence != nullptr) atomicAdd(&sums[threadIdx.x], block_sums[threadIdx.x]);
    }
}

unsigned int blocks_for(int64_t items, int64_t limit) {
    return static_cast<unsigned int>(std::max<int64_t>(1, std::min<int64_t>((items + kThreads - 1) / kThreads, limit)));
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> decode_logits_cuda(const at::Tensor& logits, int64_t out_height, int64_t out_width,
                                                      int64_t num_valid, int64_t ignore, bool fused) {
    const c10::cuda::CUDAGuard guard(logits.device());
    const ResizeGeometry g = make_geometry(logits, out_height, out_width);
    at::Tensor labels = at::empty({out_height, out_width}, logits.options().dtype(at::kByte));
    at::Tensor confidence = at::empty({out_height, out_width}, logits.options().dtype(at::kFloat));
    cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
    const dim3 grid = pixel_grid(out_height, out_width);
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, logits.scalar_type(), "decode_logits_cuda", [&] {
        const auto launch = fused ? decode_logits_kernel<scalar_t, true> : decode_logits_kernel<scalar_t, false>;
        launch<<<grid, kThreads, 0, stream>>>(logits.const_data_ptr<scalar_t>(), g, static_cast<int32_t>(num_valid),
                                              static_cast<uint8_t>(ignore), labels.mutable_data_ptr<uint8_t>(),
                                              confidence.mutable_data_ptr<float>());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
    return {labels, confidence};
}

at::Tensor resize_bilinear_cuda(const at::Tensor& logits, int64_t out_height, int64_t out_width, bool fused) {
    const c10::cuda::CUDAGuard guard(logits.device());
    const ResizeGeometry g = make_geometry(logits, out_height, out_width);
    at::Tensor out = at::empty({g.channels, out_height, out_width}, logits.options().dtype(at::kFloat));
    cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
    const dim3 grid = pixel_grid(out_height, out_width);
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, logits.scalar_type(), "resize_bilinear_cuda", [&] {
        const auto launch = fused ? resize_bilinear_kernel<scalar_t, true> : resize_bilinear_kernel<scalar_t, false>;
        launch<<<grid, kThreads, 0, stream>>>(logits.const_data_ptr<scalar_t>(), g, out.mutable_data_ptr<float>());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
    return out;
}

std::tuple<at::Tensor, at::Tensor> decode_scores_cuda(const at::Tensor& scores, bool from_logits, int64_t num_valid,
                                                      int64_t ignore) {
    const c10::cuda::CUDAGuard guard(scores.device());
    const int64_t channels = scores.size(0), height = scores.size(1), width = scores.size(2);
    const int64_t pixels = height * width;
    at::Tensor labels = at::empty({height, width}, scores.options().dtype(at::kByte));
    at::Tensor confidence = at::empty({height, width}, scores.options().dtype(at::kFloat));
    if (pixels == 0) return {labels, confidence};
    cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, scores.scalar_type(), "decode_scores_cuda", [&] {
        decode_scores_kernel<scalar_t><<<blocks_for(pixels, 1 << 20), kThreads, 0, stream>>>(
            scores.const_data_ptr<scalar_t>(), channels, pixels, from_logits, static_cast<int32_t>(num_valid),
            static_cast<uint8_t>(ignore), labels.mutable_data_ptr<uint8_t>(), confidence.mutable_data_ptr<float>());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
    return {labels, confidence};
}

std::tuple<at::Tensor, at::Tensor> label_histogram_cuda(const at::Tensor& labels,
                                                        const std::optional<at::Tensor>& confidence) {
    const c10::cuda::CUDAGuard guard(labels.device());
    at::Tensor counts = at::zeros({256}, labels.options().dtype(at::kLong));
    at::Tensor sums = at::zeros({256}, labels.options().dtype(at::kDouble));
    const int64_t pixels = labels.numel();
    if (pixels == 0) return {counts, sums};
    cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
    const float* weights = confidence.has_value() ? confidence->const_data_ptr<float>() : nullptr;
    label_histogram_kernel<<<blocks_for((pixels + kHistogramRun - 1) / kHistogramRun, 2048), kThreads, 0, stream>>>(
        labels.const_data_ptr<uint8_t>(), weights, pixels,
        reinterpret_cast<unsigned long long*>(counts.mutable_data_ptr<int64_t>()), sums.mutable_data_ptr<double>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    return {counts, sums};
}

}  // namespace csr_score_decode
