/* A device as the model core sees it: memory, copies, one GEMM and one
 * kernel launch. Two implementations: the GPU (cuda/dev_cuda.cu, CUDA
 * builds only) and the host grid (cuda/dev_host.c, every build), which runs
 * the same per-thread kernel code and the same GEMM mapping on the CPU. The
 * device model core (cuda/device_model.c) only ever talks to this table, so
 * the CPU test suite runs all of it (batching, padding, hooks, weight
 * layout) and what only a GPU can check shrinks to the table's GPU side. */
#ifndef SL_DEVICE_H
#define SL_DEVICE_H

#include <stddef.h>

#include "core/error.h"
#include "cuda/batch_kernels.h"
#include "cuda/gemm.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sl_device {
    const char *name; /* "cuda: NVIDIA H100 ..." or "host grid" */
    void *ctx;
    /* every call returns SL_OK or SL_ERUNTIME naming what failed */
    int (*alloc)(void *ctx, size_t bytes, void **p, sl_error *err);
    void (*release)(void *ctx, void *p);
    int (*put)(void *ctx, void *dst, const void *src, size_t bytes, sl_error *err); /* host to device */
    int (*get)(void *ctx, void *dst, const void *src, size_t bytes, sl_error *err); /* device to host */
    int (*gemm)(void *ctx, const sl_gemm_req *rq, sl_error *err);
    int (*launch)(void *ctx, int kernel, const sl_kargs *a, sl_error *err);
    void (*close)(void *ctx);
} sl_device;

/* The CPU stand-in: host memory, CBLAS given the column-major call cuBLAS
 * would get, launches looped over the grid. */
void sl_device_host(sl_device *dev);

/* The first CUDA device, with a cuBLAS handle. Fails with a message (no
 * device, no driver) when there is none; only in CUDA builds. */
int sl_device_cuda(sl_device *dev, sl_error *err);

/* 1 where sl_device_cuda could succeed: a CUDA build and a visible device. */
int sl_device_cuda_available(void);
/* 1 in a CUDA build (make CUDA=1), device or not. */
int sl_device_cuda_built(void);

#ifdef __cplusplus
}
#endif

#endif
