#include "ablation/variants.h"

#include <stdlib.h>
#include <string.h>

#include "core/dist.h"

typedef struct {
    sl_backend *be;
    const sl_variant *v;
    int n, batch;
    sl_variant_edit edit;
    void *user;
    float *out; /* [variant][batch slot] */
    float *logits;
    long first, count;
} variant_job;

static int variants_batch(void *user, sl_batch *b, sl_error *err)
{
    variant_job *j = user;
    return j->be->ops->variants(j->be, b, j->v, j->n, j->edit, j->user, b->logits, j->out, j->batch, err);
}

/* Batch results in example order on the calling thread. */
static int collect(void *user, sl_batch *b, sl_error *err)
{
    (void)err;
    variant_job *j = user;
    for (int k = 0; k < j->n; k++)
        for (int e = 0; e < b->count; e++)
            j->logits[(long)k * j->count + (b->first - j->first) + e] = j->out[(long)k * j->batch + e];
    return SL_OK;
}

int sl_run_variants(const sl_model *m, sl_dataset *ds, const sl_run_opts *o, const sl_variant *v, int n,
                    sl_variant_edit edit, void *user, float *base, float *logits, sl_error *err)
{
    sl_run_opts ro;
    sl_backend *made;
    int rc = sl_run_backend(m, ds->L, o, &ro, &made, err);
    if (ro.batch > o->count) ro.batch = (int)o->count;
    variant_job j = {ro.backend, v, n, ro.batch > 0 ? ro.batch : 1, edit, user, NULL, logits, o->first, o->count};
    if (!rc && !(j.out = malloc((size_t)(n ? n : 1) * j.batch * sizeof *j.out)))
        rc = sl_fail(err, SL_ERUNTIME, "out of memory");
    /* a rank that cannot start still meets the others' first collective */
    rc = rc ? sl_dist_agree(rc, err) : sl_run_batches(ds, &ro, NULL, variants_batch, &j, collect, &j, base, err);
    /* under MPI each rank filled its shard's columns of every variant */
    for (int k = 0; k < n; k++) rc = sl_dist_allgather_f32(rc, logits + (long)k * o->count, o->first, o->count, 1, err);
    free(j.out);
    sl_backend_free(made);
    return rc;
}
