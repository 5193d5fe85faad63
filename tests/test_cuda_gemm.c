/* The row-major -> column-major GEMM mapping that every cuBLAS call goes
 * through (cuda/gemm.c), checked on the CPU: a mapped request, executed by
 * the column-major reference that stands in for cuBLAS, must equal CBLAS's
 * row-major sgemm on the same data. Padding and the gaps between batch
 * matrices hold NaN, so reading outside a matrix poisons the result and
 * writing outside one leaves a number where NaN should be. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/blas.h"
#include "core/rng.h"
#include "cuda/gemm.h"
#include "tests/testing.h"

static sl_rng rng;

static float uniform(void) { return (float)((double)sl_rng_next(&rng) / 18446744073709551616.0 * 2 - 1); }

/* A buffer of batch row-major [rows, cols] matrices with row stride ld,
 * matrix p at p * stride; the numbers are random and everything else NaN. */
static float *matrices(int batch, long long stride, int rows, int cols, int ld)
{
    size_t n = (size_t)((batch - 1) * stride + (long long)rows * ld);
    float *m = malloc(n * sizeof *m);
    for (size_t i = 0; i < n; i++) m[i] = NAN;
    for (int p = 0; p < batch; p++)
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++) m[p * stride + (long long)r * ld + c] = uniform();
    return m;
}

/* Max |got - want| over max |want|; a NaN on one side only (a read or
 * write outside the matrices) counts as infinite. */
static double relative_error(const float *got, const float *want, size_t n)
{
    double diff = 0, scale = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(got[i]) || isnan(want[i])) {
            if (isnan(got[i]) != isnan(want[i])) return INFINITY;
            continue;
        }
        diff = fmax(diff, fabs((double)got[i] - want[i]));
        scale = fmax(scale, fabs((double)want[i]));
    }
    return diff / fmax(scale, 1e-30);
}

static int size(int trial, int forced_at)
{
    if (trial == 0 || trial == forced_at) return 1; /* trial 0: 1x1x1; then each of M, N, K alone at 1 */
    static const int odd[] = {2, 3, 5, 7, 33};
    return sl_rng_below(&rng, 3) == 0 ? odd[sl_rng_below(&rng, 5)] : 1 + (int)sl_rng_below(&rng, 48);
}

/* One random request: mapped + reference executor against CBLAS. */
static void random_case(int trial, sl_gemm_op ta, sl_gemm_op tb, int batch)
{
    static const float alphas[] = {1, 0.5f, -2, 1.25f}, betas[] = {0, -1.25f, 0.75f, 1};
    int M = size(trial, 1), N = size(trial, 2), K = size(trial, 3);
    /* Stored shapes of A and B, and row strides padded by 0..3. */
    int ar = ta == SL_GEMM_N ? M : K, ac = ta == SL_GEMM_N ? K : M;
    int br = tb == SL_GEMM_N ? K : N, bc = tb == SL_GEMM_N ? N : K;
    int lda = ac + (int)sl_rng_below(&rng, 4), ldb = bc + (int)sl_rng_below(&rng, 4);
    int ldc = N + (int)sl_rng_below(&rng, 4);
    /* Batch strides: each matrix's extent plus a gap of 0..4; now and then
     * 0 for A or B (one matrix shared by the batch, which cuBLAS allows). */
    long long sA = (long long)ar * lda + (long long)sl_rng_below(&rng, 5);
    long long sB = (long long)br * ldb + (long long)sl_rng_below(&rng, 5);
    long long sC = (long long)M * ldc + (long long)sl_rng_below(&rng, 5);
    if (batch > 1 && trial % 5 == 4) sA = 0;
    if (batch > 1 && trial % 7 == 6) sB = 0;
    float alpha = alphas[trial % 4], beta = betas[(trial / 4) % 4];

    float *A = matrices(batch, sA, ar, ac, lda), *B = matrices(batch, sB, br, bc, ldb);
    float *C = matrices(batch, sC, M, N, ldc);
    size_t nc = (size_t)((batch - 1) * sC + (long long)M * ldc);
    float *want = malloc(nc * sizeof *want);
    memcpy(want, C, nc * sizeof *want);

    sl_gemm_req rq = {ta, tb, M, N, K, alpha, beta, A, B, C, lda, ldb, ldc, batch, sA, sB, sC};
    sl_gemm_call call;
    sl_error err = {0};
    int rc = sl_gemm_map(&rq, &call, &err);
    CHECK(rc == SL_OK, "trial %d: map refused a valid request: %s", trial, err.msg);
    if (rc == SL_OK) sl_gemm_colmajor_ref(&call);
    for (int p = 0; p < batch; p++)
        cblas_sgemm(CblasRowMajor, ta == SL_GEMM_N ? CblasNoTrans : CblasTrans,
                    tb == SL_GEMM_N ? CblasNoTrans : CblasTrans, M, N, K, alpha, A + p * sA, lda, B + p * sB, ldb,
                    beta, want + p * sC, ldc);
    double e = relative_error(C, want, nc);
    CHECK(e <= 1e-5, "trial %d: op(A)=%c op(B)=%c M=%d N=%d K=%d lda=%d ldb=%d ldc=%d batch=%d: relative error %.3g",
          trial, "NT"[ta], "NT"[tb], M, N, K, lda, ldb, ldc, batch, e);
    free(A), free(B), free(C), free(want);
}

