// The generated family's kernels in the kernel driver: the ring's generation forward (32- and 64-bit layouts) and
// backward (atomic and deterministic).
#include "driver_case.h"

namespace leanconv::driver {
namespace {

void add_generated_cases(std::vector<Case>& all) {
  torch::manual_seed(0);
  const auto ring = torch::randn({97}), grad24 = torch::randn({6, 4, 3, 3});
  all.push_back({"generate_weights forward", {"leanconv"}, [=](torch::Device d, torch::ScalarType t) {
                   return std::vector<Tensor>{ops::generate_weights(on(ring, d, t), 5, 1000, 100, {6, 4, 3, 3}, 0.3)};
                 }});
  all.push_back({"generate_weights forward, 64-bit layout crossing 2^32", {"leanconv"},
                 [=](torch::Device d, torch::ScalarType t) {
                   return std::vector<Tensor>{
                       ops::generate_weights(on(ring, d, t), 7, (int64_t(1) << 33) + 17, (int64_t(1) << 32) - 100,
                                             {216}, 1.0)};
                 }});
  for (const bool deterministic : {false, true}) {
    // Rings of 97 (runs of ~2 equal entries in 216 positions), 5 (runs of ~43: the 8-term steps) and 2^20 + 3 (runs
    // of 0 or 1, three radix passes), a sequence of 2^22 and one of 2^33 + 17 whose range crosses 2^32.
    all.push_back({std::string("generate_weights backward, ") + (deterministic ? "deterministic" : "atomic"),
                   {"leanconv"}, [=](torch::Device d, torch::ScalarType t) {
                     at::globalContext().setDeterministicAlgorithms(deterministic, false);
                     auto g = ops::generate_weights_backward(on(grad24, d, t), 97, 5, 1000, 100, 0.3);
                     auto wide = ops::generate_weights_backward(on(grad24, d, t), 97, 5, int64_t(1) << 22, 12345, 0.3);
                     auto small_ring = ops::generate_weights_backward(on(grad24, d, t), 5, 5, 1000, 100, 0.3);
                     const int64_t big = (int64_t(1) << 20) + 3, long_total = (int64_t(1) << 33) + 17;
                     auto big_ring = ops::generate_weights_backward(on(grad24, d, t), big, 5, long_total,
                                                                    (int64_t(1) << 32) - 100, 0.3);
                     at::globalContext().setDeterministicAlgorithms(false, false);
                     return std::vector<Tensor>{g, wide, small_ring, big_ring};
                   }});
  }
}

}  // namespace

LEANCONV_DRIVER_CASES(generated, add_generated_cases);

}  // namespace leanconv::driver
