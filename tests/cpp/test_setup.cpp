// What main.cpp sets up for every test, checked on any machine (the _CUDA cases rely on it on a GPU).
#include <ATen/Context.h>
#include <gtest/gtest.h>

TEST(TestSetup, Float32ComparisonsRunWithoutTF32) {
  EXPECT_FALSE(at::globalContext().allowTF32CuDNN());
  EXPECT_FALSE(at::globalContext().allowTF32CuBLAS());
}
