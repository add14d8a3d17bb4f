// Trains a compact ResNet-20 on Fashion-MNIST from C++: the idx files (plain or .gz, Debian's dataset-fashion-mnist
// by default), the block convs of one leanconv family chosen on the command line, torch::optim::SGD with Nesterov
// momentum and a warm-up + cosine learning rate, weight decay off BatchNorm and biases (as python -m leanconv.train).
// It evaluates on the test set, saves the model, reloads it into a fresh one and checks that the reloaded model gives
// the same logits and accuracy; it exits non-zero when that check fails.
//
//   train_fashion_mnist [--data DIR] [--conv FAMILY] [--epochs N] [--train-subset N] [--test-subset N]
//                       [--batch-size N] [--lr X] [--weight-decay X] [--seed N] [--save PATH]
//                       [--FAMILY-OPTION VALUE ...]
// The families and their options come from leanconv's C++ family registry (--help lists them).
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <iostream>
#include <map>
#include <string>

#include "fashion_mnist/compact_resnet.h"
#include "fashion_mnist/idx.h"

namespace {

struct Options {
  std::string data = "/usr/share/datasets/fashion-mnist";
  std::string save = "train_fashion_mnist.pt";
  fashion_mnist::FamilyChoice family;
  int64_t epochs = 1, train_subset = 0, test_subset = 0, batch_size = 128, seed = 0;
  double lr = 0.1, weight_decay = 5e-4;
};

// The usage line, with every registered family and its options (defaults in brackets).
std::string usage() {
  std::string families, options;
  for (const leanconv::nn::ConvFamily* family : leanconv::nn::conv_families()) {
    families += (families.empty() ? "" : "|") + family->name;
    for (const auto& option : family->options)
      options += "  " + option.flag() + " X   " + family->name + ": " + option.help + " [" +
                 option.default_value + "]\n";
  }
  return "usage: train_fashion_mnist [--data DIR] [--conv " + families + "]\n"
         "  [--epochs N] [--train-subset N (0: all)] [--test-subset N (0: all)] [--batch-size N] [--lr X]\n"
         "  [--weight-decay X] [--seed N] [--save PATH] [family options:]\n" + options;
}

Options parse(int argc, char** argv) {
  Options o;
  std::map<std::string, std::function<void(const std::string&)>> flags{
      {"--data", [&](const std::string& v) { o.data = v; }},
      {"--save", [&](const std::string& v) { o.save = v; }},
      {"--conv", [&](const std::string& v) { o.family.family = v; }},
      {"--epochs", [&](const std::string& v) { o.epochs = std::stoll(v); }},
      {"--train-subset", [&](const std::string& v) { o.train_subset = std::stoll(v); }},
      {"--test-subset", [&](const std::string& v) { o.test_subset = std::stoll(v); }},
      {"--batch-size", [&](const std::string& v) { o.batch_size = std::stoll(v); }},
      {"--seed", [&](const std::string& v) { o.seed = std::stoll(v); }},
      {"--lr", [&](const std::string& v) { o.lr = std::stod(v); }},
      {"--weight-decay", [&](const std::string& v) { o.weight_decay = std::stod(v); }},
  };
  // Each family's options, read by the chosen family (which refuses another family's).
  for (const leanconv::nn::ConvFamily* family : leanconv::nn::conv_families())
    for (const auto& option : family->options)
      flags.try_emplace(option.flag(), [&o, name = option.name](const std::string& v) { o.family.options[name] = v; });
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "-h" || flag == "--help") {
      std::cout << usage();
      std::exit(0);
    }
    auto it = flags.find(flag);
    if (it == flags.end() || i + 1 == argc) throw std::invalid_argument("unknown flag or missing value: " + flag);
    try {
      it->second(argv[++i]);
    } catch (const std::logic_error&) {  // std::stoll / std::stod
      throw std::invalid_argument(flag + " takes a number, got '" + argv[i] + "'");
    }
  }
  leanconv::nn::conv_family(o.family.family);  // an unknown name: the error lists the known ones
  if (o.epochs < 1 || o.batch_size < 1 || o.train_subset < 0 || o.test_subset < 0 || !(o.lr > 0))
    throw std::invalid_argument("--epochs, --batch-size and --lr must be positive, the subsets >= 0");
  return o;
}

int64_t count(const std::vector<torch::Tensor>& tensors) {
  int64_t n = 0;
  for (const auto& t : tensors) n += t.numel();
  return n;
}

// The model's logits on every image of the split, in batches, in eval mode.
torch::Tensor logits_of(fashion_mnist::CompactResNet20& model, const torch::Tensor& images, int64_t batch_size) {
  torch::NoGradGuard no_grad;
  model->eval();
  std::vector<torch::Tensor> parts;
  for (int64_t i = 0; i < images.size(0); i += batch_size) parts.push_back(model->forward(images.slice(0, i, i + batch_size)));
  return torch::cat(parts);
}