/* sl_linear's GEMM, y[rows,out] = x[rows,in] . W[out,in]^T (+ b), maps to
 * the textbook cuBLAS form cublasSgemm(T, N, out, rows, in, W, in, x, ldx,
 * y, ldy), and computes what sl_linear computes. */
static void linear_case(void)
{
    enum { rows = 5, in = 7, out = 3, ldx = 9, ldy = 4 };
    float *x = matrices(1, 0, rows, in, ldx), *W = matrices(1, 0, out, in, in), *b = matrices(1, 0, 1, out, out);
    float *y = matrices(1, 0, rows, out, ldy), *want = matrices(1, 0, rows, out, ldy);
    for (int r = 0; r < rows; r++)
        for (int o = 0; o < out; o++) y[r * ldy + o] = b[o]; /* the bias, then beta = 1, as sl_linear does */

    sl_gemm_req rq = {SL_GEMM_N, SL_GEMM_T, rows, out, in, 1, 1, x, W, y, ldx, in, ldy, 1, 0, 0, 0};
    sl_gemm_call c;
    sl_error err = {0};
    CHECK(sl_gemm_map(&rq, &c, &err) == SL_OK, "linear: %s", err.msg);
    CHECK(c.opa == SL_GEMM_T && c.opb == SL_GEMM_N, "linear: ops %c%c, want TN", "NT"[c.opa], "NT"[c.opb]);
    CHECK(c.m == out && c.n == rows && c.k == in, "linear: m,n,k = %d,%d,%d, want out,rows,in", c.m, c.n, c.k);
    CHECK(c.a == W && c.lda == in && c.b == x && c.ldb == ldx && c.c == y && c.ldc == ldy,
          "linear: want a=W lda=in, b=x ldb=ldx, c=y ldc=ldy");
    sl_gemm_colmajor_ref(&c);
    sl_linear(x, ldx, rows, in, W, b, out, want, ldy);
    double e = relative_error(y, want, (size_t)rows * ldy);
    CHECK(e <= 1e-5, "linear: relative error %.3g against sl_linear", e);
    free(x), free(W), free(b), free(y), free(want);
}

/* The mapping worked by hand, field by field, and a 2x2 product exactly. */
static void hand_cases(void)
{
    float A[1], B[1], C[1];
    /* C[2,3] = A^T . B with A stored [4,2] (lda 5), B [4,3] (ldb 6), ldc 7. */
    sl_gemm_req rq = {SL_GEMM_T, SL_GEMM_N, 2, 3, 4, 2.0f, 0.5f, A, B, C, 5, 6, 7, 2, 100, 200, 300};
    sl_gemm_call c;
    sl_error err = {0};
    CHECK(sl_gemm_map(&rq, &c, &err) == SL_OK, "hand: %s", err.msg);
    CHECK(c.a == B && c.b == A && c.c == C, "hand: B must go first, A second");
    CHECK(c.opa == SL_GEMM_N && c.opb == SL_GEMM_T, "hand: ops %c%c, want NT", "NT"[c.opa], "NT"[c.opb]);
    CHECK(c.m == 3 && c.n == 2 && c.k == 4, "hand: m,n,k = %d,%d,%d, want 3,2,4", c.m, c.n, c.k);
    CHECK(c.lda == 6 && c.ldb == 5 && c.ldc == 7, "hand: lda,ldb,ldc = %d,%d,%d, want 6,5,7", c.lda, c.ldb, c.ldc);
    CHECK(c.batch == 2 && c.strideA == 200 && c.strideB == 100 && c.strideC == 300,
          "hand: batch %d strides %lld,%lld,%lld, want 2: 200,100,300", c.batch, c.strideA, c.strideB, c.strideC);
    CHECK(c.alpha == 2.0f && c.beta == 0.5f, "hand: alpha, beta must pass through");

    /* [[1,2],[3,4]] . [[5,6],[7,8]] = [[19,22],[43,50]], row-major. */
    float a[4] = {1, 2, 3, 4}, b[4] = {5, 6, 7, 8}, y[4] = {NAN, NAN, NAN, NAN}; /* beta 0: C is not read */
    sl_gemm_req sq = {SL_GEMM_N, SL_GEMM_N, 2, 2, 2, 1, 0, a, b, y, 2, 2, 2, 1, 0, 0, 0};
    CHECK(sl_gemm_map(&sq, &c, &err) == SL_OK, "2x2: %s", err.msg);
    sl_gemm_colmajor_ref(&c);
    CHECK(y[0] == 19 && y[1] == 22 && y[2] == 43 && y[3] == 50, "2x2: got [[%g,%g],[%g,%g]]", y[0], y[1], y[2], y[3]);
}

