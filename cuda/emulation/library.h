// The emulated build's registration: each CUDA file's LEANCONV_CUDA_KERNELS(m) { m.impl("op", &kernel); } defines
// leanconv_cuda_emulated::op, with leanconv::op's schema, whose CPU kernel is the CUDA launcher run on the emulated
// execution model. Tests call torch.ops.leanconv_cuda_emulated.op on CPU tensors.
#pragma once

#include <torch/library.h>

#include <string>
#include <utility>

namespace leanconv::emu {

// leanconv::name's schema without its namespace (the fragment's, leanconv_cuda_emulated, takes its place).
std::string emulated_schema(const char* name);

class KernelLibrary {
 public:
  explicit KernelLibrary(torch::Library& library) : library_(library) {}

  template <typename Kernel>
  KernelLibrary& impl(const char* name, Kernel&& kernel) {
    library_.def(torch::schema(emulated_schema(name).c_str()));
    library_.impl(name, torch::dispatch(c10::DispatchKey::CPU, std::forward<Kernel>(kernel)));
    return *this;
  }

 private:
  torch::Library& library_;
};

}  // namespace leanconv::emu

#define LEANCONV_CUDA_KERNELS(m)                                                        \
  static void leanconv_emulated_kernels(::leanconv::emu::KernelLibrary& m);              \
  TORCH_LIBRARY_FRAGMENT(leanconv_cuda_emulated, library) {                              \
    ::leanconv::emu::KernelLibrary kernels(library);                                     \
    leanconv_emulated_kernels(kernels);                                                  \
  }                                                                                      \
  static void leanconv_emulated_kernels(::leanconv::emu::KernelLibrary& m)
