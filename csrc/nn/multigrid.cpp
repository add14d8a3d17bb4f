// Multigrid-in-channels modules for LibTorch programs (the twins of leanconv/nn/multigrid.py).
#include "leanconv/nn/multigrid.h"

#include <torch/nn/functional/conv.h>
#include <torch/nn/init.h>
#include <torch/nn/modules/linear.h>

#include <cmath>
#include <numeric>

#include "common/checks.h"
#include "leanconv/ops/block_epilogue.h"
#include "leanconv/ops/multigrid.h"

namespace leanconv::nn {
namespace {

// F.batch_norm's arguments for one step of `bn`, by nn.BatchNorm2d's rules (counting the step in
// num_batches_tracked): what leanconv.nn.FusedBatchNorm2d.step_arguments gives in Python.
struct BatchNormStep {
  std::optional<at::Tensor> running_mean, running_var;
  bool use_batch_stats;
  double momentum;
};

BatchNormStep step_arguments(torch::nn::BatchNorm2dImpl& bn, bool training) {
  const auto& o = bn.options;
  double factor = o.momentum().value_or(0.0);
  if (training && o.track_running_stats() && bn.num_batches_tracked.defined()) {
    torch::NoGradGuard no_grad;
    bn.num_batches_tracked.add_(1);
    factor = o.momentum().has_value() ? *o.momentum() : 1.0 / bn.num_batches_tracked.item<double>();
  }
  const bool has_running = bn.running_mean.defined() && bn.running_var.defined();
  const bool track = !training || o.track_running_stats();
  BatchNormStep step{std::nullopt, std::nullopt, training || !has_running, factor};
  if (track && has_running) {
    step.running_mean = bn.running_mean;
    step.running_var = bn.running_var;
  }
  return step;
}

std::optional<at::Tensor> defined_or_none(const at::Tensor& t) {
  return t.defined() ? std::optional<at::Tensor>(t) : std::nullopt;
}

// act(BN(x) + residual) in one fused pass, as leanconv.nn.FusedBatchNorm2d(relu=relu)(x, residual).
torch::Tensor fused_bn(torch::nn::BatchNorm2dImpl& bn, bool training, const torch::Tensor& x,
                       const torch::Tensor& residual, bool relu) {
  const auto step = step_arguments(bn, training);
  return ops::fused_batch_norm(x, step.running_mean, step.running_var, defined_or_none(bn.weight),
                               defined_or_none(bn.bias), defined_or_none(residual), step.use_batch_stats,
                               step.momentum, bn.options.eps(), relu);
}

torch::nn::BatchNorm2d make_bn(int64_t channels) { return torch::nn::BatchNorm2d(channels); }

}  // namespace

std::vector<int64_t> channel_levels(int64_t channels, int64_t group_size, int64_t coarsest) {
  TORCH_CHECK(channels >= 1, "leanconv: channels must be a positive int, got ", channels);
  TORCH_CHECK(group_size >= 1, "leanconv: group_size must be a positive int, got ", group_size);
  TORCH_CHECK(coarsest >= 1, "leanconv: coarsest must be a positive int, got ", coarsest);
  TORCH_CHECK(coarsest <= channels, "leanconv: coarsest = ", coarsest, " must not exceed the channels (", channels,
              ")");
  TORCH_CHECK(!(channels / 2 >= coarsest && (channels % group_size != 0 || group_size % 2 != 0)), "leanconv: ",
              channels, " channels are not divisible by group_size = ", group_size, " (or the group size is odd): the ",
              "multigrid levels below ", channels, " need an even group size dividing it");
  std::vector<int64_t> levels{channels};
  while (levels.back() % group_size == 0 && levels.back() % 2 == 0 && levels.back() / 2 >= coarsest)
    levels.push_back(levels.back() / 2);
  return levels;
}

// ---- GroupedConv2d -------------------------------------------------------------------------------------------

GroupedConv2dImpl::GroupedConv2dImpl(GroupedConv2dOptions options_) : options(std::move(options_)) {
  const auto& o = options;
  TORCH_CHECK(o.in_channels() > 0 && o.out_channels() > 0 && o.kernel_size() > 0 && o.stride() > 0 &&
                  o.padding() >= 0,
              "leanconv: GroupedConv2d channels, kernel_size and stride must be positive and padding non-negative");
  TORCH_CHECK(o.groups() > 0 && o.in_channels() % o.groups() == 0 && o.out_channels() % o.groups() == 0,
              "leanconv: GroupedConv2d groups must divide in_channels and out_channels, got groups=", o.groups(),
              " for ", o.in_channels(), " -> ", o.out_channels());
  TORCH_CHECK(o.path() == "auto" || o.path() == "kernel" || o.path() == "aten",
              "leanconv: GroupedConv2d path must be 'auto', 'kernel' or 'aten', got '", o.path(), "'");
  weight = register_parameter(
      "weight", torch::empty({o.out_channels(), o.in_channels() / o.groups(), o.kernel_size(), o.kernel_size()}));
  if (o.bias()) bias = register_parameter("bias", torch::empty({o.out_channels()}));
  reset_parameters();
}

void GroupedConv2dImpl::reset_parameters() {
  // nn.Conv2d's default initialisation.
  torch::NoGradGuard no_grad;
  torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));
  if (bias.defined()) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(weight.numel() / weight.size(0)));
    bias.uniform_(-bound, bound);
  }
}

