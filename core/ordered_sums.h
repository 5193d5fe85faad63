/* Sums over the examples of the data that neither the thread count nor the
 * number of MPI ranks can change: each example's sums are kept per batch
 * slot, then added in example order on the calling thread
 * (sl_ordered_sums_add is sl_run's after-batch callback, with the sums as
 * its user pointer). Under MPI, rank 0 adds its examples as they come and
 * the other ranks keep theirs per example, unadded, until
 * sl_ordered_sums_finish passes the running total along the ranks in order
 * (core/dist.h): the result is the one-process sum bit for bit. */
#ifndef SL_ORDERED_SUMS_H
#define SL_ORDERED_SUMS_H

#include <stddef.h>

#include "core/batch.h"
#include "core/error.h"

typedef struct {
    long width;    /* values summed per example */
    double *slot;  /* [batch slot][width] */
    double *total; /* [width] */
    long positions;
    double *rows;  /* MPI ranks > 0: [nrows][width], this rank's examples in order */
    long nrows, cap;
} sl_ordered_sums;

int sl_ordered_sums_init(sl_ordered_sums *s, int batch, long width, sl_error *err);
static inline double *sl_ordered_sums_at(const sl_ordered_sums *s, int slot)
{
    return s->slot + (size_t)slot * s->width;
}
int sl_ordered_sums_add(void *sums, sl_batch *b, sl_error *err);
/* After the run, on every rank (collective under MPI): total and positions
 * then cover all examples. rc: this rank's status so far. */
int sl_ordered_sums_finish(int rc, sl_ordered_sums *s, sl_error *err);
/* mean[width] = total / positions. */
void sl_ordered_sums_mean(const sl_ordered_sums *s, float *mean);
void sl_ordered_sums_free(sl_ordered_sums *s);

#endif
