/* Every CUDA kernel's per-thread work is an SL_KERNEL_FN: one function that
 * nvcc compiles for the device and a C compiler for the host, so that the
 * CPU test suite runs the very code a GPU thread runs (cuda/host_grid.h
 * loops it over the grid) and compares it with the CPU model core. */
#ifndef SL_KERNEL_DEFS_H
#define SL_KERNEL_DEFS_H

#ifdef __CUDACC__
#define SL_KERNEL_FN static __host__ __device__ __forceinline__
#else
#include <math.h>
#define SL_KERNEL_FN static inline
#endif

/* The scan keeps one channel's whole state in registers. */
#define SL_MAX_STATE 64

/* A per-thread array stays in registers only if every index is known at
 * compile time: loops over one run to its compile-time bound, fully
 * unrolled, with the real (run-time) size as a guard inside. Without the
 * unrolling nvcc puts the array in local memory (checked with -Xptxas -v:
 * the scan and attention had 256- and 512-byte stack frames). */
#ifdef __CUDA_ARCH__ /* the device pass only: the host compiler does not know the pragma */
#define SL_UNROLL _Pragma("unroll")
#else
#define SL_UNROLL
#endif

SL_KERNEL_FN float sl_k_silu(float x) { return x / (1.0f + expf(-x)); }

/* d SiLU(x) / dx */
SL_KERNEL_FN float sl_k_silu_grad(float x)
{
    float s = 1.0f / (1.0f + expf(-x));
    return s * (1.0f + x * (1.0f - s));
}

/* log(1 + e^x) without overflow, as torch.nn.functional.softplus (threshold 20). */
SL_KERNEL_FN float sl_k_softplus(float x) { return x > 20.0f ? x : log1pf(expf(x)); }

#endif
