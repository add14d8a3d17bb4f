// The tap walk of the CPU shifted sum, its adjoint and segment_conv2d: which output rows and columns each tap
// of the kernel reaches inside the image, in the one order all of them (and the CUDA kernels) add the taps.
#pragma once

#include <cstdint>

#include "common/conv_window.h"
#include "common/filter_summary.h"

namespace leanconv::cpu {

// The in-image part of tap `tap` = i*kw + j of the shifted sum: the output rows [p0, p1) and columns [q0, q1)
// whose input position (p*stride_h + dh, q*stride_w + dw) lies inside z.
struct TapRange {
  int64_t tap, dh, dw, p0, p1, q0, q1;
};

// Calls visit(range) for every tap, i then j: the order in which the shifted sum and its adjoint add their taps
// (the CUDA kernels add them in the same order, so the devices give the same bits).
template <typename Visit>
void for_each_tap(const common::ShiftedSum& s, Visit&& visit) {
  for (int64_t i = 0; i < s.kernel_h; ++i) {
    TapRange r{};
    r.dh = i * s.dil_h - s.pad_h;
    common::valid_output_range(r.dh, s.stride_h, s.in_h, s.out_h, r.p0, r.p1);
    for (int64_t j = 0; j < s.kernel_w; ++j) {
      r.tap = i * s.kernel_w + j;
      r.dw = j * s.dil_w - s.pad_w;
      common::valid_output_range(r.dw, s.stride_w, s.in_w, s.out_w, r.q0, r.q1);
      visit(r);
    }
  }
}

}  // namespace leanconv::cpu
