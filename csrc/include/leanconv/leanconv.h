// The one header a LibTorch program includes to use leanconv.
#pragma once

#include "leanconv/nn/eigen.h"
#include "leanconv/nn/filter_summary.h"
#include "leanconv/nn/generated.h"
#include "leanconv/ops.h"
