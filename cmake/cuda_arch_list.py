"""The CUDA architectures a leanconv build compiles its kernels for (setup.py passes them to CMake)."""
import os


def cuda_arch_list(torch) -> str:
    """The CUDA architectures to build, as TORCH_CUDA_ARCH_LIST spells them: LEANCONV_CUDA_ARCH_LIST when set, else
    every architecture the installed torch's CUDA build covers (torch._C._cuda_getArchFlags(): sm_75 to sm_120 for
    torch 2.11 with CUDA 13), with PTX of the newest so that later GPUs compile it at load. An installed leanconv
    then runs wherever that torch runs, not only on the architecture it was built on."""
    chosen = os.environ.get("LEANCONV_CUDA_ARCH_LIST", "").strip()
    if chosen:
        return chosen
    flags = torch._C._cuda_getArchFlags() if hasattr(torch._C, "_cuda_getArchFlags") else ""
    numbers = sorted({int(flag[3:]) for flag in flags.split() if flag.startswith("sm_") and flag[3:].isdigit()})
    if not numbers:
        return ""  # a CPU-only torch: CMake's default
    archs = [f"{n // 10}.{n % 10}" for n in numbers]
    return ";".join(archs[:-1] + [archs[-1] + "+PTX"])
