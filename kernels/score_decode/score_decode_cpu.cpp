// Per-pixel class decision of a [C, H, W] score map on the CPU: the winning class (the first on ties) and
// its probability, in one pass over the scores. From logits the probability is 1 / sum_c exp(l_c - l_max),
// so the [C, H, W] softmax that torch would materialise (1.2 GB for a 150-class head at 2048x1024) is never
// made. Pixels are taken in blocks whose C rows stay in cache between the max pass and the exp pass; the
// inner loops run over contiguous pixels without branches, so the compiler vectorises them (it needs
// -fno-trapping-math to turn the float comparisons into selects). label_histogram then gives the pixels and
// summed confidence per label for the node's statistics, and png_unfilter the last step of decoding the
// evaluator's label PNGs (png_unfilter.h).
#include <ATen/Parallel.h>
#include <torch/extension.h>

#include "png_unfilter.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <optional>
#include <tuple>
#include <vector>

namespace csr_score_decode {
namespace {

constexpr int64_t kBlock = 512;  // pixels per task: C rows of 2 KB each stay in L2 for the second pass

// exp(x) for x <= 0 (Cephes' expf polynomial, about 2 ulp), branch-free so that loops over it vectorise.
inline float exp_nonpositive(float x) {
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
    const float scale = std::bit_cast<float>((static_cast<int32_t>(n) + 127) << 23);  // 2^n
    return p * scale;
}

// x86-64: an AVX2+FMA version beside the baseline one, picked at load time by the CPU's features (GCC function
// clones). x86-64-v3 is ~25 % faster here than plain "avx2", which is what GCC before 12 gets.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#define CSR_VECTOR_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#elif defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define CSR_VECTOR_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define CSR_VECTOR_CLONES
#endif

CSR_VECTOR_CLONES
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
            const float value = row[j], current = best[j];
            const int32_t higher = -static_cast<int32_t>(value > current);  // all ones where this class wins
            best[j] = value > current ? value : current;
            winner[j] = (cls & higher) | (winner[j] & ~higher);  // a mask, not a select: GCC vectorises it
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
    for (int64_t j = 0; j < count; ++j)
        labels[begin + j] = winner[j] < num_valid ? static_cast<uint8_t>(winner[j]) : ignore;
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> decode_scores_cpu(const at::Tensor& scores_, bool from_logits, int64_t num_valid,
                                                     int64_t ignore) {
    TORCH_CHECK(scores_.device().is_cpu(), "decode_scores: scores must be a CPU tensor");
    TORCH_CHECK(scores_.scalar_type() == at::kFloat, "decode_scores: scores must be float32, got ",
                scores_.scalar_type());
    TORCH_CHECK(scores_.dim() == 3, "decode_scores: scores must be [C, H, W], got ", scores_.sizes());
    TORCH_CHECK(scores_.size(0) >= 1, "decode_scores: no classes");
    TORCH_CHECK(num_valid >= 0 && num_valid <= 255, "decode_scores: num_valid must be in [0, 255]");
    TORCH_CHECK(ignore >= 0 && ignore <= 255, "decode_scores: ignore must be in [0, 255]");
    const at::Tensor scores = scores_.contiguous();
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

// Pixels and summed confidence per label value: each task counts its own chunk of pixels, and the chunks are
// added up in order, so the sums do not depend on the number of threads.
std::tuple<at::Tensor, at::Tensor> label_histogram_cpu(const at::Tensor& labels_,
                                                       const std::optional<at::Tensor>& confidence_) {
    TORCH_CHECK(labels_.device().is_cpu() && labels_.scalar_type() == at::kByte,
                "label_histogram: labels must be a uint8 CPU tensor");
    const at::Tensor labels = labels_.contiguous();
    at::Tensor confidence;
    if (confidence_.has_value()) {
        TORCH_CHECK(confidence_->device().is_cpu() && confidence_->scalar_type() == at::kFloat,
                    "label_histogram: confidence must be a float32 CPU tensor");
        TORCH_CHECK(confidence_->numel() == labels.numel(), "label_histogram: confidence has ",
                    confidence_->numel(), " values for ", labels.numel(), " labels");
        confidence = confidence_->contiguous();
    }
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

// The inflated IDAT stream of a grey, non-interlaced PNG -> its samples, uint8 [H, W] for 8 bits or, for 16
// bits, int16 [H, W] holding the uint16 values (numpy views it as uint16; torch before 2.3 has no uint16).
at::Tensor png_unfilter_cpu(const py::buffer& filtered, int64_t height, int64_t width, int64_t bit_depth) {
    const py::buffer_info info = filtered.request();
    TORCH_CHECK(info.ndim == 1 && info.itemsize == 1 && info.strides[0] == 1,
                "png_unfilter: filtered must be a contiguous byte buffer");
    TORCH_CHECK(bit_depth == 8 || bit_depth == 16, "png_unfilter: bit depth must be 8 or 16, got ", bit_depth);
    TORCH_CHECK(height >= 0 && width >= 0, "png_unfilter: negative size ", height, "x", width);
    TORCH_CHECK(info.size == height * (1 + width * bit_depth / 8), "png_unfilter: ", info.size,
                " bytes for ", height, " rows of ", width, " samples of ", bit_depth, " bits");
    at::Tensor out = at::empty({height, width}, at::TensorOptions().dtype(bit_depth == 8 ? at::kByte : at::kShort));
    int64_t bad_row;
    {
        py::gil_scoped_release no_gil;
        bad_row = csr_png::unfilter_grey(static_cast<const uint8_t*>(info.ptr), height, width,
                                         static_cast<int>(bit_depth), out.data_ptr());
    }
    TORCH_CHECK(bad_row < 0, "png_unfilter: row ", bad_row, " has an unknown filter type");
    return out;
}

}  // namespace csr_score_decode

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.doc() = "cityscapes_seg_ros: per-pixel winning class and its probability from a [C, H, W] score map, "
              "the per-label histogram of the result, and PNG row unfiltering for label images (CPU)";
    m.def("decode_scores", &csr_score_decode::decode_scores_cpu,
          "labels uint8 [H, W] (winner, or `ignore` where winner >= num_valid) and confidence float32 [H, W]",
          py::arg("scores"), py::arg("from_logits"), py::arg("num_valid"), py::arg("ignore"));
    m.def("label_histogram", &csr_score_decode::label_histogram_cpu,
          "pixels int64 [256] and summed confidence float64 [256] (zeros without confidence) per label value",
          py::arg("labels"), py::arg("confidence") = py::none());
    m.def("png_unfilter", &csr_score_decode::png_unfilter_cpu,
          "samples [H, W] (uint8, or int16 holding uint16) of a grey PNG's inflated, filtered rows",
          py::arg("filtered"), py::arg("height"), py::arg("width"), py::arg("bit_depth"));
#ifdef CSR_SOURCE_DIGEST
    m.attr("source_digest") = CSR_SOURCE_DIGEST;
#endif
}
