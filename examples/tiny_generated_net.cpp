// Trains a tiny generated-weight network for a few steps through the C++ API and checks that the
// loss falls: the ops are registered, autograd reaches the ring, and the modules compose.
#include <leanconv/leanconv.h>
#include <torch/torch.h>

#include <iostream>

struct TinyNet : torch::nn::Module {
  leanconv::nn::ParameterRing ring{leanconv::nn::ParameterRingOptions(300).seed(1)};
  leanconv::nn::GeneratedConv2d conv{nullptr};
  leanconv::nn::GeneratedLinear head{nullptr};

  TinyNet() {
    register_module("ring", ring);
    conv = register_module("conv", leanconv::nn::GeneratedConv2d(ring, leanconv::nn::GeneratedConv2dOptions(1, 8, 3).padding(1)));
    head = register_module("head", leanconv::nn::GeneratedLinear(ring, leanconv::nn::GeneratedLinearOptions(8, 2)));
  }
  torch::Tensor forward(const torch::Tensor& x) { return head->forward(torch::relu(conv->forward(x)).mean({2, 3})); }
};

int main() {
  torch::manual_seed(0);
  TinyNet net;
  auto x = torch::randn({32, 1, 8, 8});
  auto y = (x.mean({1, 2, 3}) > 0).to(torch::kLong);  // a learnable rule
  torch::optim::Adam opt(net.parameters(), 0.05);
  double first = 0, last = 0;
  for (int step = 0; step < 60; ++step) {
    opt.zero_grad();
    auto loss = torch::nn::functional::cross_entropy(net.forward(x), y);
    loss.backward();
    opt.step();
    if (step == 0) first = loss.item<double>();
    last = loss.item<double>();
  }
  std::cout << "tiny_generated_net: learned params " << net.parameters().size() << " tensors, loss " << first << " -> " << last
            << std::endl;
  if (!(last < 0.7 * first)) {
    std::cerr << "tiny_generated_net: the loss did not fall" << std::endl;
    return 1;
  }
  return 0;
}
