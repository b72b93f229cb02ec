// Python bindings of the score decode CUDA op (score_decode_cuda.cu); the same names and arguments as the CPU op.
#include <torch/extension.h>

#include <optional>
#include <tuple>

#define CSR_STRINGIFY_(x) #x
#define CSR_STRINGIFY(x) CSR_STRINGIFY_(x)

namespace csr_score_decode {
std::tuple<at::Tensor, at::Tensor> decode_logits_cuda(const at::Tensor& logits, int64_t out_height, int64_t out_width,
                                                      int64_t num_valid, int64_t ignore, bool fused);
at::Tensor resize_bilinear_cuda(const at::Tensor& logits, int64_t out_height, int64_t out_width, bool fused);
std::tuple<at::Tensor, at::Tensor> decode_scores_cuda(const at::Tensor& scores, bool from_logits, int64_t num_valid,
                                                      int64_t ignore);
std::tuple<at::Tensor, at::Tensor> label_histogram_cuda(const at::Tensor& labels,
                                                        const std::optional<at::Tensor>& confidence);
}  // namespace csr_score_decode

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.doc() = "cityscapes_seg_ros: the per-pixel class decision (of full-size scores, or of the bilinear resize of "
              "low-resolution logits without making it) and the per-label histogram, on CUDA tensors";
    m.def("decode_logits", &csr_score_decode::decode_logits_cuda,
          "labels uint8 [H, W] and confidence float32 [H, W] of the bilinear resize (align_corners=False) of "
          "logits [C, h, w] (float, half, bfloat16) to (out_height, out_width); fused: a*b+c as one fused "
          "multiply-add",
          py::arg("logits"), py::arg("out_height"), py::arg("out_width"), py::arg("num_valid"), py::arg("ignore"),
          py::arg("fused"));
    m.def("resize_bilinear", &csr_score_decode::resize_bilinear_cuda,
          "float32 [C, H, W]: the bilinear resize (align_corners=False) that decode_logits decides on",
          py::arg("logits"), py::arg("out_height"), py::arg("out_width"), py::arg("fused"));
    m.def("decode_scores", &csr_score_decode::decode_scores_cuda,
          "labels uint8 [H, W] (winner, or `ignore` where winner >= num_valid) and confidence float32 [H, W]",
          py::arg("scores"), py::arg("from_logits"), py::arg("num_valid"), py::arg("ignore"));
    m.def("label_histogram", &csr_score_decode::label_histogram_cuda,
          "pixels int64 [256] and summed confidence float64 [256] (zeros without confidence) per label value",
          py::arg("labels"), py::arg("confidence") = py::none());
#ifdef CSR_SOURCE_DIGEST
    // set by the build (compiled.py, setup.py): lets the loader tell a build of these sources from a stale one
    m.attr("source_digest") = CSR_STRINGIFY(CSR_SOURCE_DIGEST);
#endif
    m.attr("device_type") = "cuda";
}
