#include "models/run.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/blas.h"
#include "core/dist.h"
#include "core/metrics.h"
#include "cuda/device_model.h"

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

int sl_run_batches(sl_dataset *ds, const sl_run_opts *o, sl_batch_fn before, sl_batch_work work, void *work_user,
                   sl_batch_fn after, void *user, float *logits, sl_error *err)
{
    if (o->first < 0 || o->count < 1 || o->first + o->count > ds->n)
        return sl_fail(err, SL_EINPUT, "%s: examples %ld:%ld are outside 0:%ld", ds->path, o->first,
                       o->first + o->count, ds->n);
    /* under MPI this rank runs its own shard; the logits of all shards are
     * gathered below (every rank ends with all of them) */
    long lo, n;
    sl_dist_shard(o->first, o->count, &lo, &n);
    int B = o->batch > 0 ? o->batch : 1, L = ds->L;
    if (B > n) B = n > 0 ? (int)n : 1;
    int32_t *tokens = malloc((size_t)B * L * sizeof *tokens);
    uint8_t *keep = malloc((size_t)B * L);
    float *blogits = malloc((size_t)B * sizeof *blogits);
    int rc = tokens && keep && blogits ? SL_OK : sl_fail(err, SL_ERUNTIME, "out of memory for a batch of %d", B);
    for (long first = lo; !rc && first < lo + n; first += B) {
        int cnt = (int)(lo + n - first < B ? lo + n - first : B);
        sl_batch b = {first, cnt, L, tokens, keep, ds->lengths + first, ds->labels ? ds->labels + first : NULL, blogits};
        rc = sl_dataset_read_tokens(ds, first, cnt, tokens, err);
        memset(keep, 1, (size_t)cnt * L);
        if (!rc && before) rc = before(user, &b, err);
        if (!rc) rc = work(work_user, &b, err);
        if (!rc && after) rc = after(user, &b, err);
        if (!rc && logits) memcpy(logits + (first - o->first), blogits, (size_t)cnt * sizeof *logits);
    }
    rc = logits ? sl_dist_allgather_f32(rc, logits, o->first, o->count, 1, err) : sl_dist_agree(rc, err);
    /* every rank holds all the logits now, so all fail alike */
    if (!rc && logits) {
        char what[4200];
        snprintf(what, sizeof what, "the model, run on %s,", ds->path);
        rc = sl_check_logits(logits, o->count, o->first, what, err);
    }
    free(tokens);
    free(keep);
    free(blogits);
    return rc;
}

/* One batch on the CPU: its examples in parallel, a workspace per thread. */
typedef struct {
    const sl_model *m;
    const sl_hooks *hooks;
    sl_example_fn fn;
    void *fn_user;
    sl_workspace **ws;
    int threads;
} cpu_work;

static int cpu_batch(void *user, sl_batch *b, sl_error *err)
{
    const cpu_work *w = user;
    int rc = SL_OK, L = b->L;
#pragma omp parallel num_threads(w->threads)
    {
        sl_error local = {0};
        sl_workspace *ws = w->ws[omp_get_thread_num()];
#pragma omp for schedule(dynamic, 1)
        for (int e = 0; e < b->count; e++) {
            if (local.code) continue;
            const uint8_t *kp = b->keep + (long)e * L;
            sl_example ex = {b->tokens + (long)e * L, b->lengths[e], b->first + e, e,
                             uses_keep(kp, b->lengths[e]) ? kp : NULL};
            if (w->fn) w->fn(w->fn_user, omp_get_thread_num(), &ex, ws, &b->logits[e], &local);
            else sl_forward(w->m, &ex, ws, w->hooks, &b->logits[e], &local);
        }
        if (local.code) {
#pragma omp critical
            if (!rc) {
                rc = local.code;
                *err = local;
            }
        }
    }
    return rc;
}

typedef struct {
    struct sl_dev_model *dev;
    const sl_hooks *hooks;
} dev_work;

static int dev_batch(void *user, sl_batch *b, sl_error *err)
{
    const dev_work *w = user;
    return sl_dev_forward(w->dev, b->count, b->L, b->tokens, b->keep, b->lengths, b->first, w->hooks, b->logits, err);
}

int sl_run_each(const sl_model *m, sl_dataset *ds, const sl_run_opts *o, const sl_hooks *hooks, sl_batch_fn before,
                sl_batch_fn after, void *user, sl_example_fn fn, void *fn_user, float *logits, sl_error *err)
{
    sl_blas_single_thread();
    /* per-example work (fn) has no device form: it stays on the CPU */
    if (o->dev && !fn) {
        int rc = sl_dev_model_check(o->dev, m, err);
        if (rc) return rc;
        sl_run_opts d = *o;
        if (d.batch > sl_dev_model_max_batch(o->dev)) d.batch = sl_dev_model_max_batch(o->dev);
        dev_work w = {o->dev, hooks};
        return sl_run_batches(ds, &d, before, dev_batch, &w, after, user, logits, err);
    }
    int threads = o->threads > 0 ? o->threads : 1;
    cpu_work w = {m, hooks, fn, fn_user, calloc((size_t)threads, sizeof(sl_workspace *)), threads};
    int rc = w.ws ? SL_OK : sl_fail(err, SL_ERUNTIME, "out of memory");
    for (int t = 0; !rc && t < threads; t++)
        if (!(w.ws[t] = sl_workspace_new(m, ds->L, err))) rc = err->code;
    /* a rank that cannot start still meets the others' first collective */
    rc = rc ? sl_dist_agree(rc, err) : sl_run_batches(ds, o, before, cpu_batch, &w, after, user, logits, err);
    for (int t = 0; w.ws && t < threads; t++) sl_workspace_free(w.ws[t]);
    free(w.ws);
    return rc;
}
