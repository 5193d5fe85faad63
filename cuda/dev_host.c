/* The host grid device: what the GPU runs, on the CPU, in host memory.
 * GEMMs go through the same row- to column-major mapping as cuBLAS calls
 * (cuda/gemm.c) and the column-major call is handed to CBLAS as it would be
 * to cuBLAS; kernels run their per-thread function for every thread index
 * (in parallel: threads of one launch never write the same element). */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/device.h"

static int host_alloc(void *ctx, size_t bytes, void **p, sl_error *err)
{
    (void)ctx;
    /* zeroed, as cudaMemset would leave it: a read of padding must be finite */
    *p = calloc(1, bytes ? bytes : 1);
    return *p ? SL_OK : sl_fail(err, SL_ERUNTIME, "host grid: out of memory for %zu bytes", bytes);
}

static void host_release(void *ctx, void *p)
{
    (void)ctx;
    free(p);
}

static int host_copy(void *ctx, void *dst, const void *src, size_t bytes, sl_error *err)
{
    (void)ctx, (void)err;
    if (bytes) memmove(dst, src, bytes);
    return SL_OK;
}

static int host_gemm(void *ctx, const sl_gemm_req *rq, sl_error *err)
{
    (void)ctx;
    sl_gemm_call c;
    int rc = sl_gemm_map(rq, &c, err);
    for (int p = 0; !rc && p < c.batch; p++)
        cblas_sgemm(CblasColMajor, c.opa == SL_GEMM_T ? CblasTrans : CblasNoTrans,
                    c.opb == SL_GEMM_T ? CblasTrans : CblasNoTrans, c.m, c.n, c.k, c.alpha, c.a + p * c.strideA, c.lda,
                    c.b + p * c.strideB, c.ldb, c.beta, c.c + p * c.strideC, c.ldc);
    return rc;
}

static int host_launch(void *ctx, int kernel, const sl_kargs *a, sl_error *err)
{
    (void)ctx;
    if (kernel < 0 || kernel >= SK_COUNT) return sl_fail(err, SL_ERUNTIME, "host grid: no kernel %d", kernel);
    long n = sl_kernel_threads(kernel, a);
/* small launches (most in the tests) cost less than waking a team */
#pragma omp parallel for schedule(static) if (n >= 16384)
    for (long i = 0; i < n; i++) sl_kernel_thread(kernel, a, i);
    return SL_OK;
}

static void host_close(void *ctx) { (void)ctx; }

void sl_device_host(sl_device *dev)
{
    *dev = (sl_device){
        .name = "host grid", .alloc = host_alloc, .release = host_release, .put = host_copy, .get = host_copy,
        .gemm = host_gemm, .launch = host_launch, .close = host_close,
    };
}

#ifndef SEQLENS_CUDA
int sl_device_cuda(sl_device *dev, sl_error *err)
{
    (void)dev;
    return sl_fail(err, SL_EINPUT, "--device cuda: this build has no CUDA backend (build with make CUDA=1 where nvcc is installed)");
}

int sl_device_cuda_available(void) { return 0; }
int sl_device_cuda_built(void) { return 0; }
#endif
