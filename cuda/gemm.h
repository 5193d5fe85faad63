/* Row-major GEMM requests and the column-major cuBLAS calls that carry them
 * out. seqlens stores activations row-major; cuBLAS is column-major. A
 * row-major matrix with row stride ld is, byte for byte, its transpose in
 * column-major order with the same ld, so
 *     C = op(A) op(B)   (row-major, M x N)
 * is the column-major product
 *     C^T = op(B)^T op(A)^T   (N x M)
 * and cuBLAS is called with the operands swapped, the transpose flags kept,
 * and m, n exchanged. That mapping is the whole of this file; it is plain C,
 * built in every configuration, and tested on the CPU against CBLAS
 * (tests/test_cuda_gemm.c) with sl_gemm_colmajor_ref standing in for cuBLAS.
 * The one caller of cuBLAS itself is cuda/gemm_cublas.cu. */
#ifndef SL_CUDA_GEMM_H
#define SL_CUDA_GEMM_H

#include "core/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* CUBLAS_OP_N / CUBLAS_OP_T, spelled here so this header needs no CUDA. */
typedef enum { SL_GEMM_N = 0, SL_GEMM_T = 1 } sl_gemm_op;

/* C[M,N] = alpha * op(A)[M,K] . op(B)[K,N] + beta * C, all row-major.
 * lda, ldb, ldc are row strides (elements) of A, B, C as stored: A is stored
 * [M,K] when transA is N and [K,M] when it is T; likewise B. batch >= 1
 * matrices, matrix p of A at A + p * strideA (and so on); strides are only
 * read when batch > 1, and a stride of 0 for A or B reuses one matrix.
 * beta == 0 means C is not read (as in BLAS). */
typedef struct {
    sl_gemm_op transA, transB;
    int M, N, K;
    float alpha, beta;
    const float *A, *B;
    float *C;
    int lda, ldb, ldc;
    int batch;
    long long strideA, strideB, strideC;
} sl_gemm_req;

/* The column-major call, field for field the arguments of
 * cublasSgemmStridedBatched(handle, opa, opb, m, n, k, &alpha, a, lda,
 * strideA, b, ldb, strideB, &beta, c, ldc, strideC, batch): c[m,n] =
 * alpha * opa(a)[m,k] . opb(b)[k,n] + beta * c, column-major. */
typedef struct {
    sl_gemm_op opa, opb;
    int m, n, k;
    float alpha, beta;
    const float *a, *b;
    float *c;
    int lda, ldb, ldc;
    int batch;
    long long strideA, strideB, strideC;
} sl_gemm_call;

/* Checks the request (sizes >= 0, batch >= 1, each leading dimension at
 * least its stored row width, batch matrices of C not overlapping) and maps
 * it to *call. Returns SL_OK, or SL_EINPUT with the offending field named in
 * err. Touches no matrix memory: the pointers are only copied, so they may
 * be device pointers. */
int sl_gemm_map(const sl_gemm_req *rq, sl_gemm_call *call, sl_error *err);

/* Executes a column-major call on the CPU, with cuBLAS's meaning for every
 * field; accumulates in double. For tests: it is the stand-in for cuBLAS. */
void sl_gemm_colmajor_ref(const sl_gemm_call *call);

#ifdef SEQLENS_CUDA
/* cublasHandle_t is `struct cublasContext *` (cublas_api.h); naming the
 * struct keeps cuBLAS's headers out of the C sources. */
struct cublasContext;

/* Runs the request on the GPU: A, B, C are device pointers, the handle is
 * in host pointer mode (the default; alpha and beta are read from the
 * host). Asynchronous on the handle's stream like cuBLAS itself. Returns
 * SL_OK, SL_EINPUT for a bad request, or SL_ERUNTIME naming the cuBLAS
 * status. Defined in cuda/gemm_cublas.cu. */
int sl_cuda_gemm(struct cublasContext *handle, const sl_gemm_req *rq, sl_error *err);
/* Loads cuBLAS now, if not yet (cuda/cublas_load.h): SL_OK, or an error
 * naming what is missing. */
int sl_cublas_load(sl_error *err);
#endif

#ifdef __cplusplus
}
#endif

#endif