bool GroupedConv2dImpl::uses_kernel(const torch::Tensor& input) const {
  if (options.path() != "auto") return options.path() == "kernel";
  if (input.dim() != 4) return false;
  ops::GroupedConvShape shape;
  shape.device = input.device().type();
  shape.dtype = input.scalar_type();
  shape.channels_last = input.is_contiguous(at::MemoryFormat::ChannelsLast) && !input.is_contiguous();
  shape.in_channels = options.in_channels();
  shape.out_channels = options.out_channels();
  shape.groups = options.groups();
  shape.kernel = options.kernel_size();
  shape.stride = options.stride();
  shape.in_h = input.size(2);
  shape.in_w = input.size(3);
  return ops::grouped_conv2d_uses_kernel(shape);
}

torch::Tensor GroupedConv2dImpl::forward(const torch::Tensor& input) {
  const std::vector<int64_t> stride(2, options.stride()), padding(2, options.padding()), dilation{1, 1};
  if (uses_kernel(input)) {
    return ops::grouped_conv2d(input, weight, defined_or_none(bias), stride, padding, dilation, options.groups());
  }
  return at::conv2d(input, weight, defined_or_none(bias), stride, padding, dilation, options.groups());
}

void GroupedConv2dImpl::pretty_print(std::ostream& stream) const {
  stream << "leanconv::nn::GroupedConv2d(" << options.in_channels() << ", " << options.out_channels()
         << ", kernel_size=" << options.kernel_size() << ", stride=" << options.stride()
         << ", padding=" << options.padding() << ", groups=" << options.groups() << ", path=" << options.path() << ")";
}

// ---- the V-cycle ----------------------------------------------------------------------------------------------

VCycle::VCycle(VCycleOptions options_) : options(std::move(options_)) {
  const auto& o = options;
  TORCH_CHECK(o.in_channels() >= 1, "leanconv: in_channels must be a positive int, got ", o.in_channels());
  TORCH_CHECK(o.kernel_size() >= 1 && o.stride() >= 1, "leanconv: kernel_size and stride must be positive");
  levels = channel_levels(o.channels(), o.group_size(), o.coarsest());
  TORCH_CHECK(levels.size() >= 2, "leanconv: a multigrid module of ", o.channels(), " channels with group_size=",
              o.group_size(), " and coarsest=", o.coarsest(), " has one channel level: no multigrid structure, only a ",
              "dense conv; give coarsest <= ", o.channels() / 2, " and a group size dividing ", o.channels());
  entry = register_module("entry", torch::nn::ModuleList());
  if (o.stride() != 1 || o.in_channels() != o.channels()) {
    const int64_t groups = std::gcd(o.in_channels(), o.channels());
    entry->push_back(GroupedConv2d(GroupedConv2dOptions(o.in_channels(), o.channels(), o.kernel_size())
                                       .stride(o.stride())
                                       .padding(o.kernel_size() / 2)
                                       .groups(groups)
                                       .bias(false)));
    entry->push_back(make_bn(o.channels()));
  }
  restrict = register_module("restrict", torch::nn::ModuleList());
  prolong = register_module("prolong", torch::nn::ModuleList());
  correction_bn = register_module("correction_bn", torch::nn::ModuleList());
  for (size_t k = 0; k + 1 < levels.size(); ++k) {
    const int64_t c = levels[k], groups = c / o.group_size();
    restrict->push_back(grouped(c, c / 2, 1, groups));
    prolong->push_back(grouped(c / 2, c, 1, groups));
    correction_bn->push_back(make_bn(c));
  }
}

