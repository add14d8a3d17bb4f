// The filter-summary family's C++ module in leanconv._C.cpp.
#include <pybind11/stl.h>
#include <torch/python.h>

#include "leanconv/nn/filter_summary.h"
#include "module_binders.h"

namespace py = pybind11;
using namespace leanconv::nn;
using leanconv::python::first_of;

LEANCONV_BIND_MODULES(filter_summary) {
  const FilterSummaryConv2dOptions defaults(1, 1, 1);
  torch::python::bind_module<FilterSummaryConv2dImpl>(cpp, "FilterSummaryConv2d")
      .def(py::init([](int64_t in_channels, int64_t out_channels, int64_t kernel_size, int64_t stride, int64_t padding,
                       int64_t dilation, bool bias, double compression, std::optional<int64_t> quant_bits,
                       std::string path) {
             auto options = FilterSummaryConv2dOptions(in_channels, out_channels, kernel_size)
                                .stride(stride)
                                .padding(padding)
                                .dilation(dilation)
                                .bias(bias)
                                .compression(compression)
                                .quant_bits(quant_bits)
                                .path(std::move(path));
             return std::make_shared<FilterSummaryConv2dImpl>(options);
           }),
           py::arg("in_channels"), py::arg("out_channels"), py::arg("kernel_size"),
           py::arg("stride") = first_of(defaults.stride()), py::arg("padding") = first_of(defaults.padding()),
           py::arg("dilation") = first_of(defaults.dilation()), py::arg("bias") = defaults.bias(),
           py::arg("compression") = defaults.compression(), py::arg("quant_bits") = defaults.quant_bits(),
           py::arg("path") = defaults.path())
      .def("uses_direct_path", &FilterSummaryConv2dImpl::uses_direct_path);
}
