#include "models/run.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/blas.h"
#include "core/dist.h"

int sl_default_threads(void) { return omp_get_max_threads(); }

static int uses_keep(const uint8_t *keep, int len)
{
    for (int t = 0; t < len; t++)
        if (!keep[t]) return 1;
    return 0;
}

int sl_run(const sl_model *m, sl_dataset *ds, const sl_run_opts *o, const sl_hooks *hooks, sl_batch_fn before,
           sl_batch_fn after, void *user, float *logits, sl_error *err)
{
    return sl_run_each(m, ds, o, hooks, before, after, user, NULL, NULL, logits, err);
}

int sl_run_each(const sl_model *m, sl_dataset *ds, const sl_run_opts *o, const sl_hooks *hooks, sl_batch_fn before,
                sl_batch_fn after, void *user, sl_example_fn fn, void *fn_user, float *logits, sl_error *err)
{
    if (o->first < 0 || o->count < 1 || o->first + o->count > ds->n)
        return sl_fail(err, SL_EINPUT, "%s: examples %ld:%ld are outside 0:%ld", ds->path, o->first,
                       o->first + o->count, ds->n);
    /* under MPI this rank runs its own shard; the logits of all shards are
     * gathered below (every rank ends with all of them) */
    long lo, n;
    sl_dist_shard(o->first, o->count, &lo, &n);
    int threads = o->threads > 0 ? o->threads : 1, B = o->batch > 0 ? o->batch : 1, L = ds->L;
    if (B > n) B = n > 0 ? (int)n : 1;
    sl_blas_single_thread();

    sl_workspace **ws = calloc((size_t)threads, sizeof *ws);
    int32_t *tokens = malloc((size_t)B * L * sizeof *tokens);
    uint8_t *keep = malloc((size_t)B * L);
    float *blogits = malloc((size_t)B * sizeof *blogits);
    int rc = ws && tokens && keep && blogits ? SL_OK : sl_fail(err, SL_ERUNTIME, "out of memory for a batch of %d", B);
    for (int t = 0; !rc && n > 0 && t < threads; t++)
        if (!(ws[t] = sl_workspace_new(m, L, err))) rc = err->code;

    for (long first = lo; !rc && first < lo + n; first += B) {
        int cnt = (int)(lo + n - first < B ? lo + n - first : B);
        sl_batch b = {first, cnt, L, tokens, keep, ds->lengths + first, ds->labels + first, blogits};
        rc = sl_dataset_read_tokens(ds, first, cnt, tokens, err);
        memset(keep, 1, (size_t)cnt * L);
        if (!rc && before) rc = before(user, &b, err);
        if (rc) break;
#pragma omp parallel num_threads(threads)
        {
            sl_error local = {0};
            sl_workspace *w = ws[omp_get_thread_num()];
#pragma omp for schedule(dynamic, 1)
            for (int e = 0; e < cnt; e++) {
                if (local.code) continue;
                const uint8_t *kp = keep + (long)e * L;
                sl_example ex = {tokens + (long)e * L, b.lengths[e], first + e, e,
                                 uses_keep(kp, b.lengths[e]) ? kp : NULL};
                if (fn) fn(fn_user, omp_get_thread_num(), &ex, w, &blogits[e], &local);
                else sl_forward(m, &ex, w, hooks, &blogits[e], &local);
            }
            if (local.code) {
#pragma omp critical
                if (!rc) {
                    rc = local.code;
                    *err = local;
                }
            }
        }
        if (!rc && after) rc = after(user, &b, err);
        if (!rc && logits) memcpy(logits + (first - o->first), blogits, (size_t)cnt * sizeof *logits);
    }
    rc = logits ? sl_dist_allgather_f32(rc, logits, o->first, o->count, 1, err) : sl_dist_agree(rc, err);
    for (int t = 0; ws && t < threads; t++) sl_workspace_free(ws[t]);
    free(ws);
    free(tokens);
    free(keep);
    free(blogits);
    return rc;
}
