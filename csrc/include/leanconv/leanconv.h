// The one header a LibTorch program includes to use leanconv: every family's ops and modules.
#pragma once

#include "leanconv/nn/conv_families.h"
#include "leanconv/nn/filter_summary.h"
#include "leanconv/nn/generated.h"
#include "leanconv/nn/lowrank.h"
#include "leanconv/nn/multigrid.h"
#include "leanconv/nn/shared.h"
#include "leanconv/ops/block_epilogue.h"
#include "leanconv/ops/filter_summary.h"
#include "leanconv/ops/generated.h"
#include "leanconv/ops/multigrid.h"
#include "leanconv/ops/lowrank.h"
