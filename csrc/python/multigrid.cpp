// The multigrid family's C++ modules in leanconv._C.cpp.
#include <pybind11/stl.h>
#include <torch/python.h>

#include "leanconv/nn/multigrid.h"
#include "module_binders.h"

namespace py = pybind11;
using namespace leanconv::nn;

namespace {

void bind_grouped_conv2d(py::module_& cpp) {
  const GroupedConv2dOptions grouped_defaults(1, 1, 1);
  torch::python::bind_module<GroupedConv2dImpl>(cpp, "GroupedConv2d")
      .def(py::init([](int64_t in_channels, int64_t out_channels, int64_t kernel_size, int64_t stride, int64_t padding,
                       int64_t groups, bool bias, std::string path) {
             auto options = GroupedConv2dOptions(in_channels, out_channels, kernel_size)
                                .stride(stride)
                                .padding(padding)
                                .groups(groups)
                                .bias(bias)
                                .path(std::move(path));
             return std::make_shared<GroupedConv2dImpl>(options);
           }),
           py::arg("in_channels"), py::arg("out_channels"), py::arg("kernel_size"),
           py::arg("stride") = grouped_defaults.stride(), py::arg("padding") = grouped_defaults.padding(),
           py::arg("groups") = grouped_defaults.groups(), py::arg("bias") = grouped_defaults.bias(),
           py::arg("path") = grouped_defaults.path());
}

// Both V-cycle modules take the V-cycle's options, with their defaults.
const VCycleOptions defaults(1, 1);

void bind_multigrid_conv2d(py::module_& cpp) {
  torch::python::bind_module<MultigridConv2dImpl>(cpp, "MultigridConv2d")
      .def(py::init([](int64_t in_channels, int64_t out_channels, int64_t kernel_size, int64_t stride,
                       int64_t group_size, int64_t coarsest) {
             auto options = MultigridConv2dOptions(in_channels, out_channels)
                                .kernel_size(kernel_size)
                                .stride(stride)
                                .group_size(group_size)
                                .coarsest(coarsest);
             return std::make_shared<MultigridConv2dImpl>(options);
           }),
           py::arg("in_channels"), py::arg("out_channels"), py::arg("kernel_size") = defaults.kernel_size(),
           py::arg("stride") = defaults.stride(), py::arg("group_size") = defaults.group_size(),
           py::arg("coarsest") = defaults.coarsest());
}

void bind_multigrid_block(py::module_& cpp) {
  torch::python::bind_module<MultigridBlockImpl>(cpp, "MultigridBlock")
      .def(py::init([](int64_t in_channels, int64_t channels, int64_t stride, int64_t group_size, int64_t coarsest) {
             auto options =
                 MultigridBlockOptions(in_channels, channels).stride(stride).group_size(group_size).coarsest(coarsest);
             return std::make_shared<MultigridBlockImpl>(options);
           }),
           py::arg("in_channels"), py::arg("channels"), py::arg("stride") = defaults.stride(),
           py::arg("group_size") = defaults.group_size(), py::arg("coarsest") = defaults.coarsest());
}

}  // namespace

LEANCONV_BIND_MODULES(multigrid) {
  bind_grouped_conv2d(cpp);
  bind_multigrid_conv2d(cpp);
  bind_multigrid_block(cpp);
}
