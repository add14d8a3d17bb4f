// The C++ family registry as Python sees it (leanconv._C.cpp.conv_families()): each family's name, network and
// options with their defaults, so a test can hold it to leanconv.families, the Python registry.
#include <pybind11/stl.h>
#include <torch/python.h>

#include "leanconv/nn/conv_families.h"
#include "module_binders.h"

namespace py = pybind11;

LEANCONV_BIND_MODULES(conv_families) {
  cpp.def(
      "conv_families",
      [] {
        py::list families;
        for (const leanconv::nn::ConvFamily* family : leanconv::nn::conv_families()) {
          py::dict options;
          for (const auto& option : family->options) options[py::str(option.name)] = option.default_value;
          families.append(py::dict(py::arg("name") = family->name, py::arg("network") = family->network,
                                   py::arg("compact") = family->compact, py::arg("options") = options));
        }
        return families;
      },
      "Every family of the C++ registry: name, network, compact, options (name -> default as text).");
}
