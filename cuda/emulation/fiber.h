// Fibers for the emulated block scheduler: a stack of its own and a switch that saves only the callee-saved
// registers (no signal mask, unlike swapcontext's system call), so a barrier costs nanoseconds. x86-64 has the
// switch in assembly; other machines use ucontext.
#pragma once

#include <cstddef>

#if !defined(__x86_64__)
#include <ucontext.h>
#endif

namespace leanconv::emu {

struct FiberContext {
#if defined(__x86_64__)
  void* stack_pointer = nullptr;
#else
  ucontext_t context{};
#endif
};

// Prepares `fiber` to run entry() on [stack, stack + size) at its first switch_fiber; entry must never return.
void start_fiber(FiberContext& fiber, char* stack, std::size_t size, void (*entry)());

// Saves the running context in `from` and continues `to`.
void switch_fiber(FiberContext& from, FiberContext& to);

}  // namespace leanconv::emu