void VCycle::reset_parameters() {
  // The authors' initialisation, as in Python: every conv Kaiming-normal (fan_out, ReLU gain), BatchNorms fresh.
  torch::NoGradGuard no_grad;
  for (auto& module : modules(/*include_self=*/false)) {
    if (auto* conv = module->as<GroupedConv2dImpl>()) {  // every conv of a V-cycle is one
      torch::nn::init::kaiming_normal_(conv->weight, 0.0, torch::kFanOut, torch::kReLU);
    } else if (auto* bn = module->as<torch::nn::BatchNorm2dImpl>()) {
      bn->reset_parameters();
    }
  }
}

GroupedConv2d VCycle::grouped(int64_t in, int64_t out, int64_t kernel, int64_t groups) const {
  return GroupedConv2d(GroupedConv2dOptions(in, out, kernel).padding(kernel / 2).groups(groups).bias(false));
}

torch::Tensor VCycle::forward(const torch::Tensor& input) {
  TORCH_CHECK(input.dim() == 4 && input.size(1) == options.in_channels(), "leanconv: a multigrid module expects a ",
              "4-D (N, ", options.in_channels(), ", H, W) input, got shape ", input.sizes());
  auto x = input;
  if (!entry->is_empty()) {
    x = fused_bn(*entry[1]->as<torch::nn::BatchNorm2dImpl>(), is_training(), entry[0]->as<GroupedConv2dImpl>()->forward(x),
                 {}, /*relu=*/true);
  }
  std::vector<torch::Tensor> fine{x};
  for (size_t k = 0; k + 1 < levels.size(); ++k) fine.push_back(restrict[k]->as<GroupedConv2dImpl>()->forward(fine.back()));
  auto out = coarsest_level(fine.back());
  for (size_t k = levels.size() - 1; k-- > 0;) {
    // fine[k + 1] is R_k(fine[k]), computed once on the way down.
    auto* p = prolong[k]->as<GroupedConv2dImpl>();
    auto* bn = correction_bn[k]->as<torch::nn::BatchNorm2dImpl>();
    const auto step = step_arguments(*bn, is_training());
    const auto z = ops::coarse_grid_correction(fine[k], out, fine[k + 1], p->weight, p->options.groups(),
                                               defined_or_none(bn->weight), defined_or_none(bn->bias),
                                               step.running_mean, step.running_var, step.use_batch_stats,
                                               step.momentum, bn->options.eps(), p->uses_kernel(out));
    out = smooth(k, z);
  }
  return out;
}

int64_t VCycle::num_learned_params() const {
  int64_t count = 0;
  for (const auto& p : parameters()) count += p.numel();
  return count;
}

// ---- MultigridConv2d ------------------------------------------------------------------------------------------

MultigridConv2dImpl::MultigridConv2dImpl(MultigridConv2dOptions options_) : VCycle(std::move(options_)) {
  const int64_t k = options.kernel_size(), width = levels.back();
  TORCH_CHECK(k % 2 == 1, "leanconv: MultigridConv2d needs an odd kernel_size (its levels keep the image size with "
              "padding kernel_size // 2), got ", k);
  coarse_conv = register_module("coarse_conv", grouped(width, width, k, /*groups=*/1));
  coarse_bn = register_module("coarse_bn", make_bn(width));
  level_conv = register_module("level_conv", torch::nn::ModuleList());
  level_bn = register_module("level_bn", torch::nn::ModuleList());
  for (size_t level = 0; level + 1 < levels.size(); ++level) {
    level_conv->push_back(grouped(levels[level], levels[level], k, levels[level] / options.group_size()));
    // The finest level ends in its conv (the host's BatchNorm and ReLU follow), as in Python.
    if (level == 0) {
      level_bn->push_back(torch::nn::Identity());
    } else {
      level_bn->push_back(make_bn(levels[level]));
    }
  }
  reset_parameters();
}

