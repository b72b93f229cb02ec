// Python bindings of the DCNv3 CUDA op (dcnv3_cuda.cu); same signatures as the CPU op's module.
#include <torch/extension.h>

#include <optional>
#include <string>
#include <vector>

#define CSR_STRINGIFY_(x) #x
#define CSR_STRINGIFY(x) CSR_STRINGIFY_(x)

namespace csr_dcnv3 {
at::Tensor dcnv3_forward_cuda(const at::Tensor& input, const at::Tensor& offset, const at::Tensor& mask,
                              int64_t kernel_h, int64_t kernel_w, int64_t stride_h, int64_t stride_w, int64_t pad_h,
                              int64_t pad_w, int64_t dilation_h, int64_t dilation_w, int64_t group,
                              int64_t group_channels, double offset_scale, std::optional<at::Tensor> out);
std::vector<at::Tensor> dcnv3_backward_cuda(const at::Tensor& input, const at::Tensor& offset, const at::Tensor& mask,
                                            int64_t kernel_h, int64_t kernel_w, int64_t stride_h, int64_t stride_w,
                                            int64_t pad_h, int64_t pad_w, int64_t dilation_h, int64_t dilation_w,
                                            int64_t group, int64_t group_channels, double offset_scale,
                                            const at::Tensor& grad_output);
std::vector<std::string> dcnv3_cuda_forward_kernels();
std::string dcnv3_cuda_forward_kernel();
std::string dcnv3_cuda_last_forward_kernel();
void dcnv3_cuda_set_forward_kernel(const std::string& name);
}  // namespace csr_dcnv3

// an unknown kernel name is a Python ValueError with one line, whatever translation the torch build registers
template <typename F>
auto csr_value_error(F&& f) -> decltype(f()) {
    try {
        return f();
    } catch (const c10::ValueError& e) {
        throw py::value_error(e.what_without_backtrace());
    }
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.doc() = "cityscapes_seg_ros DCNv3 core, CUDA op (same per-sample code as the CPU op)";
    m.def("forward", &csr_dcnv3::dcnv3_forward_cuda, "DCNv3 forward (CUDA)", py::arg("input"), py::arg("offset"),
          py::arg("mask"), py::arg("kernel_h"), py::arg("kernel_w"), py::arg("stride_h"), py::arg("stride_w"),
          py::arg("pad_h"), py::arg("pad_w"), py::arg("dilation_h"), py::arg("dilation_w"), py::arg("group"),
          py::arg("group_channels"), py::arg("offset_scale"), py::arg("out") = py::none());
    m.def("backward", &csr_dcnv3::dcnv3_backward_cuda, "DCNv3 backward (CUDA): grad_input, grad_offset, grad_mask",
          py::arg("input"), py::arg("offset"), py::arg("mask"), py::arg("kernel_h"), py::arg("kernel_w"),
          py::arg("stride_h"), py::arg("stride_w"), py::arg("pad_h"), py::arg("pad_w"), py::arg("dilation_h"),
          py::arg("dilation_w"), py::arg("group"), py::arg("group_channels"), py::arg("offset_scale"),
          py::arg("grad_output"));
    // forward kernel variants (same results; for benchmarks and tests): see dcnv3_cuda.cu
    m.def("forward_kernels", &csr_dcnv3::dcnv3_cuda_forward_kernels, "names of the forward kernels");
    m.def("forward_kernel", [] { return csr_value_error(csr_dcnv3::dcnv3_cuda_forward_kernel); },
          "the forward kernel in use");
    m.def("set_forward_kernel", [](const std::string& name) {
            csr_value_error([&] { csr_dcnv3::dcnv3_cuda_set_forward_kernel(name); });
          }, "use this forward kernel from now on", py::arg("name"));
    m.def("last_forward_kernel", &csr_dcnv3::dcnv3_cuda_last_forward_kernel,
          "the kernel the latest forward ran: the chosen one, or baseline where a gather kernel cannot take the "
          "call's shapes or alignment ('' before the first forward)");
#ifdef CSR_SOURCE_DIGEST
    // set by the build (compiled.py, setup.py): lets the loader tell a build of these sources from a stale one
    m.attr("source_digest") = CSR_STRINGIFY(CSR_SOURCE_DIGEST);
#endif
    m.attr("device_type") = "cuda";
}
