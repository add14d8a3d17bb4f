// The C++ family registry (leanconv/nn/conv_families.h) and its dense entry, the baseline every model starts from.
#include "leanconv/nn/conv_families.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>
#include <deque>
#include <stdexcept>

namespace leanconv::nn {
namespace {

// A function-local static: the families' registrations run in other files' static initialisers, in no set order.
// A deque: registering a family keeps the addresses conv_families() handed out valid.
std::deque<ConvFamily>& registry() {
  static std::deque<ConvFamily> families;
  return families;
}

std::string flag_of(const std::string& name) { return FamilyOption{name}.flag(); }

// The dense model's convs: every site keeps its ordinary torch::nn::Conv2d.
class DenseConvs : public FamilyConvs {
 public:
  torch::nn::AnyModule conv(const ConvSite&) override { return {}; }
};

}  // namespace

std::string FamilyOption::flag() const {
  std::string flag = "--" + name;
  std::replace(flag.begin(), flag.end(), '_', '-');
  return flag;
}

FamilyArguments::FamilyArguments(const std::string& family, const std::vector<FamilyOption>& options,
                                 const std::map<std::string, std::string>& given)
    : family_(family) {
  for (const auto& option : options) values_[option.name] = option.default_value;
  for (const auto& [name, value] : given) {
    if (!values_.count(name))
      throw std::invalid_argument(flag_of(name) + " is not an option of conv=" + family);
    values_[name] = value;
  }
}

const std::string& FamilyArguments::text(const std::string& name) const {
  auto it = values_.find(name);
  TORCH_CHECK(it != values_.end(), "leanconv: conv=", family_, " has no option ", name);
  return it->second;
}

double FamilyArguments::number(const std::string& name) const {
  const std::string& value = text(name);
  size_t used = 0;
  double number = 0;
  try {
    number = std::stod(value, &used);
  } catch (const std::logic_error&) {
    used = 0;
  }
  if (used == 0 || used != value.size() || !std::isfinite(number))
    throw std::invalid_argument(flag_of(name) + " takes a number, got '" + value + "'");
  return number;
}

int64_t FamilyArguments::integer(const std::string& name) const {
  const double value = number(name);
  if (value != std::floor(value) || std::abs(value) > 9e15)
    throw std::invalid_argument(flag_of(name) + " takes a whole number, got '" + text(name) + "'");
  return static_cast<int64_t>(value);
}

torch::nn::AnyModule FamilyConvs::block(int64_t, int64_t, int64_t) { return {}; }

void FamilyConvs::finish(torch::nn::Module&) {}

void register_conv_family(ConvFamily family) {
  for (const auto& known : registry())
    if (known.name == family.name) throw std::logic_error("leanconv: conv family '" + family.name + "' registered twice");
  registry().push_back(std::move(family));
}

std::vector<const ConvFamily*> conv_families() {
  std::vector<const ConvFamily*> families;
  for (const auto& family : registry()) families.push_back(&family);
  std::sort(families.begin(), families.end(), [](auto* a, auto* b) { return a->name < b->name; });
  return families;
}

const ConvFamily& conv_family(const std::string& name) {
  std::string known;
  for (const ConvFamily* family : conv_families()) {
    if (family->name == name) return *family;
    known += (known.empty() ? "" : ", ") + family->name;
  }
  throw std::invalid_argument("unknown conv family '" + name + "'; expected one of " + known);
}

LEANCONV_REGISTER_CONV_FAMILY(dense, ConvFamily{"dense", {},
                                                [](const FamilyArguments&, int64_t) {
                                                  return std::make_unique<DenseConvs>();
                                                },
                                                /*compact=*/false});

}  // namespace leanconv::nn
