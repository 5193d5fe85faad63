#include "core/blas.h"

#include <cblas.h>
#include <sched.h>

void sl_linear(const float *x, int ldx, int rows, int in, const float *W, const float *b, int out, float *y, int ldy)
{
    if (rows <= 0) return;
    if (b)
        for (int r = 0; r < rows; r++)
            for (int o = 0; o < out; o++) y[(long)r * ldy + o] = b[o];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, out, in, 1.0f, x, ldx, W, in, b ? 1.0f : 0.0f, y,
                ldy);
}

/* Weak, so that a CBLAS other than OpenBLAS links too. */
extern void openblas_set_num_threads(int n) __attribute__((weak));

void sl_blas_single_thread(void)
{
    if (openblas_set_num_threads) openblas_set_num_threads(1);
    /* Debian's OpenBLAS pins the main thread to one core when it loads, and
     * OpenMP's threads inherit that mask: every "parallel" thread then shares
     * core 0. Widen the mask again; the kernel keeps it within the cpuset. */
    cpu_set_t all;
    CPU_ZERO(&all);
    for (int c = 0; c < CPU_SETSIZE; c++) CPU_SET(c, &all);
    sched_setaffinity(0, sizeof all, &all);
}

const char *sl_blas_name(void)
{
#ifdef OPENBLAS_VERSION
    return OPENBLAS_VERSION;
#else
    return "CBLAS";
#endif
}
