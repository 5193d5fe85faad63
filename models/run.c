#include "models/run.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/blas.h"
#include "core/dist.h"
#include "core/metrics.h"

int sl_default_threads(void) { return omp_get_max_threads(); }

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
        sl_batch b = {first, cnt, L, tokens, keep, ds->lengths + first, ds->labels ? ds->labels + first : NULL, blogits, NULL};
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

int sl_run_backend(const sl_model *m, int max_len, const sl_run_opts *o, sl_run_opts *opts, sl_backend **made,
                   sl_error *err)
{
    *opts = *o;
    *made = NULL;
    sl_blas_single_thread(); /* a backend's parallelism is its own: a threaded BLAS inside would oversubscribe */
    if (opts->batch < 1) opts->batch = 1;
    if (o->backend) {
        if (opts->batch > o->backend->max_batch) opts->batch = o->backend->max_batch;
        return sl_backend_check(o->backend, m, err);
    }
    if (!(*made = sl_backend_cpu(m, o->threads, opts->batch, max_len, err))) return err->code;
    opts->backend = *made;
    return SL_OK;
}

typedef struct {
    sl_backend *be;
    const sl_hooks *hooks;
} forward_work;

static int forward_batch(void *user, sl_batch *b, sl_error *err)
{
    const forward_work *w = user;
    return w->be->ops->forward(w->be, b, w->hooks, b->logits, err);
}

int sl_run(const sl_model *m, sl_dataset *ds, const sl_run_opts *o, const sl_hooks *hooks, sl_batch_fn before,
           sl_batch_fn after, void *user, float *logits, sl_error *err)
{
    sl_run_opts ro;
    sl_backend *made;
    int rc = sl_run_backend(m, ds->L, o, &ro, &made, err);
    forward_work w = {ro.backend, hooks};
    /* a rank that cannot start still meets the others' first collective */
    rc = rc ? sl_dist_agree(rc, err) : sl_run_batches(ds, &ro, before, forward_batch, &w, after, user, logits, err);
    sl_backend_free(made);
    return rc;
}
