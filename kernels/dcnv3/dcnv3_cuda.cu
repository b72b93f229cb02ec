// DCNv3 CUDA op: the per-sample code of dcnv3_kernels.h (the same functions the CPU op runs).
// Forward, one of several kernels chosen at run time (set_forward_kernel, or the environment variable
// CITYSCAPES_SEG_DCNV3_CUDA_KERNEL read at the first call), all computing the same sums in the same order:
//   baseline: one thread per (pixel, group, chunk of CH channels), forward_group_chunk as the CPU op runs it;
//   smem    : a block takes B consecutive (pixel, group) items; first one thread per (item, point) computes the
//             point's bilinear record (4 corner weights with the mask, corner pixel, valid corners) into shared
//             memory, then CH-channel lanes per item gather the corners with one 16-byte load each;
//   regs    : the same gather, each lane computing the records of its item itself (no shared memory, so
//             the whole L1 holds corner pixels; the position arithmetic is repeated per lane instead);
//   tile, tile_regs: smem, regs with a block serving one group of a 2-D tile of pixels (see BlockItems).
// CH = 16 bytes of scalar_t where the group's channels allow.
// backward: (pixel, group, point); grad_input accumulated with atomicAdd into an fp32 (fp64) buffer.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
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

// ------------------------------------------------------------------------------ gather kernels (smem, regs)

// Forward kernels by name; kForwardKernelNames[i] is ForwardKernel i.
enum ForwardKernel : int { kBaseline = 0, kSmem = 1, kRegs = 2, kTile = 3, kTileRegs = 4 };
constexpr const char* kForwardKernelNames[] = {"baseline", "smem", "regs", "tile", "tile_regs"};
constexpr int kForwardKernelCount = 5;
// baseline is the kernel that has passed the GPU tests on a GPU (H200, 2026-11-30); the faster candidates become
// the default once scripts/gpu_check.sh has run their tests and timed them there (docs/benchmarks.md).
constexpr int kDefaultForwardKernel = kBaseline;
constexpr const char* kForwardKernelEnv = "CITYSCAPES_SEG_DCNV3_CUDA_KERNEL";
std::atomic<int> g_forward_kernel{-1};  // -1: not chosen yet (the environment is read at the first call)
// the kernel the latest forward launched: a gather kernel that cannot take a call's shapes or alignment leaves it
// to the baseline, and benchmarks must say so (-1: no forward yet)
std::atomic<int> g_last_forward_kernel{-1};

int forward_kernel_index(const std::string& name) {
    for (int i = 0; i < kForwardKernelCount; ++i)
        if (name == kForwardKernelNames[i]) return i;
    return -1;
}

std::string forward_kernel_list() {
    std::string all;
    for (int i = 0; i < kForwardKernelCount; ++i) all += (i ? ", " : "") + std::string(kForwardKernelNames[i]);
    return all;
}

int chosen_forward_kernel() {
    int k = g_forward_kernel.load(std::memory_order_relaxed);
    if (k >= 0) return k;
    const char* env = std::getenv(kForwardKernelEnv);
    k = (env == nullptr || *env == '\0') ? kDefaultForwardKernel : forward_kernel_index(env);
    TORCH_CHECK_VALUE(k >= 0, kForwardKernelEnv, "=", env, ": unknown DCNv3 CUDA forward kernel (known: ",
                      forward_kernel_list(), ")");
    g_forward_kernel.store(k, std::memory_order_relaxed);
    return k;
}

