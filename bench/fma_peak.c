/* fma_peak: the cores' measured float FMA rate, the ceiling under every kernel (sgemm_peak gives
 * what OpenBLAS reaches of it).
 *
 * Each thread runs 12 independent chains of a = a * m + c on vectors of the widest width the build
 * targets (32 bytes with AVX2, 64 with AVX-512), enough chains to cover the FMA latency on every
 * current x86 core, so that only the FMA pipes bound the rate. Prints one JSON object: the best
 * of --reps timed runs, in vector FMAs a second and GFLOP/s (2 per lane), in all and per thread.
 *
 * Build: cc -O3 -march=native -ffp-contract=fast -fopenmp -o build/bench/fma_peak bench/fma_peak.c
 * Usage: fma_peak [--threads T] [--reps R]   (defaults 1 and 5)
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__AVX512F__)
#define LANES 16
#else
#define LANES 8
#endif
typedef float vec __attribute__((vector_size(LANES * sizeof(float))));

enum { CHAINS = 12 };
#define STEPS 50000000L

/* STEPS x CHAINS dependent-by-chain FMAs; the sum keeps them from being dropped. */
static float run_chains(float seed)
{
    vec a[CHAINS], m, c;
    for (int l = 0; l < LANES; l++) m[l] = 0.9999f, c[l] = 1e-4f;
    for (int k = 0; k < CHAINS; k++)
        for (int l = 0; l < LANES; l++) a[k][l] = seed + 1e-3f * (float)(k * LANES + l);
    for (long i = 0; i < STEPS; i++)
#pragma GCC unroll 12
        for (int k = 0; k < CHAINS; k++) a[k] = a[k] * m + c;
    float s = 0.0f;
    for (int k = 0; k < CHAINS; k++)
        for (int l = 0; l < LANES; l++) s += a[k][l];
    return s;
}

int main(int argc, char **argv)
{
    int threads = 1, reps = 5;
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && !strcmp(argv[i], "--threads")) threads = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--reps")) reps = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: fma_peak [--threads T] [--reps R]\n");
            return 2;
        }
    }
    if (threads < 1 || reps < 1) {
        fprintf(stderr, "fma_peak: --threads and --reps must be >= 1\n");
        return 2;
    }
    double best = 1e30, check = 0.0;
    for (int r = 0; r < reps; r++) {
        double t0 = omp_get_wtime();
#pragma omp parallel num_threads(threads) reduction(+ : check)
        check += run_chains((float)omp_get_thread_num());
        double t = omp_get_wtime() - t0;
        if (t < best) best = t;
    }
    double fmas = (double)STEPS * CHAINS * threads / best;
    printf("{\"lanes\": %d, \"threads\": %d, \"vector_fma_per_s\": %.4g, \"gflops\": %.2f, "
           "\"gflops_per_thread\": %.2f, \"best_s\": %.4f, \"check\": %.6g}\n",
           LANES, threads, fmas, fmas * 2.0 * LANES / 1e9, fmas * 2.0 * LANES / 1e9 / threads, best, check);
    return 0;
}
