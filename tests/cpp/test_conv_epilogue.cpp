// The fused epilogue building block (csrc/common/conv_epilogue.h): every combination of scale, shift, residual and
// ReLU against the formula, and the conv kernels' bias-only form.
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "common/conv_epilogue.h"

namespace {

using leanconv::common::Epilogue;
using leanconv::common::epilogue_value;

TEST(Epilogue, EveryCombinationMatchesTheFormula) {
  const std::vector<float> scale{2.0f, -0.5f}, shift{0.25f, -3.0f};
  const std::vector<float> residual{1, -1, 2, -2, 3, -3, 4, -4};  // (1, 2, 2, 2), NCHW
  for (int mask = 0; mask < 16; ++mask) {
    const bool relu = mask & 8;
    for (int o = 0; o < 2; ++o)
      for (int p = 0; p < 2; ++p)
        for (int q = 0; q < 2; ++q) {
          const float acc = 1.5f - o - p + 0.5f * q;
          const float a = (mask & 1) ? scale[o] : 1.0f, b = (mask & 2) ? shift[o] : 0.0f;
          const float r = (mask & 4) ? residual[o * 4 + p * 2 + q] : 0.0f;
          float expected = acc * a + b;
          if (mask & 4) expected += r;
          if (relu) expected = std::max(expected, 0.0f);
          EXPECT_FLOAT_EQ(epilogue_value(acc, a, b, r, relu), expected) << "mask " << mask << " at " << o << p << q;
        }
  }
}

TEST(Epilogue, BiasIsAShift) {
  const std::vector<float> bias{0.5f, -1.0f};
  const auto e = Epilogue<float>::bias(bias.data());
  EXPECT_FLOAT_EQ(e.apply(2.0f, 1), 1.0f);
  const auto none = Epilogue<float>::bias(nullptr);
  EXPECT_FLOAT_EQ(none.apply(-2.0f, 1), -2.0f);  // no bias, no ReLU
}

}  // namespace
