// The GPU side of the device table (cuda/device.h): memory, copies and
// launches on one stream, GEMMs through cuBLAS on the same stream. Every
// CUDA and cuBLAS call is checked. What this file adds to the host grid
// device is only these calls; the model core above it and the kernels'
// per-thread code are tested on the CPU.
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "cuda/cublas_load.h"
#include "cuda/device.h"
#include "cuda/kernels.h"

struct cuda_ctx {
    const sl_cublas *api; // loaded with the first device opened
    cublasHandle_t blas;
    cudaStream_t stream;
    char name[320];
};

static int check(cudaError_t e, const char *what, sl_error *err)
{
    return e == cudaSuccess ? SL_OK : sl_fail(err, SL_ERUNTIME, "CUDA %s: %s", what, cudaGetErrorString(e));
}

static int cu_alloc(void *ctx, size_t bytes, void **p, sl_error *err)
{
    cuda_ctx *c = (cuda_ctx *)ctx;
    *p = NULL;
    cudaError_t e = cudaMalloc(p, bytes ? bytes : 1);
    if (e != cudaSuccess)
        return sl_fail(err, SL_ERUNTIME, "CUDA cudaMalloc of %zu bytes: %s (try a smaller --batch)", bytes,
                       cudaGetErrorString(e));
    // zeroed, as the host grid's: padding is read finite
    return check(cudaMemsetAsync(*p, 0, bytes ? bytes : 1, c->stream), "cudaMemsetAsync", err);
}

static void cu_release(void *ctx, void *p)
{
    (void)ctx;
    cudaFree(p); // a failure here has no one left to tell
}

static int cu_put(void *ctx, void *dst, const void *src, size_t bytes, sl_error *err)
{
    cuda_ctx *c = (cuda_ctx *)ctx;
    // synchronous: the host buffer may change as soon as this returns
    int rc = check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, c->stream), "cudaMemcpy to the device", err);
    return rc ? rc : check(cudaStreamSynchronize(c->stream), "cudaStreamSynchronize after a copy", err);
}

static int cu_get(void *ctx, void *dst, const void *src, size_t bytes, sl_error *err)
{
    cuda_ctx *c = (cuda_ctx *)ctx;
    int rc = check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, c->stream), "cudaMemcpy to the host", err);
    // also where a fault inside an earlier kernel surfaces
    return rc ? rc : check(cudaStreamSynchronize(c->stream), "a kernel or copy", err);
}

static int cu_gemm(void *ctx, const sl_gemm_req *rq, sl_error *err)
{
    return sl_cuda_gemm(((cuda_ctx *)ctx)->blas, rq, err);
}

static int cu_launch(void *ctx, int kernel, const sl_kargs *a, sl_error *err)
{
    return sl_cuda_launch(kernel, a, ((cuda_ctx *)ctx)->stream, err);
}

static void cu_close(void *ctx)
{
    cuda_ctx *c = (cuda_ctx *)ctx;
    if (!c) return;
    if (c->blas) c->api->destroy(c->blas);
    if (c->stream) cudaStreamDestroy(c->stream);
    free(c);
}

/* MPI ranks on one host take the host's GPUs in turn (the launcher says
 * which rank this is on its host); one process takes the first. */
static int local_rank(void)
{
    const char *names[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        const char *v = getenv(names[i]);
        if (v && *v) return atoi(v) > 0 ? atoi(v) : 0;
    }
    return 0;
}

extern "C" int sl_device_cuda_built(void) { return 1; }

extern "C" int sl_device_cuda_available(void)
{
    /* without the driver's device nodes (Linux; WSL2's /dev/dxg) there is no
     * GPU to find, and asking the runtime costs ~0.1 s of every command */
    if (access("/dev/nvidiactl", F_OK) != 0 && access("/dev/dxg", F_OK) != 0) return 0;
    int n = 0;
    return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

extern "C" int sl_device_cuda(sl_device *dev, sl_error *err)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n < 1)
        return sl_fail(err, SL_EINPUT, "--device cuda: no CUDA device (%s)",
                       e != cudaSuccess ? cudaGetErrorString(e) : "none found");
    cuda_ctx *c = (cuda_ctx *)calloc(1, sizeof *c);
    if (!c) return sl_fail(err, SL_ERUNTIME, "out of memory");
    int id = local_rank() % n;
    cudaDeviceProp p;
    int rc = check(cudaGetDeviceProperties(&p, id), "cudaGetDeviceProperties", err);
    if (!rc) rc = check(cudaSetDevice(id), "cudaSetDevice", err);
    if (!rc) rc = check(cudaStreamCreate(&c->stream), "cudaStreamCreate", err);
    if (!rc && !(c->api = sl_cublas_get(err))) rc = SL_ERUNTIME;
    cublasStatus_t st = CUBLAS_STATUS_SUCCESS;
    if (!rc && (st = c->api->create(&c->blas)) != CUBLAS_STATUS_SUCCESS)
        rc = sl_fail(err, SL_ERUNTIME, "cuBLAS cublasCreate: %s", c->api->status_string(st));
    // FP32 GEMMs: pedantic math keeps TF32 off whatever NVIDIA_TF32_OVERRIDE says
    if (!rc && (st = c->api->set_math_mode(c->blas, CUBLAS_PEDANTIC_MATH)) != CUBLAS_STATUS_SUCCESS)
        rc = sl_fail(err, SL_ERUNTIME, "cuBLAS cublasSetMathMode: %s", c->api->status_string(st));
    if (!rc && (st = c->api->set_stream(c->blas, c->stream)) != CUBLAS_STATUS_SUCCESS)
        rc = sl_fail(err, SL_ERUNTIME, "cuBLAS cublasSetStream: %s", c->api->status_string(st));
    if (rc) {
        cu_close(c);
        return rc;
    }
    snprintf(c->name, sizeof c->name, "cuda %d: %s (sm_%d%d, %.1f GiB)", id, p.name, p.major, p.minor,
             p.totalGlobalMem / 1073741824.0);
    *dev = sl_device{};
    dev->name = c->name;
    dev->ctx = c;
    dev->alloc = cu_alloc;
    dev->release = cu_release;
    dev->put = cu_put;
    dev->get = cu_get;
    dev->gemm = cu_gemm;
    dev->launch = cu_launch;
    dev->close = cu_close;
    return SL_OK;
}
