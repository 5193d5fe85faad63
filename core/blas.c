#include "core/blas.h"

#include <cblas.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
extern char *openblas_get_corename(void) __attribute__((weak));

void sl_blas_pick_core(char **argv)
{
    if (!openblas_get_corename || getenv("OPENBLAS_CORETYPE")) return;
    const char *core = openblas_get_corename();
    __builtin_cpu_init();
    if (!core || strcmp(core, "Prescott") || !__builtin_cpu_is("intel") || !__builtin_cpu_supports("avx512f")
        || !__builtin_cpu_supports("avx512bw") || !__builtin_cpu_supports("avx512dq")
        || !__builtin_cpu_supports("avx512vl"))
        return;
    if (setenv("OPENBLAS_CORETYPE", "SkylakeX", 1) == 0) execv("/proc/self/exe", argv);
    unsetenv("OPENBLAS_CORETYPE"); /* exec failed: carry on with Prescott */
}

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
