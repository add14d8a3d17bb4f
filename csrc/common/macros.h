// Host/device annotations for maths that the CPU and CUDA kernels share.
#pragma once

#if defined(__CUDACC__) || defined(__HIPCC__)
#define LEANCONV_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define LEANCONV_HOST_DEVICE inline
#endif
