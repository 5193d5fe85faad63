#include "cuda/gemm.h"

/* Checks one operand's row stride against the width it is stored with. */
static int check_ld(char name, int ld, int rows, int cols, sl_error *err)
{
    int need = cols > 1 ? cols : 1; /* BLAS wants ld >= 1 even for empty matrices */
    if (ld < need)
        return sl_fail(err, SL_EINPUT, "gemm: ld%c %d is less than %d, the row width of %c stored as [%d,%d]",
                       name - 'A' + 'a', ld, need, name, rows, cols);
    return SL_OK;
}

int sl_gemm_map(const sl_gemm_req *rq, sl_gemm_call *call, sl_error *err)
{
    if (rq->M < 0 || rq->N < 0 || rq->K < 0)
        return sl_fail(err, SL_EINPUT, "gemm: negative size M=%d N=%d K=%d", rq->M, rq->N, rq->K);
    if (rq->batch < 1) return sl_fail(err, SL_EINPUT, "gemm: batch count %d is less than 1", rq->batch);
    /* As stored, A is [M,K] or, transposed, [K,M]; B is [K,N] or [N,K]. */
    int a_n = rq->transA == SL_GEMM_N;
    int b_n = rq->transB == SL_GEMM_N;
    if (check_ld('A', rq->lda, a_n ? rq->M : rq->K, a_n ? rq->K : rq->M, err) ||
        check_ld('B', rq->ldb, b_n ? rq->K : rq->N, b_n ? rq->N : rq->K, err) ||
        check_ld('C', rq->ldc, rq->M, rq->N, err))
        return err->code;
    if (rq->batch > 1) {
        /* A and B may be shared (stride 0); the C matrices are written and
         * must not overlap, or the batch would race on the GPU. */
        if (rq->strideA < 0 || rq->strideB < 0)
            return sl_fail(err, SL_EINPUT, "gemm: negative batch stride strideA=%lld strideB=%lld", rq->strideA,
                           rq->strideB);
        long long span = rq->M && rq->N ? (long long)(rq->M - 1) * rq->ldc + rq->N : 0;
        if (rq->strideC < span)
            return sl_fail(err, SL_EINPUT, "gemm: strideC %lld is less than %lld, so the batch's C matrices overlap",
                           rq->strideC, span);
    }
    /* Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T, and a
     * row-major operand read column-major is already its own transpose: so B
     * goes first with its flag unchanged, A second, and m, n swap. */
    *call = (sl_gemm_call){
        .opa = rq->transB,
        .opb = rq->transA,
        .m = rq->N,
        .n = rq->M,
        .k = rq->K,
        .alpha = rq->alpha,
        .beta = rq->beta,
        .a = rq->B,
        .b = rq->A,
        .c = rq->C,
        .lda = rq->ldb,
        .ldb = rq->lda,
        .ldc = rq->ldc,
        .batch = rq->batch,
        .strideA = rq->strideB,
        .strideB = rq->strideA,
        .strideC = rq->strideC,
    };
    return SL_OK;
}

void sl_gemm_colmajor_ref(const sl_gemm_call *c)
{
    for (int p = 0; p < c->batch; p++) {
        const float *a = c->a + p * c->strideA, *b = c->b + p * c->strideB;
        float *out = c->c + p * c->strideC;
        for (int j = 0; j < c->n; j++)
            for (int i = 0; i < c->m; i++) {
                double s = 0;
                for (int l = 0; l < c->k; l++) {
                    /* Column-major: element (r, q) of a stored matrix is at r + q * ld. */
                    double x = c->opa == SL_GEMM_N ? a[i + (long)l * c->lda] : a[l + (long)i * c->lda];
                    double y = c->opb == SL_GEMM_N ? b[l + (long)j * c->ldb] : b[j + (long)l * c->ldb];
                    s += x * y;
                }
                float *o = &out[i + (long)j * c->ldc];
                /* beta == 0 overwrites without reading C, as cuBLAS does. */
                *o = (float)(c->alpha * s + (c->beta == 0 ? 0.0 : (double)c->beta * *o));
            }
    }
}
