// How leanconv._C learns each family's C++ modules without naming the families: each family's bindings file
// (csrc/python/<family>.cpp) registers a binder at load time with LEANCONV_BIND_MODULES, and bindings.cpp runs
// every registered binder on the `cpp` submodule. A binder's default arguments are read from the family's C++
// options structs, so the Python-facing C++ modules cannot drift from the C++ API's defaults.
#pragma once

#include <pybind11/pybind11.h>

#include <vector>

namespace leanconv::python {

using ModuleBinder = void (*)(pybind11::module_& cpp);

// Every binder registered so far (a function-local static: registrations from other files' static initialisers
// may run before this file's).
std::vector<ModuleBinder>& module_binders();

struct RegisterModuleBinder {
  explicit RegisterModuleBinder(ModuleBinder binder) { module_binders().push_back(binder); }
};

// The first element of an ExpandingArray default (the bindings take one int for both sides).
template <typename Array>
int64_t first_of(const Array& array) {
  return (*array)[0];
}

}  // namespace leanconv::python

#define LEANCONV_BIND_MODULES(family)                                                          \
  static void bind_##family##_modules(pybind11::module_& cpp);                                 \
  static const ::leanconv::python::RegisterModuleBinder register_##family##_modules_binder{   \
      &bind_##family##_modules};                                                               \
  static void bind_##family##_modules(pybind11::module_& cpp)
