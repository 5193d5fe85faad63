/* Prefix reuse for interventions inside the network: every example runs
 * once with the residual stream kept at each block's input (and after the
 * last block); each variant then restores one of those, may edit it, and
 * restarts at a block of its choice with its own hooks. The blocks below
 * never run twice. Layer and component ablation are both variants. */
#ifndef SL_VARIANTS_H
#define SL_VARIANTS_H

#include "core/dataset.h"
#include "models/model.h"
#include "models/run.h"

/* base [o->count] receives the unmodified logits, logits [n][o->count]
 * each variant's. edit may be NULL. */
int sl_run_variants(const sl_model *m, sl_dataset *ds, const sl_run_opts *o, const sl_variant *v, int n,
                    sl_variant_edit edit, void *user, float *base, float *logits, sl_error *err);

/* Means over the valid positions of the data that the thread count cannot
 * change: each example's sums are kept per batch slot, then added in
 * example order on the calling thread (sl_ordered_sums_add is sl_run's
 * after-batch callback, with the sums as its user pointer). */
typedef struct {
    long width;    /* values summed per example */
    double *slot;  /* [batch slot][width] */
    double *total; /* [width] */
    long positions;
} sl_ordered_sums;

int sl_ordered_sums_init(sl_ordered_sums *s, int batch, long width, sl_error *err);
static inline double *sl_ordered_sums_at(const sl_ordered_sums *s, int slot)
{
    return s->slot + (size_t)slot * s->width;
}
int sl_ordered_sums_add(void *sums, sl_batch *b, sl_error *err);
/* mean[width] = total / positions. */
void sl_ordered_sums_mean(const sl_ordered_sums *s, float *mean);
void sl_ordered_sums_free(sl_ordered_sums *s);

#endif