// The bilinear record of one sampling point: the weights (mask included) of its 4 corners in the order
// bilinear_corners visits them (y0x0, y0x1, y1x0, y1x1) and key = ((y0*W + x0 + W + 1) << 4) | valid bits
// (bit k: corner k inside the image). Same arithmetic as sample_location + bilinear_corners, so the gather
// below adds the same products in the same order as forward_group_chunk.
template <typename acc_t>
__device__ DCN_INLINE int point_record(const Geometry& s, int ho, int wo, int p, acc_t off_x, acc_t off_y, acc_t m,
                                       acc_t w[4]) {
    const int ix = p / s.kh, iy = p - ix * s.kh;
    acc_t x, y;
    sample_location<acc_t>(s, ho, wo, ix, iy, off_x, off_y, x, y);
    w[0] = w[1] = w[2] = w[3] = acc_t(0);
    if (!(y > acc_t(-1) && x > acc_t(-1) && y < static_cast<acc_t>(s.H) && x < static_cast<acc_t>(s.W))) return 0;
    const int y0 = static_cast<int>(dcn_floor<acc_t>(y)), x0 = static_cast<int>(dcn_floor<acc_t>(x));
    const int H = static_cast<int>(s.H), W = static_cast<int>(s.W);
    const acc_t ly = y - static_cast<acc_t>(y0), lx = x - static_cast<acc_t>(x0);
    const acc_t hy = acc_t(1) - ly, hx = acc_t(1) - lx;
    w[0] = hy * hx * m;
    w[1] = hy * lx * m;
    w[2] = ly * hx * m;
    w[3] = ly * lx * m;
    const int bits = (y0 >= 0 && x0 >= 0 ? 1 : 0) | (y0 >= 0 && x0 + 1 < W ? 2 : 0) |
                     (y0 + 1 < H && x0 >= 0 ? 4 : 0) | (y0 + 1 < H && x0 + 1 < W ? 8 : 0);
    return ((y0 * W + x0 + W + 1) << 4) | bits;
}

// Raw 16/8/4/2-byte words, so that a lane's CH channels move in one load (ld.global.nc) and one store.
template <int BYTES> struct RawWord;
template <> struct RawWord<16> { using type = uint4; };
template <> struct RawWord<8> { using type = uint2; };
template <> struct RawWord<4> { using type = unsigned int; };
template <> struct RawWord<2> { using type = unsigned short; };

template <typename scalar_t, typename acc_t, int CH>
__device__ DCN_INLINE void load_channels(const scalar_t* __restrict__ p, acc_t v[CH]) {
    using raw_t = typename RawWord<sizeof(scalar_t) * CH>::type;
    const raw_t raw = __ldg(reinterpret_cast<const raw_t*>(p));
    scalar_t vals[CH];
    memcpy(vals, &raw, sizeof(raw));
#pragma unroll
    for (int c = 0; c < CH; ++c) v[c] = static_cast<acc_t>(vals[c]);
}

template <typename scalar_t, typename acc_t, int CH>
__device__ DCN_INLINE void store_channels(scalar_t* __restrict__ p, const acc_t acc[CH]) {
    using raw_t = typename RawWord<sizeof(scalar_t) * CH>::type;
    scalar_t vals[CH];
#pragma unroll
    for (int c = 0; c < CH; ++c) vals[c] = static_cast<scalar_t>(acc[c]);
    raw_t raw;
    memcpy(&raw, vals, sizeof(raw));
    *reinterpret_cast<raw_t*>(p) = raw;
}

// acc += w_k * corner_k for the valid corners of one point, in bilinear_corners' order. The (up to) four loads
// are issued before the first multiply so that they are in flight together.
template <typename scalar_t, typename acc_t, int CH>
__device__ DCN_INLINE void gather_point(const scalar_t* __restrict__ in_g, int C, int W, int key, const acc_t w[4],
                                        acc_t acc[CH]) {
    const int bits = key & 15;
    const int c00 = (key >> 4) - (W + 1);  // pixel index of corner y0x0 (only used where valid)
    const int corner[4] = {c00, c00 + 1, c00 + W, c00 + W + 1};
    acc_t v[4][CH];
#pragma unroll
    for (int k = 0; k < 4; ++k)
        if (bits & (1 << k)) load_channels<scalar_t, acc_t, CH>(in_g + corner[k] * C, v[k]);
#pragma unroll
    for (int k = 0; k < 4; ++k) {
        if (bits & (1 << k)) {
#pragma unroll
            for (int c = 0; c < CH; ++c) acc[c] += w[k] * v[k][c];
        }
    }
}