double accuracy(const torch::Tensor& logits, const torch::Tensor& labels) {
  return logits.argmax(1).eq(labels).to(torch::kDouble).mean().item<double>();
}

// Weight decay on the conv and linear weights only (BatchNorm parameters and biases are 1-D).
std::vector<torch::optim::OptimizerParamGroup> parameter_groups(fashion_mnist::CompactResNet20& model, double decay) {
  std::vector<torch::Tensor> decayed, other;
  for (const auto& p : model->parameters()) (p.dim() > 1 ? decayed : other).push_back(p);
  auto options = [](double wd) {
    return std::make_unique<torch::optim::SGDOptions>(torch::optim::SGDOptions(0).momentum(0.9).nesterov(true).weight_decay(wd));
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decayed, options(decay));
  groups.emplace_back(other, options(0));
  return groups;
}

// Linear warm-up over the first 15% of the steps, then cosine to zero (the shape of leanconv.train's one-cycle).
double learning_rate(double peak, int64_t step, int64_t steps) {
  const double warmup = std::max<double>(1, 0.15 * steps);
  if (step < warmup) return peak * (step + 1) / warmup;
  return 0.5 * peak * (1 + std::cos(M_PI * (step - warmup) / std::max<double>(1, steps - warmup)));
}

int run(const Options& o) {
  torch::manual_seed(o.seed);
  const auto train = fashion_mnist::load_split(o.data, true, o.train_subset);
  const auto test = fashion_mnist::load_split(o.data, false, o.test_subset);
  fashion_mnist::CompactResNet20 model(o.family);
  const int64_t learned = count(model->parameters());
  std::cout << "train_fashion_mnist: " << model->run_name() << ", conv=" << o.family.family << ", " << learned << " learned parameters, "
            << train.images.size(0) << " training and " << test.images.size(0) << " test images, " << o.epochs
            << " epoch(s)" << std::endl;

  torch::optim::SGD optimizer(parameter_groups(model, o.weight_decay), torch::optim::SGDOptions(o.lr));
  const int64_t n = train.images.size(0), batches = (n + o.batch_size - 1) / o.batch_size;
  const auto start = std::chrono::steady_clock::now();
  int64_t step = 0;
  for (int64_t epoch = 0; epoch < o.epochs; ++epoch) {
    model->train();
    const torch::Tensor order = torch::randperm(n, torch::kLong);
    double loss_sum = 0;
    for (int64_t b = 0; b < batches; ++b, ++step) {
      const torch::Tensor index = order.slice(0, b * o.batch_size, (b + 1) * o.batch_size);
      const torch::Tensor x = fashion_mnist::random_crop(train.images.index_select(0, index));
      const torch::Tensor y = train.labels.index_select(0, index);
      for (auto& group : optimizer.param_groups())
        static_cast<torch::optim::SGDOptions&>(group.options()).lr(learning_rate(o.lr, step, o.epochs * batches));
      optimizer.zero_grad();
      torch::Tensor loss = torch::nn::functional::cross_entropy(model->forward(x), y);
      loss.backward();
      optimizer.step();
      loss_sum += loss.item<double>();
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("epoch %lld: loss %.4f, test accuracy %.2f%%, %.0f images/s\n", static_cast<long long>(epoch + 1),
                loss_sum / batches, 100 * accuracy(logits_of(model, test.images, 256), test.labels),
                (epoch + 1) * n / seconds);
    std::fflush(stdout);
  }

  // Save, reload into a freshly built model (other initial values: a new seed), and compare.
  const torch::Tensor logits = logits_of(model, test.images, 256);
  torch::save(model, o.save);
  torch::manual_seed(o.seed + 1);
  fashion_mnist::CompactResNet20 reloaded(o.family);
  torch::load(reloaded, o.save);
  const torch::Tensor again = logits_of(reloaded, test.images, 256);
  const bool same = torch::equal(logits, again);
  std::printf("| %s | %lld | %.2f%% | saved to %s, reloaded: %s |\n", model->run_name().c_str(),
              static_cast<long long>(learned), 100 * accuracy(logits, test.labels), o.save.c_str(),
              same ? "same logits" : "DIFFERENT logits");
  return same ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(parse(argc, argv));
  } catch (const c10::Error& e) {  // leanconv's and torch's argument checks: the message without the C++ backtrace
    std::cerr << "train_fashion_mnist: " << e.what_without_backtrace() << "\n";
    return 2;
  } catch (const std::exception& e) {  // bad flags, missing or malformed files
    std::cerr << "train_fashion_mnist: " << e.what() << "\n" << usage();
    return 2;
  }
}
