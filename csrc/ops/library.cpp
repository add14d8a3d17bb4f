// The leanconv operator namespace. Each family declares its schemas in its own file with
// TORCH_LIBRARY_FRAGMENT; this is the one TORCH_LIBRARY block the dispatcher requires.
#include <torch/library.h>

TORCH_LIBRARY(leanconv, m) {}
