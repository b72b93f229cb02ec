// The PNG row unfilter (png_unfilter.h) behind a C ABI: a plain shared library, loaded with ctypes by
// cityscapes_seg_ros/ops/png_unfilter.py, that needs neither torch nor Python headers, so that the evaluator
// decodes label PNGs in processes that never import torch. The Python side checks the arguments; this trusts
// them (the stream holds height * (1 + width * bit_depth / 8) bytes, out has room for height * width samples).
#include "png_unfilter.h"

#include <cstdint>
#include <new>

#define CSR_STRINGIFY_(x) #x
#define CSR_STRINGIFY(x) CSR_STRINGIFY_(x)

extern "C" {

// The digest of the sources and flags this library was built from (set by the build; the loader compares it).
const char* csr_source_digest(void) {
#ifdef CSR_SOURCE_DIGEST
    return CSR_STRINGIFY(CSR_SOURCE_DIGEST);
#else
    return "";
#endif
}

// Unfilters the rows into `out` (uint8 for bit depth 8, native uint16 for 16). Returns -1 on success, the
// index of the first row with an unknown filter type, or -2 when the two row buffers cannot be allocated.
int64_t csr_png_unfilter_grey(const uint8_t* filtered, int64_t height, int64_t width, int32_t bit_depth, void* out) {
    try {
        return csr_png::unfilter_grey(filtered, height, width, bit_depth, out);
    } catch (const std::bad_alloc&) {
        return -2;
    }
}

}  // extern "C"
