// The per-pixel arithmetic of the class decision, written once for the CPU op (score_decode_cpu.cpp, loops over
// blocks of pixels that GCC vectorises) and the CUDA op (score_decode_cuda.cu, a thread per pixel):
//   * the bilinear source taps and the interpolated logit of a resize with align_corners=False, with PyTorch's
//     formulas and evaluation order (ATen's area_pixel_compute_source_index, compute_source_index_and_lambda,
//     and the width-then-height sum of its upsample kernels), so that the values are bit-identical to
//     F.interpolate's and the argmax is the same;
//   * the running argmax (the first of equal maxima, as torch.max) and exp(l - l_max) of the winner's softmax.
// kFused: whether a*b + c is one fused multiply-add, as in torch's builds that contract it (its AVX2 / AVX512
// CPU kernels, every CUDA kernel) or two roundings (its baseline CPU kernels). The Python entry finds which one
// torch runs (ops/score_decode.py) and passes it down; nothing here depends on the compiler's own contraction
// (the CPU op is built with -ffp-contract=off; on the GPU the unfused form uses intrinsics nvcc never contracts).
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define SD_HD __host__ __device__
#define SD_INLINE __forceinline__
#elif defined(__GNUC__)
#define SD_HD
#define SD_INLINE inline __attribute__((always_inline))
#else
#define SD_HD
#define SD_INLINE inline
#endif

#if !defined(__CUDA_ARCH__)
#include <bit>
#endif

namespace csr_score_decode {

// a * b + c, fused (one rounding) or not (two).
template <bool kFused>
SD_HD SD_INLINE float mul_add(float a, float b, float c) {
    if constexpr (kFused) {
        return fmaf(a, b, c);
    } else {
#if defined(__CUDA_ARCH__)
        return __fadd_rn(__fmul_rn(a, b), c);  // intrinsics that nvcc never contracts
#else
        return a * b + c;
#endif
    }
}

// The two input samples of one output index along one axis and their weights.
struct Tap {
    int32_t first, second;
    float weight_first, weight_second;
};

// F.interpolate(size=...)'s scale along one axis: input / output in float (no scale factor given).
SD_HD SD_INLINE float axis_scale(int64_t input_size, int64_t output_size) {
    return static_cast<float>(input_size) / static_cast<float>(output_size);
}

// The source taps of output index `out` (align_corners=False): position scale * (out + 0.5) - 0.5, clamped at 0;
// the second tap is the next sample, or the same one at the last. An axis of equal sizes copies (weights 1, 0).
template <bool kFused>
SD_HD SD_INLINE Tap linear_tap(float scale, int64_t out, int64_t input_size, int64_t output_size) {
    Tap tap;
    if (input_size == output_size) {
        tap.first = tap.second = static_cast<int32_t>(out);
        tap.weight_first = 1.0f;
        tap.weight_second = 0.0f;
        return tap;
    }
    float position = mul_add<kFused>(scale, static_cast<float>(out) + 0.5f, -0.5f);
    position = position < 0.0f ? 0.0f : position;
    int64_t index = static_cast<int64_t>(position);  // position >= 0: truncation is floor
    index = index < input_size - 1 ? index : input_size - 1;
    float lambda = position - static_cast<float>(index);
    lambda = lambda < 0.0f ? 0.0f : (lambda > 1.0f ? 1.0f : lambda);
    tap.first = static_cast<int32_t>(index);
    tap.second = static_cast<int32_t>(index < input_size - 1 ? index + 1 : index);
    tap.weight_second = lambda;
    tap.weight_first = 1.0f - lambda;
    return tap;
}

// One axis of the interpolation: first * weight_first + second * weight_second, the first product fused when
// kFused (as compilers contract ATen's `t0 * w0 + t1 * w1`). The 2-D value is
//   combine(combine(v00, v01, wx0, wx1), combine(v10, v11, wx0, wx1), wy0, wy1)
// (width first, then height: the order of ATen's CPU kernel and of its CUDA kernel's expression).
template <bool kFused>
SD_HD SD_INLINE float combine(float first, float second, float weight_first, float weight_second) {
    return mul_add<kFused>(first, weight_first, second * weight_second);
}

// exp(x) for x <= 0 (Cephes' expf polynomial, about 2 ulp), branch-free so that loops over it vectorise.
SD_HD SD_INLINE float exp_nonpositive(float x) {
    x = x < -87.0f ? -87.0f : x;  // exp(-87) is still a normal float; the scale below stays a valid exponent
    const float n = static_cast<float>(static_cast<int32_t>(x * 1.44269504088896341f - 0.5f));  // round(x/ln2)
    float r = x - n * 0.693359375f;  // x - n*ln2 in two parts (Cody-Waite), exact for these n
    r = r + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;  // 2^n
#if defined(__CUDA_ARCH__)
    return p * __int_as_float(bits);
#else
    return p * std::bit_cast<float>(bits);
#endif
}

// One step of the running argmax: `value` of class `cls` replaces the best only when strictly higher, so the
// first of equal maxima wins (torch.max). A mask rather than a select: GCC vectorises it.
SD_HD SD_INLINE void keep_max(float value, int32_t cls, float& best, int32_t& winner) {
    const int32_t higher = -static_cast<int32_t>(value > best);  // all ones where this class wins
    best = value > best ? value : best;
    winner = (cls & higher) | (winner & ~higher);
}

// The label of a winner: its index, or `ignore` for a channel >= num_valid (unused channels of a 150-class head).
SD_HD SD_INLINE uint8_t train_id(int32_t winner, int32_t num_valid, uint8_t ignore) {
    return winner < num_valid ? static_cast<uint8_t>(winner) : ignore;
}

}  // namespace csr_score_decode
