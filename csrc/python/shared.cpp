// The shared-weight family's C++ modules in leanconv._C.cpp.
#include <pybind11/stl.h>
#include <torch/python.h>

#include "leanconv/nn/shared.h"
#include "module_binders.h"

namespace py = pybind11;
using namespace leanconv::nn;
using leanconv::python::first_of;

LEANCONV_BIND_MODULES(shared) {
  const ConvAnchorOptions anchor_defaults(1);
  torch::python::bind_module<ConvAnchorImpl>(cpp, "ConvAnchor")
      .def(py::init([](int64_t channels, int64_t kernel_size, bool bias) {
             return std::make_shared<ConvAnchorImpl>(ConvAnchorOptions(channels, kernel_size).bias(bias));
           }),
           py::arg("channels"), py::arg("kernel_size") = first_of(anchor_defaults.kernel_size()),
           py::arg("bias") = anchor_defaults.bias());

  const AnchoredConv2dOptions defaults;
  torch::python::bind_module<AnchoredConv2dImpl>(cpp, "AnchoredConv2d")
      .def(py::init([](const std::shared_ptr<ConvAnchorImpl>& anchor, int64_t stride, std::optional<int64_t> padding,
                       int64_t dilation, int64_t rotate) {
             auto options = AnchoredConv2dOptions().stride(stride).dilation(dilation).rotate(rotate);
             if (padding) options.padding(torch::ExpandingArray<2>(*padding));
             return std::make_shared<AnchoredConv2dImpl>(ConvAnchor(anchor), options);
           }),
           py::arg("anchor"), py::arg("stride") = first_of(defaults.stride()), py::arg("padding") = py::none(),
           py::arg("dilation") = first_of(defaults.dilation()), py::arg("rotate") = defaults.rotate());

  torch::python::bind_module<RegulatorImpl>(cpp, "Regulator")
      .def(py::init([](int64_t channels) { return std::make_shared<RegulatorImpl>(channels); }), py::arg("channels"));
}
