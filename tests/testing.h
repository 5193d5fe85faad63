/* A minimal test harness: CHECK counts, reports failures with their place,
 * and TEST_SUMMARY prints the "N passed, N failed" line tests/run.sh sums. */
#ifndef SL_TESTING_H
#define SL_TESTING_H

#include <math.h>
#include <stddef.h>
#include <stdio.h>

#include "core/blas.h"

static int tests_passed, tests_failed;

/* Every test runs BLAS as a backend does (models/run.c), before main:
 * single-threaded, with OpenMP free to use every core. A test that calls a
 * model directly would otherwise get OpenBLAS's own threads, which split a
 * product's rows where the row count says and so round a restarted pass
 * otherwise than a whole one, and Debian's OpenBLAS would pin its OpenMP
 * threads to the main thread's core. */
__attribute__((constructor)) static void blas_as_seqlens_runs_it(void)
{
    sl_blas_single_thread();
}

#define CHECK(cond, ...)                                                                                               \
    do {                                                                                                               \
        if (cond) {                                                                                                    \
            tests_passed++;                                                                                            \
        } else {                                                                                                       \
            tests_failed++;                                                                                            \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                                       \
            fprintf(stderr, __VA_ARGS__);                                                                              \
            fputc('\n', stderr);                                                                                       \
        }                                                                                                              \
    } while (0)

/* max |got - want| over max |want| (the absolute error when want is all
 * zero); a NaN anywhere makes it NaN, which fails any <= test. */
static inline double rel_err(const float *got, const float *want, size_t n)
{
    double diff = 0, scale = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - want[i]);
        if (!(e <= diff)) diff = e;
        if (fabs(want[i]) > scale) scale = fabs(want[i]);
    }
    return scale > 0 ? diff / scale : diff;
}

/* dir/name holding text; a file that cannot be written makes the check
 * that reads it fail. */
static inline void write_text_in(const char *dir, const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

#define TEST_SUMMARY()                                                                                                 \
    (printf("%d passed, %d failed\n", tests_passed, tests_failed), tests_failed ? 1 : 0)

#endif