// Which (pixel, group) items a block serves (item = pixel * G + group, pixels in raster order):
//   linear (tile_w == 0): items_per_block consecutive items;
//   tile   (tile_w > 0) : one group of a tile_h x tile_w tile of output pixels of one image; blocks run the
//                         groups of a tile one after another. The corners of a tile's pixels for one group
//                         are a small neighbourhood that stays in L1 while the block gathers it (a linear block
//                         of an L model spans 6 pixels of 10 groups: a footprint as large as what it reads).
struct BlockItems {
    int items_per_block;
    int tile_w, tile_h, tiles_x, tiles_y;
};

// Local item il of this block: its item, pixel and group, and whether it exists (partial blocks / tiles).
__device__ DCN_INLINE bool block_item(const Geometry& s, const BlockItems& b, int total_items, int il, int& item,
                                      int& pix, int& g) {
    const int G = static_cast<int>(s.G);
    if (b.tile_w == 0) {
        item = static_cast<int>(blockIdx.x) * b.items_per_block + il;
        pix = item / G;
        g = item - pix * G;
        return item < total_items;
    }
    const int Hout = static_cast<int>(s.Hout), Wout = static_cast<int>(s.Wout);
    int t = static_cast<int>(blockIdx.x);
    g = t % G;
    t /= G;
    const int tx = t % b.tiles_x;
    t /= b.tiles_x;
    const int ty = t % b.tiles_y, n = t / b.tiles_y;
    const int dy = il / b.tile_w;
    const int ho = ty * b.tile_h + dy, wo = tx * b.tile_w + (il - dy * b.tile_w);
    pix = (n * Hout + ho) * Wout + wo;
    item = pix * G + g;
    return ho < Hout && wo < Wout;
}

// Each item is served by Cg / CH lanes. KT: the number of points when fixed at compile time (9), else 0
// (s.K()). SMEM: records computed once per (item, point) into shared memory; else each lane computes its own.
template <typename scalar_t, typename acc_t, int CH, int KT, bool SMEM>
__global__ void __launch_bounds__(kThreads)
    dcnv3_forward_gather_kernel(const Geometry s, const scalar_t* __restrict__ in, const scalar_t* __restrict__ off,
                                const scalar_t* __restrict__ msk, scalar_t* __restrict__ out, const int total_items,
                                const BlockItems b) {
    extern __shared__ __align__(16) unsigned char smem_raw[];
    const int K = KT > 0 ? KT : s.K();
    const int Cg = static_cast<int>(s.Cg), C = static_cast<int>(s.G) * Cg;
    const int W = static_cast<int>(s.W), Wout = static_cast<int>(s.Wout), hw_out = Wout * static_cast<int>(s.Hout);
    const int lanes_per_item = Cg / CH;
    const int units = b.items_per_block * K;
    acc_t* s_w = reinterpret_cast<acc_t*>(smem_raw);  // [4][units]: corner weights
    int* s_key = reinterpret_cast<int*>(s_w + 4 * units);  // [units]

    if constexpr (SMEM) {
        // (item, point) units; in linear blocks in memory order, so the offset / mask reads are coalesced
        for (int u = threadIdx.x; u < units; u += blockDim.x) {
            const int il = u / K, p = u - il * K;
            int item, pix, g;
            if (!block_item(s, b, total_items, il, item, pix, g)) continue;
            const int r = pix % hw_out, ho = r / Wout;
            const int64_t q = static_cast<int64_t>(item) * K + p;
            acc_t w[4];
            s_key[u] = point_record<acc_t>(s, ho, r - ho * Wout, p, static_cast<acc_t>(off[2 * q]),
                                           static_cast<acc_t>(off[2 * q + 1]), static_cast<acc_t>(msk[q]), w);
#pragma unroll
            for (int k = 0; k < 4; ++k) s_w[k * units + u] = w[k];
        }
        __syncthreads();
    }

    for (int v = threadIdx.x; v < b.items_per_block * lanes_per_item; v += blockDim.x) {
        const int il = v / lanes_per_item, chunk = v - il * lanes_per_item;
        int item, pix, g;
        if (!block_item(s, b, total_items, il, item, pix, g)) continue;
        const int n = pix / hw_out, r = pix - n * hw_out, ho = r / Wout, wo = r - ho * Wout;
        const scalar_t* __restrict__ in_g = in + static_cast<int64_t>(n) * s.H * s.W * C + g * Cg + chunk * CH;
        acc_t acc[CH];
#pragma unroll
        for (int c = 0; c < CH; ++c) acc[c] = acc_t(0);
#pragma unroll
        for (int p = 0; p < K; ++p) {
            acc_t w[4];
            int key;
            if constexpr (SMEM) {
                const int u = il * K + p;
                key = s_key[u];
#pragma unroll
                for (int k = 0; k < 4; ++k) w[k] = s_w[k * units + u];
            } else {
                const int64_t q = static_cast<int64_t>(item) * K + p;
                key = point_record<acc_t>(s, ho, wo, p, static_cast<acc_t>(off[2 * q]),
                                          static_cast<acc_t>(off[2 * q + 1]), static_cast<acc_t>(msk[q]), w);
            }
            gather_point<scalar_t, acc_t, CH>(in_g, C, W, key, w, acc);
        }
        store_channels<scalar_t, acc_t, CH>(out + static_cast<int64_t>(item) * Cg + chunk * CH, acc);
    }
}

