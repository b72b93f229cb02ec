// DCNv3 core: the per-sample sampling / accumulation code, written once.
//
// Every function here is `DCN_HD` (= __host__ __device__ under nvcc, nothing under the host compiler), so
// the SAME code runs in the CUDA kernels (dcnv3_cuda.cu, one thread per pixel x group x channel chunk) and
// in the multi-threaded CPU op (dcnv3_cpu.cpp, at::parallel_for over pixels x groups).
//
// Layouts (all contiguous, channels-last), K = kernel_h * kernel_w, C = G * Cg:
//   input  [N, H, W, C]
//   offset [N, Hout, Wout, G*K*2]   index (g*K + p)*2 + c, c = 0: x offset, c = 1: y offset
//   mask   [N, Hout, Wout, G*K]     index g*K + p (already softmaxed)
//   output [N, Hout, Wout, C]
// Points run x-major: p = ix*kernel_h + iy. The sampling position (pixel coordinates of the unpadded
// input, pixel centres at integers) of point p for output pixel (ho, wo) is
//   x = wo*stride_w - pad_w + (dil_w*(kw-1))/2 + offset_scale*(ix*dil_w - (dil_w*(kw-1))/2 + off_x)
//   y = ho*stride_h - pad_h + (dil_h*(kh-1))/2 + offset_scale*(iy*dil_h - (dil_h*(kh-1))/2 + off_y)
// sampled bilinearly with zeros outside the image; out = sum_p mask_p * sample_p. This is what the official
// `dcnv3_core_pytorch` (F.pad + grid_sample, align_corners=False) computes.
#pragma once

#include <cstdint>
#include <cmath>

#if defined(__CUDACC__)
#define DCN_HD __host__ __device__
#define DCN_INLINE __forceinline__
#else
#define DCN_HD
#if defined(__GNUC__)
#define DCN_INLINE inline __attribute__((always_inline))
#else
#define DCN_INLINE inline
#endif
#endif

#if defined(__CUDACC__)
#define DCN_UNROLL _Pragma("unroll")
#elif defined(__clang__)
#define DCN_UNROLL _Pragma("unroll")
#elif defined(__GNUC__)
#define DCN_UNROLL _Pragma("GCC unroll 32")
#else
#define DCN_UNROLL
#endif

#if defined(__CUDACC__) || defined(__GNUC__)
#define DCN_RESTRICT __restrict__
#else
#define DCN_RESTRICT
#endif

namespace csr_dcnv3 {

// Problem geometry, passed by value to kernels.
struct Geometry {
    int64_t N, H, W, G, Cg, Hout, Wout;
    int kh, kw, sh, sw, ph, pw, dh, dw;
    double offset_scale;

