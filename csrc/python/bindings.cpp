// leanconv._C: importing it loads libleanconv (and so registers the ops); it also exposes the C++ modules
// so Python can check that they compute what the Python modules compute. bind_module gives each module the
// torch.nn.Module methods, its forward (and __call__) and its parameters and buffers under their state_dict
// names (a generated layer's `offset`, a ring's `seed` and `total`, as in Python); what is bound here besides is
// what the tests call.
#include <pybind11/stl.h>
#include <torch/python.h>

#include "leanconv/leanconv.h"

namespace py = pybind11;
using namespace leanconv::nn;

PYBIND11_MODULE(_C, m) {
  m.doc() = "leanconv's compiled core";
  auto cpp = m.def_submodule("cpp", "The C++ modules of leanconv::nn, bound for tests and mixed programs.");

  torch::python::bind_module<ParameterRingImpl>(cpp, "ParameterRing")
      .def(py::init([](int64_t size, int64_t seed, double fan_ref) {
             return std::make_shared<ParameterRingImpl>(ParameterRingOptions(size).seed(seed).fan_ref(fan_ref));
           }),
           py::arg("size"), py::arg("seed") = 0, py::arg("fan_ref") = kDefaultFanRef);

  torch::python::bind_module<GeneratedConv2dImpl>(cpp, "GeneratedConv2d")
      .def(py::init([](const std::shared_ptr<ParameterRingImpl>& ring, int64_t in_channels, int64_t out_channels,
                       int64_t kernel_size, int64_t stride, int64_t padding, int64_t dilation, int64_t groups,
                       bool bias) {
             return std::make_shared<GeneratedConv2dImpl>(ParameterRing(ring),
                                                          GeneratedConv2dOptions(in_channels, out_channels, kernel_size)
                                                              .stride(stride)
                                                              .padding(padding)
                                                              .dilation(dilation)
                                                              .groups(groups)
                                                              .bias(bias));
           }),
           py::arg("ring"), py::arg("in_channels"), py::arg("out_channels"), py::arg("kernel_size"),
           py::arg("stride") = 1, py::arg("padding") = 0, py::arg("dilation") = 1, py::arg("groups") = 1,
           py::arg("bias") = true);

  torch::python::bind_module<GeneratedLinearImpl>(cpp, "GeneratedLinear")
      .def(py::init([](const std::shared_ptr<ParameterRingImpl>& ring, int64_t in_features, int64_t out_features,
                       bool bias) {
             return std::make_shared<GeneratedLinearImpl>(
                 ParameterRing(ring), GeneratedLinearOptions(in_features, out_features).bias(bias));
           }),
           py::arg("ring"), py::arg("in_features"), py::arg("out_features"), py::arg("bias") = true);

  torch::python::bind_module<FilterSummaryConv2dImpl>(cpp, "FilterSummaryConv2d")
      .def(py::init([](int64_t in_channels, int64_t out_channels, int64_t kernel_size, int64_t stride, int64_t padding,
                       int64_t dilation, bool bias, double compression, std::optional<int64_t> quant_bits,
                       std::string path) {
             return std::make_shared<FilterSummaryConv2dImpl>(FilterSummaryConv2dOptions(in_channels, out_channels,
                                                                                         kernel_size)
                                                                  .stride(stride)
                                                                  .padding(padding)
                                                                  .dilation(dilation)
                                                                  .bias(bias)
                                                                  .compression(compression)
                                                                  .quant_bits(quant_bits)
                                                                  .path(std::move(path)));
           }),
           py::arg("in_channels"), py::arg("out_channels"), py::arg("kernel_size"), py::arg("stride") = 1,
           py::arg("padding") = 0, py::arg("dilation") = 1, py::arg("bias") = true, py::arg("compression") = 9.0,
           py::arg("quant_bits") = py::none(), py::arg("path") = "auto")
      .def("uses_direct_path", &FilterSummaryConv2dImpl::uses_direct_path);

  torch::python::bind_module<EigenConv2dImpl>(cpp, "EigenConv2d")
      .def(py::init([](int64_t in_channels, int64_t out_channels, int64_t kernel_size, int64_t rank, int64_t stride,
                       int64_t padding, int64_t dilation, bool bias, std::string path) {
             return std::make_shared<EigenConv2dImpl>(EigenConv2dOptions(in_channels, out_channels, kernel_size, rank)
                                                          .stride(stride)
                                                          .padding(padding)
                                                          .dilation(dilation)
                                                          .bias(bias)
                                                          .path(std::move(path)));
           }),
           py::arg("in_channels"), py::arg("out_channels"), py::arg("kernel_size"), py::arg("rank"),
           py::arg("stride") = 1, py::arg("padding") = 0, py::arg("dilation") = 1, py::arg("bias") = true,
           py::arg("path") = "auto")
      .def("chosen_path", [](const EigenConv2dImpl& self, const std::string& device_type) {
        return self.chosen_path(c10::Device(device_type).type());
      });

  torch::python::bind_module<ConvAnchorImpl>(cpp, "ConvAnchor")
      .def(py::init([](int64_t channels, int64_t kernel_size, bool bias) {
             return std::make_shared<ConvAnchorImpl>(ConvAnchorOptions(channels, kernel_size).bias(bias));
           }),
           py::arg("channels"), py::arg("kernel_size") = 3, py::arg("bias") = false);

  torch::python::bind_module<AnchoredConv2dImpl>(cpp, "AnchoredConv2d")
      .def(py::init([](const std::shared_ptr<ConvAnchorImpl>& anchor, int64_t stride, std::optional<int64_t> padding,
                       int64_t dilation, int64_t rotate) {
             auto options = AnchoredConv2dOptions().stride(stride).dilation(dilation).rotate(rotate);
             if (padding) options.padding(torch::ExpandingArray<2>(*padding));
             return std::make_shared<AnchoredConv2dImpl>(ConvAnchor(anchor), options);
           }),
           py::arg("anchor"), py::arg("stride") = 1, py::arg("padding") = py::none(), py::arg("dilation") = 1,
           py::arg("rotate") = 0);

  torch::python::bind_module<RegulatorImpl>(cpp, "Regulator")
      .def(py::init([](int64_t channels) { return std::make_shared<RegulatorImpl>(channels); }), py::arg("channels"));

  torch::python::bind_module<GroupedConv2dImpl>(cpp, "GroupedConv2d")
      .def(py::init([](int64_t in_channels, int64_t out_channels, int64_t kernel_size, int64_t stride, int64_t padding,
                       int64_t groups, bool bias, std::string path) {
             return std::make_shared<GroupedConv2dImpl>(GroupedConv2dOptions(in_channels, out_channels, kernel_size)
                                                            .stride(stride)
                                                            .padding(padding)
                                                            .groups(groups)
                                                            .bias(bias)
                                                            .path(std::move(path)));
           }),
           py::arg("in_channels"), py::arg("out_channels"), py::arg("kernel_size"), py::arg("stride") = 1,
           py::arg("padding") = 0, py::arg("groups") = 1, py::arg("bias") = true, py::arg("path") = "auto");

  torch::python::bind_module<MultigridConv2dImpl>(cpp, "MultigridConv2d")
      .def(py::init([](int64_t in_channels, int64_t out_channels, int64_t kernel_size, int64_t stride,
                       int64_t group_size, int64_t coarsest) {
             return std::make_shared<MultigridConv2dImpl>(MultigridConv2dOptions(in_channels, out_channels)
                                                              .kernel_size(kernel_size)
                                                              .stride(stride)
                                                              .group_size(group_size)
                                                              .coarsest(coarsest));
           }),
           py::arg("in_channels"), py::arg("out_channels"), py::arg("kernel_size") = 3, py::arg("stride") = 1,
           py::arg("group_size") = 32, py::arg("coarsest") = 32);

  torch::python::bind_module<MultigridBlockImpl>(cpp, "MultigridBlock")
      .def(py::init([](int64_t in_channels, int64_t channels, int64_t stride, int64_t group_size, int64_t coarsest) {
             return std::make_shared<MultigridBlockImpl>(
                 MultigridBlockOptions(in_channels, channels).stride(stride).group_size(group_size).coarsest(coarsest));
           }),
           py::arg("in_channels"), py::arg("channels"), py::arg("stride") = 1, py::arg("group_size") = 32,
           py::arg("coarsest") = 32);
}
