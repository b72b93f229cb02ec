// Per-pixel class decision of a [C, H, W] score map on the CPU: the winning class (the first on ties) and
// its probability, in one pass over the scores. From logits the probability is 1 / sum_c exp(l_c - l_max),
// so the [C, H, W] softmax that torch would materialise (1.2 GB for a 150-class head at 2048x1024) is never
// made. Pixels are taken in blocks whose C rows stay in cache between the max pass and the exp pass; the
// inner loops run over contiguous pixels without branches, so the compiler vectorises them (it needs
// -fno-trapping-math to turn the float comparisons into selects). label_histogram then gives the pixels and
// summed confidence per label for the node's statistics.
// The Python entry (cityscapes_seg_ros/ops/score_decode.py) checks the arguments once; these functions trust
// them: contiguous CPU tensors, float32 scores [C >= 1, H, W], uint8 labels, float32 confidence of their size.
// decode_logits makes the same decision on the bilinear resize of low-resolution logits, tile by tile, with the
// per-pixel arithmetic of score_decode_pixel.h that the CUDA op (score_decode_cuda.cu) runs too.
#include <ATen/Parallel.h>
#include <torch/extension.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <optional>
#include <tuple>
#include <vector>

#include "score_decode_pixel.h"

#define CSR_STRINGIFY_(x) #x
#define CSR_STRINGIFY(x) CSR_STRINGIFY_(x)

