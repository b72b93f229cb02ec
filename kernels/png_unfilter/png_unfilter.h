// Reverses the row filters of a non-interlaced grey PNG (PNG specification, section 9), for the evaluator's
// label-image reader: the inflated IDAT stream holds `height` rows of one filter-type byte followed by the
// row's filtered bytes. 8-bit samples come out as uint8, 16-bit samples (big-endian in the file) as native
// uint16. Rows are unfiltered one after the other into two rotating byte buffers (a row's filters read the
// row above), then copied or byte-swapped into the output.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <utility>
#include <vector>

namespace csr_png {

inline uint8_t paeth_predictor(int left, int up, int up_left) {
    const int estimate = left + up - up_left;
    const int to_left = std::abs(estimate - left), to_up = std::abs(estimate - up),
              to_up_left = std::abs(estimate - up_left);
    if (to_left <= to_up && to_left <= to_up_left) return static_cast<uint8_t>(left);
    return static_cast<uint8_t>(to_up <= to_up_left ? up : up_left);
}

// Unfilters one row: `source` holds the filtered bytes, `prior` the unfiltered row above (all zeros for the
// first row), `row` receives the result. UNIT is the bytes per pixel; the left neighbours are carried in
// registers, since a load of the byte just stored would put store-forwarding latency on every byte.
// False for an unknown filter type.
template <int UNIT>
bool unfilter_row(uint8_t filter, const uint8_t* source, const uint8_t* prior, uint8_t* row, int64_t row_bytes) {
    uint8_t left[UNIT] = {}, up_left[UNIT] = {};
    switch (filter) {
        case 0:  // None
            std::memcpy(row, source, row_bytes);
            return true;
        case 1:  // Sub: plus the byte one pixel to the left
            for (int64_t i = 0; i < row_bytes; i += UNIT)
                for (int k = 0; k < UNIT; ++k) row[i + k] = left[k] = static_cast<uint8_t>(source[i + k] + left[k]);
            return true;
        case 2:  // Up: plus the byte above
            for (int64_t i = 0; i < row_bytes; ++i) row[i] = static_cast<uint8_t>(source[i] + prior[i]);
            return true;
        case 3:  // Average: plus the floor of the mean of left and above
            for (int64_t i = 0; i < row_bytes; i += UNIT)
                for (int k = 0; k < UNIT; ++k)
                    row[i + k] = left[k] = static_cast<uint8_t>(source[i + k] + ((left[k] + prior[i + k]) >> 1));
            return true;
        case 4:  // Paeth: plus whichever of left, above and above-left is nearest to left + above - above-left
            for (int64_t i = 0; i < row_bytes; i += UNIT)
                for (int k = 0; k < UNIT; ++k) {
                    const uint8_t up = prior[i + k];
                    const uint8_t predicted = paeth_predictor(left[k], up, up_left[k]);
                    row[i + k] = left[k] = static_cast<uint8_t>(source[i + k] + predicted);
                    up_left[k] = up;
                }
            return true;
        default:
            return false;
    }
}

// `filtered`: height * (1 + width * bit_depth / 8) bytes. `out`: height * width samples of uint8 (bit_depth 8)
// or uint16 (bit_depth 16). Returns -1 on success, else the index of the row with an unknown filter type.
inline int64_t unfilter_grey(const uint8_t* filtered, int64_t height, int64_t width, int bit_depth, void* out) {
    const int64_t unit = bit_depth / 8, row_bytes = width * unit;
    std::vector<uint8_t> rows(2 * row_bytes, 0);
    uint8_t* prior = rows.data();
    uint8_t* current = rows.data() + row_bytes;
    for (int64_t y = 0; y < height; ++y) {
        const uint8_t* source = filtered + y * (row_bytes + 1);
        const bool known = unit == 1 ? unfilter_row<1>(source[0], source + 1, prior, current, row_bytes)
                                     : unfilter_row<2>(source[0], source + 1, prior, current, row_bytes);
        if (!known) return y;
        if (bit_depth == 8) {
            std::memcpy(static_cast<uint8_t*>(out) + y * width, current, row_bytes);
        } else {
            uint16_t* target = static_cast<uint16_t*>(out) + y * width;
            for (int64_t x = 0; x < width; ++x)
                target[x] = static_cast<uint16_t>((current[2 * x] << 8) | current[2 * x + 1]);
        }
        std::swap(prior, current);
    }
    return -1;
}

}  // namespace csr_png
