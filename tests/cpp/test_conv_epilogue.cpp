// The fused epilogue building block (csrc/common/conv_epilogue.h): every combination of scale, shift, residual and
// ReLU against the formula, a residual read through channels_last strides, and the bias-only form.
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "common/conv_epilogue.h"

namespace {

using leanconv::common::Epilogue;
using leanconv::common::Strides4;

TEST(Epilogue, EveryCombinationMatchesTheFormula) {
  const std::vector<float> scale{2.0f, -0.5f}, shift{0.25f, -3.0f};
  // A (1, 2, 2, 2) residual in channels_last order: strides n = 8, c = 1, h = 4, w = 2.
  const std::vector<double> residual{1, -1, 2, -2, 3, -3, 4, -4};
  const Strides4 channels_last{8, 1, 4, 2};
  for (int mask = 0; mask < 16; ++mask) {
    Epilogue<double, float> e;
    if (mask & 1) e.scale = scale.data();
    if (mask & 2) e.shift = shift.data();
    if (mask & 4) {
      e.residual = residual.data();
      e.residual_strides = channels_last;
    }
    e.relu = mask & 8;
    for (int o = 0; o < 2; ++o)
      for (int p = 0; p < 2; ++p)
        for (int q = 0; q < 2; ++q) {
          const float acc = 1.5f - o - p + 0.5f * q;
          float expected = acc * ((mask & 1) ? scale[o] : 1.0f) + ((mask & 2) ? shift[o] : 0.0f);
          if (mask & 4) expected += static_cast<float>(residual[o * 1 + p * 4 + q * 2]);
          if (mask & 8) expected = std::max(expected, 0.0f);
          EXPECT_FLOAT_EQ(e.apply(acc, 0, o, p, q), expected) << "mask " << mask << " at " << o << p << q;
        }
  }
}

TEST(Epilogue, BiasIsAShift) {
  const std::vector<float> bias{0.5f, -1.0f};
  const auto e = Epilogue<float, float>::bias(bias.data());
  EXPECT_FLOAT_EQ(e.apply(2.0f, 0, 1, 0, 0), 1.0f);
  const auto none = Epilogue<float, float>::bias(nullptr);
  EXPECT_FLOAT_EQ(none.apply(-2.0f, 0, 1, 0, 0), -2.0f);  // no bias, no ReLU
}

}  // namespace