namespace csr_score_decode {
namespace {

constexpr int64_t kBlock = 512;  // pixels per task: C rows of 2 KB each stay in L2 for the second pass

// x86-64: an AVX2+FMA version beside the baseline one, picked at load time by the CPU's features (GCC function
// clones). x86-64-v3 is ~25 % faster here than plain "avx2", which is what GCC before 12 gets.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#define CSR_VECTOR_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#elif defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define CSR_VECTOR_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define CSR_VECTOR_CLONES
#endif

// The op is built with -ffp-contract=off (decode_logits must round as torch does); the exp polynomial here may
// use fused multiply-adds, which make this loop almost twice as fast where the CPU has them.
#if defined(__GNUC__) && !defined(__clang__)
#define CSR_CONTRACT_FP __attribute__((optimize("fp-contract=fast")))
#else
#define CSR_CONTRACT_FP
#endif

CSR_VECTOR_CLONES CSR_CONTRACT_FP
void decode_block(const float* scores, int64_t channels, int64_t pixels, int64_t begin, int64_t count,
                  bool from_logits, int32_t num_valid, uint8_t ignore, uint8_t* labels, float* confidence) {
    float best[kBlock];
    int32_t winner[kBlock];
    const float* first = scores + begin;
    for (int64_t j = 0; j < count; ++j) {
        best[j] = first[j];
        winner[j] = 0;
    }
    for (int64_t c = 1; c < channels; ++c) {
        const float* row = scores + c * pixels + begin;
        const int32_t cls = static_cast<int32_t>(c);
        for (int64_t j = 0; j < count; ++j) {
            keep_max(row[j], cls, best[j], winner[j]);
        }
    }
    if (from_logits) {
        float sum[kBlock];
        std::fill(sum, sum + count, 0.0f);
        for (int64_t c = 0; c < channels; ++c) {
            const float* row = scores + c * pixels + begin;
            for (int64_t j = 0; j < count; ++j) sum[j] += exp_nonpositive(row[j] - best[j]);
        }
        for (int64_t j = 0; j < count; ++j) confidence[begin + j] = 1.0f / sum[j];
    } else {
        for (int64_t j = 0; j < count; ++j) confidence[begin + j] = best[j];
    }
    for (int64_t j = 0; j < count; ++j) labels[begin + j] = train_id(winner[j], num_valid, ignore);
}


// ---- the class decision of the bilinear resize of low-resolution logits, without the full-resolution logits

constexpr int64_t kTileColumns = 256;  // output columns per task: 2 x C rows of them stay in L2 (300 KB at C = 150)
constexpr int64_t kTileRows = 16;      // output rows per task

struct ResizeGeometry {
    int64_t channels, in_height, in_width, out_height, out_width;
};

// The decision for output rows [y_begin, y_end) x columns [x_begin, x_begin + count). Each output row is
// combine(t_first, t_second, wy0, wy1) of two input rows already interpolated along the width (t = the width
// pass of one input row, the first product of ATen's height sum): those are made once per input row and kept in
// two slots, since consecutive output rows share them.
template <bool kFused>
SD_INLINE void decode_logits_tile(const float* logits, const ResizeGeometry& g, const Tap* row_taps,
                                  const Tap* column_taps, int64_t y_begin, int64_t y_end, int64_t x_begin,
                                  int64_t count, int32_t num_valid, uint8_t ignore, float* slots, uint8_t* labels,
                                  float* confidence) {
    const int64_t channels = g.channels, slot_size = channels * kTileColumns;
    int64_t slot_row[2] = {-1, -1};
    const Tap* columns = column_taps + x_begin;
    auto fill = [&](int slot, int64_t input_row) {
        float* out = slots + slot * slot_size;
        for (int64_t c = 0; c < channels; ++c) {
            const float* row = logits + (c * g.in_height + input_row) * g.in_width;
            float* dst = out + c * kTileColumns;
            for (int64_t j = 0; j < count; ++j) {
                const Tap tap = columns[j];
                dst[j] = combine<kFused>(row[tap.first], row[tap.second], tap.weight_first, tap.weight_second);
            }
        }
        slot_row[slot] = input_row;
    };
    auto find = [&](int64_t input_row) { return slot_row[0] == input_row ? 0 : (slot_row[1] == input_row ? 1 : -1); };
    float best[kTileColumns], sum[kTileColumns];
    int32_t winner[kTileColumns];
    for (int64_t y = y_begin; y < y_end; ++y) {
        const Tap tap = row_taps[y];
        int first = find(tap.first);
        if (first < 0) {
            first = find(tap.second) == 0 ? 1 : 0;
            fill(first, tap.first);
        }
        int second = find(tap.second);
        if (second < 0) {
            second = 1 - first;
            fill(second, tap.second);
        }
        const float *upper = slots + first * slot_size, *lower = slots + second * slot_size;
        const float w0 = tap.weight_first, w1 = tap.weight_second;
        for (int64_t j = 0; j < count; ++j) {
            best[j] = combine<kFused>(upper[j], lower[j], w0, w1);
            winner[j] = 0;
        }
        for (int64_t c = 1; c < channels; ++c) {
            const float *a = upper + c * kTileColumns, *b = lower + c * kTileColumns;
            const int32_t cls = static_cast<int32_t>(c);
            for (int64_t j = 0; j < count; ++j) keep_max(combine<kFused>(a[j], b[j], w0, w1), cls, best[j], winner[j]);
        }
        std::fill(sum, sum + count, 0.0f);
        for (int64_t c = 0; c < channels; ++c) {
            const float *a = upper + c * kTileColumns, *b = lower + c * kTileColumns;
            for (int64_t j = 0; j < count; ++j)
                sum[j] += exp_nonpositive(combine<kFused>(a[j], b[j], w0, w1) - best[j]);
        }
        const int64_t offset = y * g.out_width + x_begin;
        for (int64_t j = 0; j < count; ++j) {
            labels[offset + j] = train_id(winner[j], num_valid, ignore);
            confidence[offset + j] = 1.0f / sum[j];
        }
    }
}

CSR_VECTOR_CLONES
void decode_logits_tile_fused(const float* logits, const ResizeGeometry& g, const Tap* row_taps,
                              const Tap* column_taps, int64_t y_begin, int64_t y_end, int64_t x_begin, int64_t count,
                              int32_t num_valid, uint8_t ignore, float* slots, uint8_t* labels, float* confidence) {
    decode_logits_tile<true>(logits, g, row_taps, column_taps, y_begin, y_end, x_begin, count, num_valid, ignore,
                             slots, labels, confidence);
}

CSR_VECTOR_CLONES
void decode_logits_tile_plain(const float* logits, const ResizeGeometry& g, const Tap* row_taps,
                              const Tap* column_taps, int64_t y_begin, int64_t y_end, int64_t x_begin, int64_t count,
                              int32_t num_valid, uint8_t ignore, float* slots, uint8_t* labels, float* confidence) {
    decode_logits_tile<false>(logits, g, row_taps, column_taps, y_begin, y_end, x_begin, count, num_valid, ignore,
                              slots, labels, confidence);
}

std::vector<Tap> axis_taps(int64_t input_size, int64_t output_size, bool fused) {
    std::vector<Tap> taps(output_size);
    const float scale = axis_scale(input_size, output_size);
    for (int64_t i = 0; i < output_size; ++i)
        taps[i] = fused ? linear_tap<true>(scale, i, input_size, output_size)
                        : linear_tap<false>(scale, i, input_size, output_size);
    return taps;
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> decode_scores_cpu(const at::Tensor& scores, bool from_logits, int64_t num_valid,
                                                     int64_t ignore) {
    const int64_t channels = scores.size(0), height = scores.size(1), width = scores.size(2);
    const int64_t pixels = height * width;
    at::Tensor labels = at::empty({height, width}, scores.options().dtype(at::kByte));
    at::Tensor confidence = at::empty({height, width}, scores.options());
    const float* data = scores.data_ptr<float>();
    uint8_t* label_data = labels.data_ptr<uint8_t>();
    float* confidence_data = confidence.data_ptr<float>();
    const int64_t blocks = (pixels + kBlock - 1) / kBlock;
    at::parallel_for(0, blocks, 1, [&](int64_t first_block, int64_t end_block) {
        for (int64_t b = first_block; b < end_block; ++b) {
            const int64_t begin = b * kBlock;
            decode_block(data, channels, pixels, begin, std::min(kBlock, pixels - begin), from_logits,
                         static_cast<int32_t>(num_valid), static_cast<uint8_t>(ignore), label_data, confidence_data);
        }
    });
    return {labels, confidence};
}

// The decision of resize_bilinear(logits, (out_height, out_width)) (align_corners=False) from the logits
// [C, h, w]: labels and the winner's probability, in tiles of output pixels, never the [C, H, W] logits.
std::tuple<at::Tensor, at::Tensor> decode_logits_cpu(const at::Tensor& logits, int64_t out_height, int64_t out_width,
                                                     int64_t num_valid, int64_t ignore, bool fused) {
    const ResizeGeometry g{logits.size(0), logits.size(1), logits.size(2), out_height, out_width};
    at::Tensor labels = at::empty({out_height, out_width}, logits.options().dtype(at::kByte));
    at::Tensor confidence = at::empty({out_height, out_width}, logits.options());
    const std::vector<Tap> row_taps = axis_taps(g.in_height, out_height, fused);
    const std::vector<Tap> column_taps = axis_taps(g.in_width, out_width, fused);
    const float* data = logits.data_ptr<float>();
    uint8_t* label_data = labels.data_ptr<uint8_t>();
    float* confidence_data = confidence.data_ptr<float>();
    const int64_t bands = (out_height + kTileRows - 1) / kTileRows;
    const int64_t column_blocks = (out_width + kTileColumns - 1) / kTileColumns;
    const auto tile = fused ? decode_logits_tile_fused : decode_logits_tile_plain;
    at::parallel_for(0, bands * column_blocks, 1, [&](int64_t first_task, int64_t end_task) {
        std::vector<float> slots(2 * g.channels * kTileColumns);
        for (int64_t task = first_task; task < end_task; ++task) {
            const int64_t band = task / column_blocks, x_begin = (task % column_blocks) * kTileColumns;
            const int64_t y_begin = band * kTileRows, y_end = std::min(out_height, y_begin + kTileRows);
            tile(data, g, row_taps.data(), column_taps.data(), y_begin, y_end, x_begin,
                 std::min(kTileColumns, out_width - x_begin), static_cast<int32_t>(num_valid),
                 static_cast<uint8_t>(ignore), slots.data(), label_data, confidence_data);
        }
    });
    return {labels, confidence};
}

// The bilinear resize itself with the same arithmetic, [C, h, w] -> [C, H, W]: for the tests and for finding
// which arithmetic torch's own resize uses (ops/score_decode.py).
at::Tensor resize_bilinear_cpu(const at::Tensor& logits, int64_t out_height, int64_t out_width, bool fused) {
    const int64_t channels = logits.size(0), in_height = logits.size(1), in_width = logits.size(2);
    at::Tensor out = at::empty({channels, out_height, out_width}, logits.options());
    const std::vector<Tap> row_taps = axis_taps(in_height, out_height, fused);
    const std::vector<Tap> column_taps = axis_taps(in_width, out_width, fused);
    const float* data = logits.data_ptr<float>();
    float* out_data = out.data_ptr<float>();
    at::parallel_for(0, channels * out_height, 1, [&](int64_t begin, int64_t end) {
        for (int64_t index = begin; index < end; ++index) {
            const int64_t c = index / out_height, y = index % out_height;
            const Tap ty = row_taps[y];
            const float* upper = data + (c * in_height + ty.first) * in_width;
            const float* lower = data + (c * in_height + ty.second) * in_width;
            for (int64_t x = 0; x < out_width; ++x) {
                const Tap tx = column_taps[x];
                out_data[index * out_width + x] =
                    fused ? combine<true>(combine<true>(upper[tx.first], upper[tx.second], tx.weight_first,
                                                        tx.weight_second),
                                          combine<true>(lower[tx.first], lower[tx.second], tx.weight_first,
                                                        tx.weight_second),
                                          ty.weight_first, ty.weight_second)
                          : combine<false>(combine<false>(upper[tx.first], upper[tx.second], tx.weight_first,
                                                          tx.weight_second),
                                           combine<false>(lower[tx.first], lower[tx.second], tx.weight_first,
                                                          tx.weight_second),
                                           ty.weight_first, ty.weight_second);
            }
        }
    });
    return out;
}

// Pixels and summed confidence per label value: each task counts its own chunk of pixels, and the chunks are
// added up in order, so the sums do not depend on the number of threads.
std::tuple<at::Tensor, at::Tensor> label_histogram_cpu(const at::Tensor& labels,
                                                       const std::optional<at::Tensor>& confidence_) {
    const at::Tensor confidence = confidence_.has_value() ? *confidence_ : at::Tensor();
    constexpr int64_t kChunk = 1 << 16;
    const int64_t pixels = labels.numel(), chunks = (pixels + kChunk - 1) / kChunk;
    std::vector<std::array<int64_t, 256>> chunk_counts(chunks);
    std::vector<std::array<double, 256>> chunk_sums(confidence.defined() ? chunks : 0);
    const uint8_t* label_data = labels.data_ptr<uint8_t>();
    const float* confidence_data = confidence.defined() ? confidence.data_ptr<float>() : nullptr;
    at::parallel_for(0, chunks, 1, [&](int64_t first_chunk, int64_t end_chunk) {
        for (int64_t chunk = first_chunk; chunk < end_chunk; ++chunk) {
            const int64_t begin = chunk * kChunk, end = std::min(pixels, begin + kChunk);
            auto& counts = chunk_counts[chunk];
            counts.fill(0);
            for (int64_t p = begin; p < end; ++p) ++counts[label_data[p]];
            if (confidence_data != nullptr) {
                auto& sums = chunk_sums[chunk];
                sums.fill(0.0);
                for (int64_t p = begin; p < end; ++p) sums[label_data[p]] += confidence_data[p];
            }
        }
    });
    at::Tensor counts = at::zeros({256}, labels.options().dtype(at::kLong));
    at::Tensor sums = at::zeros({256}, labels.options().dtype(at::kDouble));
    int64_t* count_data = counts.data_ptr<int64_t>();
    double* sum_data = sums.data_ptr<double>();
    for (int64_t chunk = 0; chunk < chunks; ++chunk) {
        for (int v = 0; v < 256; ++v) count_data[v] += chunk_counts[chunk][v];
        if (confidence_data != nullptr)
            for (int v = 0; v < 256; ++v) sum_data[v] += chunk_sums[chunk][v];
    }
    return {counts, sums};
}

}  // namespace csr_score_decode

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.doc() = "cityscapes_seg_ros: per-pixel winning class and its probability from a [C, H, W] score map, "
              "and the per-label histogram of the result (CPU)";
    m.def("decode_scores", &csr_score_decode::decode_scores_cpu,
          "labels uint8 [H, W] (winner, or `ignore` where winner >= num_valid) and confidence float32 [H, W]",
          py::arg("scores"), py::arg("from_logits"), py::arg("num_valid"), py::arg("ignore"));
    m.def("decode_logits", &csr_score_decode::decode_logits_cpu,
          "labels uint8 [H, W] and confidence float32 [H, W] of the bilinear resize (align_corners=False) of "
          "float32 logits [C, h, w] to (out_height, out_width); fused: a*b+c as one fused multiply-add",
          py::arg("logits"), py::arg("out_height"), py::arg("out_width"), py::arg("num_valid"), py::arg("ignore"),
          py::arg("fused"));
    m.def("resize_bilinear", &csr_score_decode::resize_bilinear_cpu,
          "float32 [C, H, W]: the bilinear resize (align_corners=False) that decode_logits decides on",
          py::arg("logits"), py::arg("out_height"), py::arg("out_width"), py::arg("fused"));
    m.def("label_histogram", &csr_score_decode::label_histogram_cpu,
          "pixels int64 [256] and summed confidence float64 [256] (zeros without confidence) per label value",
          py::arg("labels"), py::arg("confidence") = py::none());
#ifdef CSR_SOURCE_DIGEST
    // set by the build (compiled.py, setup.py): lets the loader tell a build of these sources from a stale one
    m.attr("source_digest") = CSR_STRINGIFY(CSR_SOURCE_DIGEST);
#endif
}
