// The shared-weight (DACNN) C++ API: the anchor's gradient sums its uses, rotation folded into the weight equals
// rotating the activations, state_dict names, clear errors.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <set>
#include <sstream>
#include <string>

#include "leanconv/leanconv.h"

namespace {

using leanconv::nn::AnchoredConv2d;
using leanconv::nn::AnchoredConv2dOptions;
using leanconv::nn::ConvAnchor;
using leanconv::nn::ConvAnchorOptions;
using leanconv::nn::Regulator;

TEST(Shared, RotationOfTheAnchorEqualsRotationOfTheActivations) {
  ConvAnchor anchor(ConvAnchorOptions(6, 3));
  AnchoredConv2d use(anchor, AnchoredConv2dOptions().rotate(2));
  const auto x = torch::randn({2, 6, 5, 5});
  const auto rotated = torch::cat({x.slice(1, 2), x.slice(1, 0, 2)}, 1);  // the reference code's cat(x[:, r:], x[:, :r])
  EXPECT_TRUE(torch::allclose(use->forward(x), torch::conv2d(rotated, anchor->weight, {}, 1, 1), 1e-5, 1e-5));
}

TEST(Shared, TheAnchorGradientSumsItsUses) {
  ConvAnchor anchor(ConvAnchorOptions(4, 3));
  AnchoredConv2d first(anchor), second(anchor, AnchoredConv2dOptions().stride(2).rotate(1));
  const auto x = torch::randn({1, 4, 8, 8});
  (first->forward(x).sum() + second->forward(x).sum()).backward();
  const auto both = anchor->weight.grad().clone();
  anchor->weight.mutable_grad() = torch::Tensor();
  first->forward(x).sum().backward();
  const auto only_first = anchor->weight.grad().clone();
  anchor->weight.mutable_grad() = torch::Tensor();
  second->forward(x).sum().backward();
  EXPECT_TRUE(torch::allclose(both, only_first + anchor->weight.grad(), 1e-5, 1e-5));
}

TEST(Shared, StateDictNamesAndErrors) {
  ConvAnchor anchor(ConvAnchorOptions(4, 3).bias(true));
  std::set<std::string> names;
  for (const auto& item : anchor->named_parameters()) names.insert(item.key());
  EXPECT_EQ(names, (std::set<std::string>{"weight", "bias"}));
  AnchoredConv2d use(anchor);
  EXPECT_TRUE(use->named_parameters().is_empty());  // the use holds a reference, not a copy
  EXPECT_EQ(use->num_dense_params(), 4 * 4 * 9 + 4);
  EXPECT_THROW(AnchoredConv2d(anchor, AnchoredConv2dOptions().rotate(4)), c10::Error);
  EXPECT_THROW(use->forward(torch::randn({1, 3, 5, 5})), c10::Error);
  EXPECT_THROW(use->forward(torch::randn({1, 4, 5, 5}, torch::kDouble)), c10::Error);
  Regulator regulator(4);
  EXPECT_EQ(regulator->forward(torch::randn({1, 4, 5, 5})).sizes(), (std::vector<int64_t>{1, 4, 5, 5}));
}

TEST(Shared, ACheckpointOfAnotherRotationIsRefused) {
  // The rotation changes the function, not the parameters: it is in the state (as in Python) and checked on load.
  ConvAnchor anchor(ConvAnchorOptions(4, 3));
  AnchoredConv2d rotated(anchor, AnchoredConv2dOptions().rotate(1)), plain(anchor);
  std::set<std::string> names;
  for (const auto& item : rotated->named_buffers()) names.insert(item.key());
  EXPECT_EQ(names, (std::set<std::string>{"rotate"}));
  std::stringstream saved;
  torch::save(rotated, saved);
  EXPECT_THROW(torch::load(plain, saved), c10::Error);
  saved.seekg(0);
  AnchoredConv2d same(anchor, AnchoredConv2dOptions().rotate(1));
  torch::load(same, saved);  // the same rotation loads
}

}  // namespace
