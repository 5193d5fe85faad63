/* One example's gradient, timed: what an integrated-gradients step costs a
 * kernel change, without the command's other work. Loads MODEL and DATA,
 * takes example --example (default 0) at its own length, scales its
 * embedding by 0.53 (a point on the path from the zero baseline), runs
 * sl_gradient once untimed and then --reps times (default 30) on one
 * thread, and prints the best wall time with the logit and the sum of the
 * embedding gradient (in double): two builds whose lines differ in those
 * two numbers do not give the same bits. Alternate the binaries of an A/B
 * several times; a VM's speed drifts by more than most kernel changes.
 * Each rep also runs the example's forward pass (sl_forward, as eval runs
 * it): "forward_ms" is its best and "passes" the gradient's best over it,
 * what an integrated-gradients step costs in eval passes, the two timed
 * side by side so that the host's drift moves both. "mean_ms" is the
 * gradients' mean: what a command of many gradients pays, where the best
 * is what the kernels can do. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/blas.h"
#include "core/dataset.h"
#include "models/model.h"

int main(int argc, char **argv)
{
    sl_blas_pick_core(argv); /* OpenBLAS's kernels as bin/seqlens gets them */
    if (argc < 3) {
        fprintf(stderr, "usage: grad_time MODEL DATA [--example E] [--reps R]\n");
        return 2;
    }
    long e = 0;
    int reps = 30;
    for (int i = 3; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--example")) e = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
    }
    sl_h5_quiet();
    sl_model m;
    sl_dataset ds;
    sl_error err = {0};
    if (sl_model_load(&m, argv[1], &err) || sl_dataset_open(&ds, argv[2], m.c.vocab_size, m.c.pad_token_id, &err)) {
        fprintf(stderr, "grad_time: %s\n", err.msg);
        return err.code;
    }
    if (e < 0 || e >= ds.n || reps < 1) {
        fprintf(stderr, "grad_time: --example outside 0..%ld or --reps < 1\n", ds.n - 1);
        return 2;
    }
    sl_blas_single_thread();
    int32_t *tok = malloc(sizeof *tok * (size_t)ds.L);
    float *x = malloc(sizeof *x * (size_t)ds.L * m.c.d_model), logit = 0;
    sl_workspace *ws = tok && x ? sl_workspace_new(&m, ds.L, &err) : NULL;
    if (!ws || sl_dataset_read_tokens(&ds, e, 1, tok, &err)) {
        fprintf(stderr, "grad_time: %s\n", ws ? err.msg : "out of memory");
        return 1;
    }
    sl_example ex = {tok, ds.lengths[e], e, 0, NULL};
    long n = (long)ex.len * m.c.d_model;
    if (sl_embed(&m, &ex, ws, x, &err)) {
        fprintf(stderr, "grad_time: %s\n", err.msg);
        return 1;
    }
    for (long k = 0; k < n; k++) x[k] *= 0.53f;
    double best = 1e30, fbest = 1e30, sum = 0, total = 0;
    for (int r = 0; r <= reps; r++) { /* rep 0 warms up */
        double t0 = omp_get_wtime();
        if (sl_gradient(&m, &ex, ws, x, &logit, NULL, &err)) {
            fprintf(stderr, "grad_time: %s\n", err.msg);
            return 1;
        }
        double dt = omp_get_wtime() - t0;
        if (r > 0) total += dt;
        if (r > 0 && dt < best) best = dt;
        if (r == 0) { /* read before the forward pass below reuses the workspace */
            const float *g = sl_gradient_embed(ws);
            for (long k = 0; k < n; k++) sum += g[k];
        }
        float flogit;
        t0 = omp_get_wtime();
        if (sl_forward(&m, &ex, ws, NULL, &flogit, &err)) {
            fprintf(stderr, "grad_time: %s\n", err.msg);
            return 1;
        }
        dt = omp_get_wtime() - t0;
        if (r > 0 && dt < fbest) fbest = dt;
    }
    printf("{\"example\": %ld, \"len\": %d, \"best_ms\": %.3f, \"reps\": %d, \"logit\": %.9g, \"grad_sum\": %.12g, "
           "\"forward_ms\": %.3f, \"passes\": %.3f, \"mean_ms\": %.3f}\n",
           e, ex.len, best * 1e3, reps, logit, sum, fbest * 1e3, best / fbest, total / reps * 1e3);
    sl_workspace_free(ws);
    free(tok);
    free(x);
    sl_dataset_close(&ds);
    sl_model_free(&m);
    return 0;
}
