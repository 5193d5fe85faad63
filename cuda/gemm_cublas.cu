/* The one place that calls cuBLAS. The row-major request is mapped by
 * cuda/gemm.c (tested on the CPU in tests/test_cuda_gemm.c); this file only
 * hands the mapped fields to cuBLAS and turns its status into an sl_error. */
#include "cuda/cublas_load.h"
#include "cuda/gemm.h"

static cublasOperation_t cublas_op(sl_gemm_op op) { return op == SL_GEMM_T ? CUBLAS_OP_T : CUBLAS_OP_N; }

extern "C" int sl_cuda_gemm(cublasHandle_t handle, const sl_gemm_req *rq, sl_error *err)
{
    sl_gemm_call c;
    int rc = sl_gemm_map(rq, &c, err);
    if (rc != SL_OK) return rc;
    const sl_cublas *blas = sl_cublas_get(err);
    if (!blas) return SL_ERUNTIME;
    /* One matrix takes the plain call, so a single GEMM's unset strides are
     * never passed to cuBLAS at all. */
    cublasStatus_t st =
        c.batch == 1
            ? blas->sgemm(handle, cublas_op(c.opa), cublas_op(c.opb), c.m, c.n, c.k, &c.alpha, c.a, c.lda, c.b,
                          c.ldb, &c.beta, c.c, c.ldc)
            : blas->sgemm_strided_batched(handle, cublas_op(c.opa), cublas_op(c.opb), c.m, c.n, c.k, &c.alpha, c.a,
                                        c.lda, c.strideA, c.b, c.ldb, c.strideB, &c.beta, c.c, c.ldc, c.strideC,
                                        c.batch);
    if (st != CUBLAS_STATUS_SUCCESS)
        return sl_fail(err, SL_ERUNTIME, "cuBLAS %s (M=%d N=%d K=%d batch %d): %s: %s",
                       c.batch == 1 ? "cublasSgemm" : "cublasSgemmStridedBatched", rq->M, rq->N, rq->K, c.batch,
                       blas->status_name(st), blas->status_string(st));
    return SL_OK;
}