    DCN_HD DCN_INLINE int64_t C() const { return G * Cg; }
    DCN_HD DCN_INLINE int K() const { return kh * kw; }
    DCN_HD DCN_INLINE int64_t pixels() const { return N * Hout * Wout; }
};

// floor for positions already known to lie in (-1, H) x (-1, W): exact, and no libm call on the host.
template <typename acc_t>
DCN_HD DCN_INLINE int64_t dcn_floor(acc_t v) {
    int64_t i = static_cast<int64_t>(v);  // truncation toward zero
    return i - (v < static_cast<acc_t>(i) ? 1 : 0);
}

// Atomic add on the GPU (several threads sample the same input pixel); a plain add on the host, where the
// CPU driver gives every thread a disjoint slice of grad_input.
template <typename T>
DCN_HD DCN_INLINE void dcn_add(T* ptr, T v) {
#if defined(__CUDA_ARCH__)
    atomicAdd(ptr, v);
#else
    *ptr += v;
#endif
}

// Sampling position of point (ix, iy) of output pixel (ho, wo), unpadded input pixel coordinates.
template <typename acc_t>
DCN_HD DCN_INLINE void sample_location(const Geometry& s, int64_t ho, int64_t wo, int ix, int iy, acc_t off_x,
                                       acc_t off_y, acc_t& x, acc_t& y) {
    const int half_w = (s.dw * (s.kw - 1)) / 2;
    const int half_h = (s.dh * (s.kh - 1)) / 2;
    const acc_t os = static_cast<acc_t>(s.offset_scale);
    x = static_cast<acc_t>(wo * s.sw - s.pw + half_w) + os * (static_cast<acc_t>(ix * s.dw - half_w) + off_x);
    y = static_cast<acc_t>(ho * s.sh - s.ph + half_h) + os * (static_cast<acc_t>(iy * s.dh - half_h) + off_y);
}

// The (up to 4) in-image bilinear corners of position (x, y): element offsets (pixel * C) into one image
// and weights already multiplied by `scale` (the mask). Returns how many corners are valid; 0 when the
// position is at least one pixel outside the image (also for NaN positions).
template <typename acc_t>
DCN_HD DCN_INLINE int bilinear_corners(acc_t x, acc_t y, int64_t H, int64_t W, int64_t C, acc_t scale,
                                       int64_t* DCN_RESTRICT idx, acc_t* DCN_RESTRICT wt) {
    if (!(y > acc_t(-1) && x > acc_t(-1) && y < static_cast<acc_t>(H) && x < static_cast<acc_t>(W))) return 0;
    const int64_t y0 = dcn_floor<acc_t>(y), x0 = dcn_floor<acc_t>(x);
    const acc_t ly = y - static_cast<acc_t>(y0), lx = x - static_cast<acc_t>(x0);
    const acc_t hy = acc_t(1) - ly, hx = acc_t(1) - lx;
    int n = 0;
    if (y0 >= 0) {
        if (x0 >= 0) { idx[n] = (y0 * W + x0) * C; wt[n] = hy * hx * scale; ++n; }
        if (x0 + 1 < W) { idx[n] = (y0 * W + x0 + 1) * C; wt[n] = hy * lx * scale; ++n; }
    }
    if (y0 + 1 < H) {
        if (x0 >= 0) { idx[n] = ((y0 + 1) * W + x0) * C; wt[n] = ly * hx * scale; ++n; }
        if (x0 + 1 < W) { idx[n] = ((y0 + 1) * W + x0 + 1) * C; wt[n] = ly * lx * scale; ++n; }
    }
    return n;
}

// Forward for one (pixel, group) and CH consecutive channels starting at c0:
//   out[pix, g*Cg + c0 + c] = sum_p mask[p] * bilinear(input, loc_p)[g*Cg + c0 + c],  c < CH.
// Accumulates in acc_t (fp32 for fp16/bf16/fp32, fp64 for fp64).
template <typename scalar_t, typename acc_t, int CH>
DCN_HD DCN_INLINE void forward_group_chunk(const Geometry& s, const scalar_t* DCN_RESTRICT input,
                                           const scalar_t* DCN_RESTRICT offset, const scalar_t* DCN_RESTRICT mask,
                                           scalar_t* DCN_RESTRICT output, int64_t n, int64_t ho, int64_t wo,
                                           int64_t g, int64_t c0) {
    const int64_t C = s.C();
    const int K = s.K();
    const int64_t pix = (n * s.Hout + ho) * s.Wout + wo;
    const scalar_t* DCN_RESTRICT in_n = input + n * s.H * s.W * C + g * s.Cg + c0;
    const scalar_t* DCN_RESTRICT off = offset + (pix * s.G + g) * K * 2;
    const scalar_t* DCN_RESTRICT msk = mask + (pix * s.G + g) * K;

    acc_t acc[CH];
DCN_UNROLL
    for (int c = 0; c < CH; ++c) acc[c] = acc_t(0);

    int p = 0;
    for (int ix = 0; ix < s.kw; ++ix) {
        for (int iy = 0; iy < s.kh; ++iy, ++p) {
            acc_t x, y;
            sample_location<acc_t>(s, ho, wo, ix, iy, static_cast<acc_t>(off[2 * p]),
                                   static_cast<acc_t>(off[2 * p + 1]), x, y);
            int64_t idx[4];
            acc_t wt[4];
            const int nc = bilinear_corners<acc_t>(x, y, s.H, s.W, C, static_cast<acc_t>(msk[p]), idx, wt);
            for (int k = 0; k < nc; ++k) {
                const scalar_t* DCN_RESTRICT v = in_n + idx[k];
                const acc_t w = wt[k];
DCN_UNROLL
                for (int c = 0; c < CH; ++c) acc[c] += w * static_cast<acc_t>(v[c]);
            }
        }
    }
    scalar_t* DCN_RESTRICT o = output + pix * C + g * s.Cg + c0;
DCN_UNROLL
    for (int c = 0; c < CH; ++c) o[c] = static_cast<scalar_t>(acc[c]);
}

// The same result as forward_group_chunk (same accumulation order), computed in two phases per batch of up
// to PB points: first all sampling positions and corners, then one tight accumulation loop. The loads of
// all corners are independent of the accumulation, so a CPU core overlaps their cache misses. (Used by the
// CPU op; the GPU keeps the register-light single-phase form.)
template <typename scalar_t, typename acc_t, int CH, int PB = 9>
DCN_HD DCN_INLINE void forward_group_chunk_batched(const Geometry& s, const scalar_t* DCN_RESTRICT input,
                                                   const scalar_t* DCN_RESTRICT offset,
                                                   const scalar_t* DCN_RESTRICT mask, scalar_t* DCN_RESTRICT output,
                                                   int64_t n, int64_t ho, int64_t wo, int64_t g, int64_t c0) {
    const int64_t C = s.C();
    const int K = s.K();
    const int64_t pix = (n * s.Hout + ho) * s.Wout + wo;
    const scalar_t* DCN_RESTRICT in_n = input + n * s.H * s.W * C + g * s.Cg + c0;
    const scalar_t* DCN_RESTRICT off = offset + (pix * s.G + g) * K * 2;
    const scalar_t* DCN_RESTRICT msk = mask + (pix * s.G + g) * K;

    acc_t acc[CH];
    DCN_UNROLL
    for (int c = 0; c < CH; ++c) acc[c] = acc_t(0);

    int64_t idx[4 * PB];
    acc_t wt[4 * PB];
    for (int p0 = 0; p0 < K; p0 += PB) {
        const int pe = p0 + PB < K ? p0 + PB : K;
        int m = 0;
        for (int p = p0; p < pe; ++p) {
            const int ix = p / s.kh, iy = p - ix * s.kh;
            acc_t x, y;
            sample_location<acc_t>(s, ho, wo, ix, iy, static_cast<acc_t>(off[2 * p]),
                                   static_cast<acc_t>(off[2 * p + 1]), x, y);
            m += bilinear_corners<acc_t>(x, y, s.H, s.W, C, static_cast<acc_t>(msk[p]), idx + m, wt + m);
        }
        for (int k = 0; k < m; ++k) {
            const scalar_t* DCN_RESTRICT v = in_n + idx[k];
            const acc_t w = wt[k];
            DCN_UNROLL
            for (int c = 0; c < CH; ++c) acc[c] += w * static_cast<acc_t>(v[c]);
        }
    }
    scalar_t* DCN_RESTRICT o = output + pix * C + g * s.Cg + c0;
    DCN_UNROLL
    for (int c = 0; c < CH; ++c) o[c] = static_cast<scalar_t>(acc[c]);
}

// Backward for one (pixel, group, point p), all Cg channels of the group:
//   grad_input[corner, g*Cg + c] += mask * w_corner * grad_out[c]   (dcn_add: atomic on the GPU)
//   grad_mask[p]     = sum_c grad_out[c] * sample[c]
//   grad_offset[p,0] = offset_scale * mask * sum_c grad_out[c] * d sample[c] / dx   (and y)
// grad_input is an acc_t buffer shaped like input.
template <typename scalar_t, typename acc_t>
DCN_HD DCN_INLINE void backward_point(const Geometry& s, const scalar_t* DCN_RESTRICT input,
                                      const scalar_t* DCN_RESTRICT offset, const scalar_t* DCN_RESTRICT mask,
                                      const scalar_t* DCN_RESTRICT grad_out, acc_t* DCN_RESTRICT grad_input,
                                      scalar_t* DCN_RESTRICT grad_offset, scalar_t* DCN_RESTRICT grad_mask,
                                      int64_t pix, int64_t g, int p) {
    const int64_t C = s.C();
    const int K = s.K();
    const int64_t hw_out = s.Hout * s.Wout;
    const int64_t n = pix / hw_out;
    const int64_t r = pix - n * hw_out;
    const int64_t ho = r / s.Wout;
    const int64_t wo = r - ho * s.Wout;
    const int ix = p / s.kh, iy = p - (p / s.kh) * s.kh;
    const int64_t q = (pix * s.G + g) * K + p;  // (pixel, group, point) index into mask / offset pairs

    acc_t x, y;
    sample_location<acc_t>(s, ho, wo, ix, iy, static_cast<acc_t>(offset[2 * q]), static_cast<acc_t>(offset[2 * q + 1]),
                           x, y);
    const acc_t m = static_cast<acc_t>(mask[q]);
    acc_t g_mask = 0, g_x = 0, g_y = 0;
    if (y > acc_t(-1) && x > acc_t(-1) && y < static_cast<acc_t>(s.H) && x < static_cast<acc_t>(s.W)) {
        const int64_t y0 = dcn_floor<acc_t>(y), x0 = dcn_floor<acc_t>(x);
        const acc_t ly = y - static_cast<acc_t>(y0), lx = x - static_cast<acc_t>(x0);
        const acc_t hy = acc_t(1) - ly, hx = acc_t(1) - lx;
        // corners: weight, d weight / dx, d weight / dy
        const bool ok[4] = {y0 >= 0 && x0 >= 0, y0 >= 0 && x0 + 1 < s.W, y0 + 1 < s.H && x0 >= 0,
                            y0 + 1 < s.H && x0 + 1 < s.W};
        const int64_t idx[4] = {(y0 * s.W + x0) * C, (y0 * s.W + x0 + 1) * C, ((y0 + 1) * s.W + x0) * C,
                                ((y0 + 1) * s.W + x0 + 1) * C};
        const acc_t w[4] = {hy * hx, hy * lx, ly * hx, ly * lx};
        const acc_t wx[4] = {-hy, hy, -ly, ly};
        const acc_t wy[4] = {-hx, -lx, hx, lx};
        const int64_t base = n * s.H * s.W * C + g * s.Cg;
        const scalar_t* DCN_RESTRICT in_n = input + base;
        acc_t* DCN_RESTRICT gin_n = grad_input + base;
        const scalar_t* DCN_RESTRICT go = grad_out + pix * C + g * s.Cg;
        for (int k = 0; k < 4; ++k) {
            if (!ok[k]) continue;
            const scalar_t* DCN_RESTRICT v = in_n + idx[k];
            acc_t* DCN_RESTRICT gi = gin_n + idx[k];
            const acc_t mw = m * w[k];
            acc_t dot = 0;
            for (int64_t c = 0; c < s.Cg; ++c) {
                const acc_t gc = static_cast<acc_t>(go[c]);
                dot += gc * static_cast<acc_t>(v[c]);
                dcn_add<acc_t>(gi + c, mw * gc);
            }
            g_mask += w[k] * dot;
            g_x += wx[k] * dot;
            g_y += wy[k] * dot;
        }
    }
    const acc_t os = static_cast<acc_t>(s.offset_scale);
    grad_mask[q] = static_cast<scalar_t>(g_mask);
    grad_offset[2 * q] = static_cast<scalar_t>(os * m * g_x);
    grad_offset[2 * q + 1] = static_cast<scalar_t>(os * m * g_y);
}

}  // namespace csr_dcnv3
