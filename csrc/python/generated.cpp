// The generated-weight family's C++ modules in leanconv._C.cpp (a ring's `seed` and `total` and a layer's `offset`
// are buffers, as in Python).
#include <pybind11/stl.h>
#include <torch/python.h>

#include "leanconv/nn/generated.h"
#include "module_binders.h"

namespace py = pybind11;
using namespace leanconv::nn;
using leanconv::python::first_of;

LEANCONV_BIND_MODULES(generated) {
  const ParameterRingOptions ring_defaults(1);
  torch::python::bind_module<ParameterRingImpl>(cpp, "ParameterRing")
      .def(py::init([](int64_t size, int64_t seed, double fan_ref) {
             return std::make_shared<ParameterRingImpl>(ParameterRingOptions(size).seed(seed).fan_ref(fan_ref));
           }),
           py::arg("size"), py::arg("seed") = ring_defaults.seed(), py::arg("fan_ref") = ring_defaults.fan_ref());

  const GeneratedConv2dOptions conv_defaults(1, 1, 1);
  torch::python::bind_module<GeneratedConv2dImpl>(cpp, "GeneratedConv2d")
      .def(py::init([](const std::shared_ptr<ParameterRingImpl>& ring, int64_t in_channels, int64_t out_channels,
                       int64_t kernel_size, int64_t stride, int64_t padding, int64_t dilation, int64_t groups,
                       bool bias) {
             auto options = GeneratedConv2dOptions(in_channels, out_channels, kernel_size)
                                .stride(stride)
                                .padding(padding)
                                .dilation(dilation)
                                .groups(groups)
                                .bias(bias);
             return std::make_shared<GeneratedConv2dImpl>(ParameterRing(ring), options);
           }),
           py::arg("ring"), py::arg("in_channels"), py::arg("out_channels"), py::arg("kernel_size"),
           py::arg("stride") = first_of(conv_defaults.stride()), py::arg("padding") = first_of(conv_defaults.padding()),
           py::arg("dilation") = first_of(conv_defaults.dilation()), py::arg("groups") = conv_defaults.groups(),
           py::arg("bias") = conv_defaults.bias());

  const GeneratedLinearOptions linear_defaults(1, 1);
  torch::python::bind_module<GeneratedLinearImpl>(cpp, "GeneratedLinear")
      .def(py::init([](const std::shared_ptr<ParameterRingImpl>& ring, int64_t in_features, int64_t out_features,
                       bool bias) {
             return std::make_shared<GeneratedLinearImpl>(
                 ParameterRing(ring), GeneratedLinearOptions(in_features, out_features).bias(bias));
           }),
           py::arg("ring"), py::arg("in_features"), py::arg("out_features"), py::arg("bias") = linear_defaults.bias());
}
