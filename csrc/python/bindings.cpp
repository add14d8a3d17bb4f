// leanconv._C: importing it loads libleanconv (and so registers the ops); it also exposes the C++ modules
// so Python can check that they compute what the Python modules compute. Each family binds its own modules in
// csrc/python/<family>.cpp (module_binders.h); torch::python::bind_module gives each module the torch.nn.Module
// methods, its forward (and __call__) and its parameters and buffers under their state_dict names.
#include <torch/python.h>

#include "module_binders.h"

namespace leanconv::python {

std::vector<ModuleBinder>& module_binders() {
  static std::vector<ModuleBinder> binders;
  return binders;
}

}  // namespace leanconv::python

PYBIND11_MODULE(_C, m) {
  m.doc() = "leanconv's compiled core";
  auto cpp = m.def_submodule("cpp", "The C++ modules of leanconv::nn, bound for tests and mixed programs.");
  for (auto bind : leanconv::python::module_binders()) bind(cpp);
}
