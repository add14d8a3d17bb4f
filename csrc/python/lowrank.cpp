// The low-rank family's C++ module in leanconv._C.cpp.
#include <pybind11/stl.h>
#include <torch/python.h>

#include "leanconv/nn/lowrank.h"
#include "module_binders.h"

namespace py = pybind11;
using namespace leanconv::nn;
using leanconv::python::first_of;

LEANCONV_BIND_MODULES(lowrank) {
  const EigenConv2dOptions defaults(1, 1, 1, 1);
  torch::python::bind_module<EigenConv2dImpl>(cpp, "EigenConv2d")
      .def(py::init([](int64_t in_channels, int64_t out_channels, int64_t kernel_size, int64_t rank, int64_t stride,
                       int64_t padding, int64_t dilation, bool bias, std::string path) {
             auto options = EigenConv2dOptions(in_channels, out_channels, kernel_size, rank)
                                .stride(stride)
                                .padding(padding)
                                .dilation(dilation)
                                .bias(bias)
                                .path(std::move(path));
             return std::make_shared<EigenConv2dImpl>(options);
           }),
           py::arg("in_channels"), py::arg("out_channels"), py::arg("kernel_size"), py::arg("rank"),
           py::arg("stride") = first_of(defaults.stride()), py::arg("padding") = first_of(defaults.padding()),
           py::arg("dilation") = first_of(defaults.dilation()), py::arg("bias") = defaults.bias(),
           py::arg("path") = defaults.path())
      .def("chosen_path", [](const EigenConv2dImpl& self, const std::string& device_type) {
        return self.chosen_path(c10::Device(device_type).type());
      });
}