torch::Tensor MultigridConv2dImpl::coarsest_level(const torch::Tensor& x) {
  return fused_bn(*coarse_bn, is_training(), coarse_conv(x), {}, /*relu=*/true);
}

torch::Tensor MultigridConv2dImpl::smooth(size_t level, const torch::Tensor& z) {
  const auto y = level_conv[level]->as<GroupedConv2dImpl>()->forward(z);
  if (level == 0) return y;
  return fused_bn(*level_bn[level]->as<torch::nn::BatchNorm2dImpl>(), is_training(), y, {}, /*relu=*/true);
}

int64_t MultigridConv2dImpl::num_dense_params() const {
  return options.in_channels() * options.channels() * options.kernel_size() * options.kernel_size();
}

void MultigridConv2dImpl::pretty_print(std::ostream& stream) const {
  stream << "leanconv::nn::MultigridConv2d(" << options.in_channels() << ", " << options.channels()
         << ", kernel_size=" << options.kernel_size() << ", stride=" << options.stride()
         << ", group_size=" << options.group_size() << ", coarsest=" << options.coarsest() << ", levels="
         << levels << ")";
}

// ---- MultigridBlock -------------------------------------------------------------------------------------------

MultigridBlockImpl::MultigridBlockImpl(MultigridBlockOptions options_) : VCycle(std::move(options_.kernel_size(3))) {
  const int64_t width = levels.back();
  coarse_conv1 = register_module("coarse_conv1", grouped(width, width, 3, /*groups=*/1));
  coarse_bn1 = register_module("coarse_bn1", make_bn(width));
  coarse_conv2 = register_module("coarse_conv2", grouped(width, width, 3, /*groups=*/1));
  coarse_bn2 = register_module("coarse_bn2", make_bn(width));
  level_conv1 = register_module("level_conv1", torch::nn::ModuleList());
  level_bn1 = register_module("level_bn1", torch::nn::ModuleList());
  level_conv2 = register_module("level_conv2", torch::nn::ModuleList());
  level_bn2 = register_module("level_bn2", torch::nn::ModuleList());
  for (size_t level = 0; level + 1 < levels.size(); ++level) {
    const int64_t c = levels[level], groups = c / options.group_size();
    level_conv1->push_back(grouped(c, c, 3, groups));
    level_bn1->push_back(make_bn(c));
    level_conv2->push_back(grouped(c, c, 3, groups));
    level_bn2->push_back(make_bn(c));
  }
  reset_parameters();
}

torch::Tensor MultigridBlockImpl::coarsest_level(const torch::Tensor& x) {
  const auto h = fused_bn(*coarse_bn1, is_training(), coarse_conv1(x), {}, /*relu=*/true);
  return fused_bn(*coarse_bn2, is_training(), coarse_conv2(h), x, /*relu=*/true);
}

torch::Tensor MultigridBlockImpl::smooth(size_t level, const torch::Tensor& z) {
  const auto h = fused_bn(*level_bn1[level]->as<torch::nn::BatchNorm2dImpl>(), is_training(),
                          level_conv1[level]->as<GroupedConv2dImpl>()->forward(z), {}, /*relu=*/true);
  return fused_bn(*level_bn2[level]->as<torch::nn::BatchNorm2dImpl>(), is_training(),
                  level_conv2[level]->as<GroupedConv2dImpl>()->forward(h), z, /*relu=*/true);
}

int64_t MultigridBlockImpl::num_dense_params() const {
  const int64_t in = options.in_channels(), c = options.channels();
  int64_t dense = in * c * 9 + c * c * 9 + 4 * c;
  if (options.stride() != 1 || in != c) dense += in * c + 2 * c;
  return dense;
}

void MultigridBlockImpl::pretty_print(std::ostream& stream) const {
  stream << "leanconv::nn::MultigridBlock(" << options.in_channels() << ", " << options.channels()
         << ", stride=" << options.stride() << ", group_size=" << options.group_size()
         << ", coarsest=" << options.coarsest() << ", levels=" << levels << ")";
}

}  // namespace leanconv::nn
