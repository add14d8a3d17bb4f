// See fiber.h.
#include "fiber.h"

#include <cstdint>

#if defined(__x86_64__)
// leanconv_emu_switch(void** save, void* load): pushes the System V callee-saved registers, stores the stack
// pointer in *save, loads `load` and pops the other fiber's registers; `ret` continues it.
asm(R"(
  .pushsection .text
  .globl leanconv_emu_switch
  .hidden leanconv_emu_switch
  .type leanconv_emu_switch, @function
leanconv_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size leanconv_emu_switch, .-leanconv_emu_switch
  .popsection
)");
extern "C" void leanconv_emu_switch(void** save, void* load);
#endif

namespace leanconv::emu {

#if defined(__x86_64__)
void start_fiber(FiberContext& fiber, char* stack, std::size_t size, void (*entry)()) {
  // The first switch pops six zero registers and returns into entry with the stack as a call leaves it
  // (rsp = 8 mod 16); the slot above is entry's never-used return address.
  auto top = reinterpret_cast<uintptr_t>(stack + size) & ~uintptr_t(15);
  auto* slots = reinterpret_cast<void**>(top);
  slots[-1] = nullptr;
  slots[-2] = reinterpret_cast<void*>(entry);
  for (int r = 3; r <= 8; ++r) slots[-r] = nullptr;
  fiber.stack_pointer = &slots[-8];
}

void switch_fiber(FiberContext& from, FiberContext& to) { leanconv_emu_switch(&from.stack_pointer, to.stack_pointer); }
#else
void start_fiber(FiberContext& fiber, char* stack, std::size_t size, void (*entry)()) {
  getcontext(&fiber.context);
  fiber.context.uc_stack.ss_sp = stack;
  fiber.context.uc_stack.ss_size = size;
  fiber.context.uc_link = nullptr;
  makecontext(&fiber.context, entry, 0);
}

void switch_fiber(FiberContext& from, FiberContext& to) { swapcontext(&from.context, &to.context); }
#endif

}  // namespace leanconv::emu