/* Requests cuBLAS would reject, or that would race, are refused by name. */
static void refusals(void)
{
    float m[1];
    struct {
        sl_gemm_req rq;
        const char *names;
    } bad[] = {
        /* A stored [2,4] needs lda >= 4. */
        {{SL_GEMM_N, SL_GEMM_N, 2, 3, 4, 1, 0, m, m, m, 3, 3, 3, 1, 0, 0, 0}, "lda 3"},
        /* B^T stored [3,4] (transB, N=3, K=4) needs ldb >= 4. */
        {{SL_GEMM_N, SL_GEMM_T, 2, 3, 4, 1, 0, m, m, m, 4, 3, 3, 1, 0, 0, 0}, "ldb 3"},
        {{SL_GEMM_N, SL_GEMM_N, 2, 3, 4, 1, 0, m, m, m, 4, 3, 2, 1, 0, 0, 0}, "ldc 2"},
        {{SL_GEMM_N, SL_GEMM_N, 2, 3, -1, 1, 0, m, m, m, 4, 3, 3, 1, 0, 0, 0}, "negative size"},
        {{SL_GEMM_N, SL_GEMM_N, 2, 3, 4, 1, 0, m, m, m, 4, 3, 3, 0, 0, 0, 0}, "batch count 0"},
        /* C [2,3] with ldc 3 spans 6 elements; stride 5 overlaps. */
        {{SL_GEMM_N, SL_GEMM_N, 2, 3, 4, 1, 0, m, m, m, 4, 3, 3, 2, 8, 12, 5}, "strideC 5"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        sl_gemm_call c;
        sl_error err = {0};
        int rc = sl_gemm_map(&bad[i].rq, &c, &err);
        CHECK(rc == SL_EINPUT && strstr(err.msg, bad[i].names), "refusal %zu: rc %d, message \"%s\", want \"%s\"", i,
              rc, err.msg, bad[i].names);
    }
}

#ifdef SEQLENS_CUDA
/* Whether a shared library whose name holds `name` is mapped into this process. */
static int mapped(const char *name)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[4096];
    int found = 0;
    while (f && fgets(line, sizeof line, f)) found |= strstr(line, name) != NULL;
    if (f) fclose(f);
    return found;
}

/* cuBLAS is loaded when a device opens, not at start (cuda/cublas_load.h). */
static void lazy_cublas(void)
{
    sl_error err = {0};
    CHECK(!mapped("libcublas"), "libcublas is not loaded at start");
    CHECK(sl_cublas_load(&err) == SL_OK, "cuBLAS loads on demand: %s", err.msg);
    CHECK(mapped("libcublas"), "and is then mapped");
    CHECK(sl_cublas_load(&err) == SL_OK, "a second call finds it loaded");
}
#endif

int main(void)
{
#ifdef SEQLENS_CUDA
    lazy_cublas();
#endif
    rng = sl_rng_seed(10);
    for (int trial = 0; trial < 25; trial++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (int batch = 1; batch <= 3; batch += 2) random_case(trial, ta, tb, batch);
    linear_case();
    hand_cases();
    refusals();
    return TEST_SUMMARY();
}
