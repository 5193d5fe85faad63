/* The seqlens side of bench/run.sh: a family-ablation-like sweep. Pass 0 is
 * the baseline; pass k zeroes the token embedding (before the positional
 * term) at every position of family k-1. Prints one JSON line with the best
 * wall time of --reps sweeps and the logits of the last one. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/blas.h"
#include "core/dataset.h"
#include "models/backend.h"
#include "models/run.h"

/* Pass k > 0 marks the positions of family k-1: the row replacement hook
 * (zeros) then clears their token embedding, on the device without a copy
 * out and back, as `seqlens ablate --family` does. */
typedef struct {
    const sl_dataset *ds;
    int family;
    uint8_t *mask; /* [batch][L] */
} family_mask;

static int mark_family(void *user, sl_batch *b, sl_error *err)
{
    (void)err;
    family_mask *f = user;
    for (int e = 0; e < b->count; e++)
        for (int t = 0; t < b->L; t++)
            f->mask[(long)e * b->L + t] = t < b->lengths[e] && f->ds->family_of_token[b->tokens[(long)e * b->L + t]] == f->family;
    return SL_OK;
}

int main(int argc, char **argv)
{
    sl_blas_pick_core(argv); /* OpenBLAS's kernels as bin/seqlens gets them */
    if (argc < 3) {
        fprintf(stderr, "usage: bench_sweep MODEL DATA [--threads T] [--passes P] [--reps R] [--batch B] [--device cpu|cuda]\n");
        return 2;
    }
    int threads = 2, passes = 6, reps = 3, batch = 0, cuda = 0;
    for (int i = 3; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--passes")) passes = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--batch")) batch = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--device")) cuda = !strcmp(argv[i + 1], "cuda");
    }
    sl_h5_quiet();
    sl_model m;
    sl_dataset ds;
    sl_error err = {0};
    if (sl_model_load(&m, argv[1], &err) || sl_dataset_open(&ds, argv[2], m.c.vocab_size, m.c.pad_token_id, &err)) {
        fprintf(stderr, "bench_sweep: %s\n", err.msg);
        return err.code;
    }
    float *logits = malloc((size_t)passes * ds.n * sizeof *logits);
    sl_run_opts o = {.count = ds.n, .batch = batch ? batch : (int)ds.n, .threads = threads};
    if (cuda) { /* the device backend as `seqlens --device cuda` opens it (cli/session.c) */
        const sl_backend_kind *k = sl_backend_kind_find("cuda");
        sl_backend_want w = {batch, ds.L, 0};
        if (!k) sl_fail(&err, SL_EINPUT, "no backend named cuda");
        if (!k || k->accept(&err) || !(o.backend = k->open(&m, &w, &err))) {
            fprintf(stderr, "bench_sweep: %s\n", err.msg);
            return err.code;
        }
        o.batch = o.backend->max_batch;
        fprintf(stderr, "bench_sweep: %s, batch %d\n", o.backend->name, o.batch);
    } else if (!(o.backend = sl_backend_cpu(&m, threads, o.batch, ds.L, &err))) {
        /* the CPU's backend too, once, as `seqlens` opens it for a command (cli/session.c) */
        fprintf(stderr, "bench_sweep: %s\n", err.msg);
        return err.code;
    }
    uint8_t *mask = malloc((size_t)o.batch * ds.L);
    double best = 1e30;
    for (int r = 0; r <= reps; r++) { /* rep 0 warms up */
        double t0 = omp_get_wtime();
        for (int p = 0; p < passes; p++) {
            sl_hooks hooks;
            family_mask f = {&ds, p - 1, mask};
            sl_row_replace zero = {mask, ds.L, NULL};
            sl_hooks_init(&hooks, m.n_points, &err);
            if (p > 0) sl_hooks_add_replace(&hooks, sl_model_point(&m, HK_EMBED_TOKENS, -1), &zero, &err);
            if (sl_run(&m, &ds, &o, &hooks, p > 0 ? mark_family : NULL, NULL, &f, logits + (long)p * ds.n, &err)) {
                fprintf(stderr, "bench_sweep: %s\n", err.msg);
                return err.code;
            }
            sl_hooks_free(&hooks);
        }
        double dt = omp_get_wtime() - t0;
        if (r > 0 && dt < best) best = dt;
    }
    printf("{\"seconds\": %.6f, \"passes\": %d, \"threads\": %d, \"device\": \"%s\", \"logits\": [", best, passes, threads,
           o.backend ? o.backend->name : "cpu");
    for (long i = 0; i < passes * ds.n; i++) printf("%s%.7g", i ? ", " : "", logits[i]);
    printf("]}\n");
    free(logits);
    free(mask);
    sl_backend_free(o.backend);
    sl_dataset_close(&ds);
    sl_model_free(&m);
    return 0;
}
