// Host/device annotations for maths that the CPU and CUDA kernels share.
#pragma once

#if defined(__CUDACC__) || defined(__HIPCC__)
#define LEANCONV_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define LEANCONV_HOST_DEVICE inline
#endif

// Loop unrolling hint understood by both nvcc and GCC/Clang (nvcc's device pass, then each host compiler: nvcc's
// host pass hands the code to GCC, which would ignore nvcc's spelling with a warning).
#if defined(__CUDA_ARCH__)
#define LEANCONV_UNROLL _Pragma("unroll")
#elif defined(__clang__)
#define LEANCONV_UNROLL _Pragma("unroll")
#else
#define LEANCONV_UNROLL _Pragma("GCC unroll 8")
#endif