// Launches a gather kernel; false (nothing launched) when the call is outside what its 32-bit indexing, its
// record key and its vector accesses allow: the caller then runs the baseline.
template <typename scalar_t, int CH>
bool launch_forward_gather(const Geometry& s, const scalar_t* in, const scalar_t* off, const scalar_t* msk,
                           scalar_t* out, bool smem, bool tile, cudaStream_t stream) {
    using acc_t = at::opmath_type<scalar_t>;
    const int64_t items = s.pixels() * s.G;
    const int64_t hw = s.H * s.W;
    // 32-bit item, pixel and element indices (with room for a tile's pixels past the image's edge); the key
    const bool fits = items + (s.Wout + 64) * s.G * 64 <= INT_MAX && hw * s.C() <= INT_MAX &&
                      (hw + s.W + 1) <= (int64_t(1) << 26);
    constexpr uintptr_t align = sizeof(scalar_t) * CH;
    const bool aligned = reinterpret_cast<uintptr_t>(in) % align == 0 && reinterpret_cast<uintptr_t>(out) % align == 0;
    if (!fits || !aligned) return false;
    const int64_t lanes_per_item = s.Cg / CH;
    const int K = s.K();
    const int64_t record_bytes = smem ? int64_t(K) * (4 * sizeof(acc_t) + sizeof(int)) : 0;
    // at most 64 items per block: the records of the blocks on one SM then leave most of its L1 to corners
    int64_t per_block = std::max<int64_t>(1, std::min<int64_t>(64, kThreads / lanes_per_item));
    if (smem) per_block = std::min<int64_t>(per_block, std::max<int64_t>(1, (32 << 10) / record_bytes));
    const int64_t smem_bytes = per_block * record_bytes;
    if (smem_bytes > (48 << 10)) return false;
    BlockItems b{static_cast<int>(per_block), 0, 0, 0, 0};
    int64_t blocks = (items + per_block - 1) / per_block;
    if (tile) {
        b.tile_w = static_cast<int>(std::min<int64_t>(per_block, 8));
        b.tile_h = static_cast<int>(per_block / b.tile_w);
        b.items_per_block = b.tile_w * b.tile_h;
        b.tiles_x = static_cast<int>((s.Wout + b.tile_w - 1) / b.tile_w);
        b.tiles_y = static_cast<int>((s.Hout + b.tile_h - 1) / b.tile_h);
        blocks = s.N * b.tiles_y * b.tiles_x * s.G;
        if (blocks > INT_MAX) return false;
    }
    const auto threads = static_cast<unsigned int>(
        std::min<int64_t>(kThreads, (b.items_per_block * lanes_per_item + 31) / 32 * 32));
    const auto grid = static_cast<unsigned int>(blocks);
    const auto shared = static_cast<size_t>(b.items_per_block * record_bytes);
    const int n_items = static_cast<int>(items);
    if (smem) {
        if (K == 9)
            dcnv3_forward_gather_kernel<scalar_t, acc_t, CH, 9, true>
                <<<grid, threads, shared, stream>>>(s, in, off, msk, out, n_items, b);
        else
            dcnv3_forward_gather_kernel<scalar_t, acc_t, CH, 0, true>
                <<<grid, threads, shared, stream>>>(s, in, off, msk, out, n_items, b);
    } else {
        if (K == 9)
            dcnv3_forward_gather_kernel<scalar_t, acc_t, CH, 9, false>
                <<<grid, threads, 0, stream>>>(s, in, off, msk, out, n_items, b);
        else
            dcnv3_forward_gather_kernel<scalar_t, acc_t, CH, 0, false>
                <<<grid, threads, 0, stream>>>(s, in, off, msk, out, n_items, b);
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    return true;
}

template <typename scalar_t, int CH>
void forward_with(const Geometry& s, const scalar_t* in, const scalar_t* off, const scalar_t* msk, scalar_t* out,
                  int kernel, cudaStream_t stream) {
    if constexpr (sizeof(scalar_t) * CH <= 16) {  // (wider CH are never chosen: see forward_cuda_dispatch)
        const bool smem = kernel == kSmem || kernel == kTile, tile = kernel == kTile || kernel == kTileRegs;
        if (kernel != kBaseline && launch_forward_gather<scalar_t, CH>(s, in, off, msk, out, smem, tile, stream)) {
            g_last_forward_kernel.store(kernel, std::memory_order_relaxed);
            return;
        }
    }
    if (kernel != kBaseline)  // the requested kernel cannot take this call: say so once, then run the baseline
        TORCH_WARN_ONCE("DCNv3 CUDA forward kernel '", kForwardKernelNames[kernel],
                        "' cannot run this call (indexing, channel width or shared memory); the baseline kernel runs it");
    launch_forward<scalar_t, at::opmath_type<scalar_t>, CH>(s, in, off, msk, out, stream);
    g_last_forward_kernel.store(kBaseline, std::memory_order_relaxed);
}

template <typename scalar_t>
void forward_cuda_dispatch(const Geometry& s, const scalar_t* in, const scalar_t* off, const scalar_t* msk,
                           scalar_t* out, int kernel, cudaStream_t stream) {
    int ch = static_cast<int>(16 / sizeof(scalar_t));  // 16-byte pieces of a corner pixel per thread
    while (ch > 1 && s.Cg % ch != 0) ch /= 2;
    switch (ch) {
        case 8: forward_with<scalar_t, 8>(s, in, off, msk, out, kernel, stream); break;
        case 4: forward_with<scalar_t, 4>(s, in, off, msk, out, kernel, stream); break;
        case 2: forward_with<scalar_t, 2>(s, in, off, msk, out, kernel, stream); break;
        default: forward_with<scalar_t, 1>(s, in, off, msk, out, kernel, stream); break;
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
    const int kernel = chosen_forward_kernel();
    cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "dcnv3_forward_cuda", [&] {
        forward_cuda_dispatch<scalar_t>(s, input.const_data_ptr<scalar_t>(), offset.const_data_ptr<scalar_t>(),
                                        mask.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(), kernel,
                                        stream);
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

std::vector<std::string> dcnv3_cuda_forward_kernels() {
    return std::vector<std::string>(kForwardKernelNames, kForwardKernelNames + kForwardKernelCount);
}

std::string dcnv3_cuda_forward_kernel() { return kForwardKernelNames[chosen_forward_kernel()]; }

std::string dcnv3_cuda_last_forward_kernel() {
    const int k = g_last_forward_kernel.load(std::memory_order_relaxed);
    return k < 0 ? std::string() : kForwardKernelNames[k];
}

void dcnv3_cuda_set_forward_kernel(const std::string& name) {
    const int k = forward_kernel_index(name);
    TORCH_CHECK_VALUE(k >= 0, "unknown DCNv3 CUDA forward kernel '", name, "' (known: ", forward_kernel_list(), ")");
    g_forward_kernel.store(k, std::memory_order_relaxed);
}

}  // namespace csr_dcnv3
