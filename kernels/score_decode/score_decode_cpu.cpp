// Per-pixel class decision of a [C, H, W] score map on the CPU: the winning class (the first on ties) and
// its probability, in one pass over the scores. From logits the probability is 1 / sum_c exp(l_c - l_max),
// so the [C, H, W] softmax that torch would materialise (1.2 GB for a 150-class head at 2048x1024) is never
// made. Pixels are taken in blocks whose C rows stay in cache between the max pass and the exp pass; the
// inner loops run over contiguous pixels without branches, so the compiler vectorises them (it needs
// -fno-trapping-math to turn the float comparisons into selects). label_histogram then gives the pixels and
// summed confidence per label for the node's statistics.
// The Python entry (cityscapes_seg_ros/ops/score_decode.py) checks the arguments once; these functions trust
// them: contiguous CPU tensors, float32 scores [C >= 1, H, W], uint8 labels, float32 confidence of their size.
#include <ATen/Parallel.h>
#include <torch/extension.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <optional>
#include <tuple>
#include <vector>

#define CSR_STRINGIFY_(x) #x
#define CSR_STRINGIFY(x) CSR_STRINGIFY_(x)

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
    m.def("label_histogram", &csr_score_decode::label_histogram_cpu,
          "pixels int64 [256] and summed confidence float64 [256] (zeros without confidence) per label value",
          py::arg("labels"), py::arg("confidence") = py::none());
#ifdef CSR_SOURCE_DIGEST
    // set by the build (compiled.py, setup.py): lets the loader tell a build of these sources from a stale one
    m.attr("source_digest") = CSR_STRINGIFY(CSR_SOURCE_DIGEST);
#endif
}
