// The C++ family registry: what a C++ model builder needs of each family, found by the family's name. It is the
// C++ side of leanconv.families: each family's own file (csrc/nn/<family>_convs.cpp) registers its entry with
// LEANCONV_REGISTER_CONV_FAMILY, with the options' Python names and defaults, and a model builder (the C++
// Fashion-MNIST example's ResNet-20) asks the registry for a family's convs without naming any family.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/any.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace leanconv::nn {

// One conv of a model: a kernel_size x kernel_size conv, bias-free, zero padding kernel_size / 2.
struct ConvSite {
  int64_t in_channels, out_channels, kernel_size, stride;
  int64_t stage;  // the model's stage: the shared family's convs share one anchor a stage
};

// One option of a family, as a command line takes it (--ring-size for ring_size).
struct FamilyOption {
  std::string name;           // the name leanconv.families gives it
  std::string default_value;  // as a command line writes it (leanconv.families' default)
  std::string help;
  // Its command-line flag: --ring-size for ring_size (errors and --help name options by it).
  std::string flag() const;
};

// A family's option values: its defaults, overridden by the values given by name. Refuses a name the family does
// not take, and reads a value as a number with an error that names the flag.
class FamilyArguments {
 public:
  FamilyArguments(const std::string& family, const std::vector<FamilyOption>& options,
                  const std::map<std::string, std::string>& given);
  double number(const std::string& name) const;
  int64_t integer(const std::string& name) const;  // refuses a fractional value

 private:
  const std::string& text(const std::string& name) const;
  std::string family_;
  std::map<std::string, std::string> values_;
};

// A family's convs for one model, made one site at a time; what the convs share (a ring, anchors) lives here until
// finish() registers it on the model. The C++ counterpart of leanconv.nn's <Family>Convs conv factories.
class FamilyConvs {
 public:
  virtual ~FamilyConvs() = default;
  // The family's conv for the site, or an empty AnyModule where the family keeps that conv dense.
  virtual torch::nn::AnyModule conv(const ConvSite& site) = 0;
  // A whole residual block (in -> out channels, 3x3, stride), for a family whose unit is a block rather than a conv
  // (multigrid's V-cycle block); empty for the others, whose blocks the model builds from conv().
  virtual torch::nn::AnyModule block(int64_t in_channels, int64_t out_channels, int64_t stride);
  // Registers on the model, once, what the family's convs share.
  virtual void finish(torch::nn::Module& model);
};

struct ConvFamily {
  std::string name;  // leanconv.families' name: the conv= key and --conv value
  std::vector<FamilyOption> options;
  // The convs of one model whose block convs have `served_weights` dense weights in all (what a fractional
  // generated ring size is a share of).
  std::function<std::unique_ptr<FamilyConvs>(const FamilyArguments&, int64_t served_weights)> make;
  bool compact = true;  // false for dense: a compact family that replaces no conv of a model is an error
  // The network the family's block() builds with the ResNet-20 layout, named as python -m leanconv.train --model
  // names it ("resnet20" where the family replaces convs only).
  std::string network = "resnet20";
};

// Adds a family; refuses a second family of the same name.
void register_conv_family(ConvFamily family);
// Every registered family, ordered by name.
std::vector<const ConvFamily*> conv_families();
// The family of that name; the error lists the registered names.
const ConvFamily& conv_family(const std::string& name);

struct RegisterConvFamily {
  explicit RegisterConvFamily(ConvFamily family) { register_conv_family(std::move(family)); }
};

}  // namespace leanconv::nn

// In a family's own .cpp file: LEANCONV_REGISTER_CONV_FAMILY(name, ConvFamily{...}); registered when the library loads.
#define LEANCONV_REGISTER_CONV_FAMILY(name, ...) \
  static const ::leanconv::nn::RegisterConvFamily register_conv_family_##name{__VA_ARGS__}
