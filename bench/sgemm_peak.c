/* sgemm_peak: the machine's measured single-precision GEMM rate, the yardstick that bench/run.sh
 * divides seqlens' achieved GFLOP/s by.
 *
 * Times cblas_sgemm (row-major, C = A·B, A [M,K], B [K,N]) at three shapes:
 *   2048×2048×2048   the square peak;
 *   2048×2048×64     attention-shaped (scores of one 2,048-token sequence at d = 64);
 *   16384×64×64      projection-shaped (a d×d projection of 8 × 2,048 tokens).
 * OpenBLAS runs with the thread count given (openblas_set_num_threads), so the peak matches the
 * thread count of the benchmark. Prints one JSON object.
 *
 * Build: cc -O2 -D_GNU_SOURCE -I. -o build/bench/sgemm_peak bench/sgemm_peak.c core/blas.c -lopenblas
 * Usage: sgemm_peak [--threads T]   (default 2)
 */
#define _POSIX_C_SOURCE 199309L
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/blas.h"

typedef struct {
    const char *name;
    int m, n, k;
} Shape;

static const Shape SHAPES[] = {
    {"square_2048", 2048, 2048, 2048},
    {"attention_2048x2048x64", 2048, 2048, 64},
    {"projection_16384x64x64", 16384, 64, 64},
};

/* Each shape is timed for at least this long (after one untimed call), and at least MIN_REPS
 * times. The best single call is the peak (the usual reading on a shared machine); the median is
 * printed beside it to show how far a typical call falls short. */
#define MIN_SECONDS 1.0
#define MIN_REPS 5
#define MAX_REPS 100000

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Values in [-0.5, 0.5) from a 32-bit LCG: any finite data will do, but not denormals or zeros. */
static float *random_matrix(size_t count, unsigned *seed) {
    float *a = malloc(count * sizeof *a);
    if (!a) {
        fprintf(stderr, "sgemm_peak: out of memory allocating %zu floats\n", count);
        exit(1);
    }
    for (size_t i = 0; i < count; i++) {
        *seed = *seed * 1664525u + 1013904223u;
        a[i] = (float)(*seed >> 8) / 16777216.0f - 0.5f;
    }
    return a;
}

static void sgemm(const Shape *s, const float *a, const float *b, float *c) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->m, s->n, s->k,
                1.0f, a, s->k, b, s->n, 0.0f, c, s->n);
}

static int compare_doubles(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

typedef struct {
    double best, median;
    int reps;
} Timing;

/* Wall times of single calls, in seconds. */
static Timing time_shape(const Shape *s) {
    static double times[MAX_REPS];
    unsigned seed = 12345;
    float *a = random_matrix((size_t)s->m * s->k, &seed);
    float *b = random_matrix((size_t)s->k * s->n, &seed);
    float *c = random_matrix((size_t)s->m * s->n, &seed);
    sgemm(s, a, b, c); /* warm-up: thread start, page faults, caches */
    int reps = 0;
    double start = now();
    while (reps < MAX_REPS && (reps < MIN_REPS || now() - start < MIN_SECONDS)) {
        double t0 = now();
        sgemm(s, a, b, c);
        times[reps++] = now() - t0;
    }
    free(a);
    free(b);
    free(c);
    qsort(times, (size_t)reps, sizeof times[0], compare_doubles);
    return (Timing){times[0], times[reps / 2], reps};
}

static int parse_threads(int argc, char **argv) {
    int threads = 2;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            char *end;
            long t = strtol(argv[++i], &end, 10);
            if (*end != '\0' || t < 1 || t > 1024) {
                fprintf(stderr, "sgemm_peak: --threads: expected an integer 1..1024, got '%s'\n", argv[i]);
                exit(2);
            }
            threads = (int)t;
        } else {
            fprintf(stderr, "sgemm_peak: unknown argument '%s' (usage: sgemm_peak [--threads T])\n", argv[i]);
            exit(2);
        }
    }
    return threads;
}

int main(int argc, char **argv) {
    sl_blas_pick_core(argv); /* the kernels bin/seqlens runs: its peak, not a fallback's */
    int threads = parse_threads(argc, argv);
    openblas_set_num_threads(threads);
    printf("{\"threads\": %d, \"openblas_threads\": %d, \"openblas_config\": \"%s\", \"openblas_core\": \"%s\"",
           threads, openblas_get_num_threads(), openblas_get_config(), openblas_get_corename());
    for (size_t i = 0; i < sizeof SHAPES / sizeof SHAPES[0]; i++) {
        const Shape *s = &SHAPES[i];
        Timing t = time_shape(s);
        double gflop = 2.0 * s->m * s->n * s->k * 1e-9;
        printf(", \"%s\": {\"m\": %d, \"n\": %d, \"k\": %d, \"reps\": %d, \"seconds\": %.6g, "
               "\"gflops\": %.1f, \"median_gflops\": %.1f}",
               s->name, s->m, s->n, s->k, t.reps, t.best, gflop / t.best, gflop / t.median);
        fflush(stdout);
    }
    printf("}\n");
    return 0;
}
