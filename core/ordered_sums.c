#include "core/ordered_sums.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/dist.h"

int sl_ordered_sums_init(sl_ordered_sums *s, int batch, long width, sl_error *err)
{
    memset(s, 0, sizeof *s);
    s->width = width;
    s->slot = calloc((size_t)(batch > 0 ? batch : 1) * width, sizeof *s->slot);
    s->total = calloc((size_t)(width ? width : 1), sizeof *s->total);
    return s->slot && s->total ? SL_OK : sl_fail(err, SL_ERUNTIME, "out of memory");
}

/* Ranks after the first cannot add yet: the examples before theirs come
 * first in the one-process order. */
static int keep_row(sl_ordered_sums *s, const double *x, sl_error *err)
{
    if (s->nrows == s->cap) {
        long cap = s->cap ? 2 * s->cap : 64;
        double *r = realloc(s->rows, (size_t)cap * s->width * sizeof *r);
        if (!r) return sl_fail(err, SL_ERUNTIME, "out of memory keeping %ld examples' sums", cap);
        s->rows = r;
        s->cap = cap;
    }
    memcpy(s->rows + (size_t)s->nrows++ * s->width, x, (size_t)s->width * sizeof *x);
    return SL_OK;
}

int sl_ordered_sums_add(void *sums, sl_batch *b, sl_error *err)
{
    sl_ordered_sums *s = sums;
    int first = sl_dist_root();
    for (int e = 0; e < b->count; e++) {
        s->positions += b->lengths[e];
        double *x = sl_ordered_sums_at(s, e);
        if (first) {
            for (long k = 0; k < s->width; k++) s->total[k] += x[k];
        } else if (keep_row(s, x, err)) {
            return err->code;
        }
        memset(x, 0, (size_t)s->width * sizeof *x);
    }
    return SL_OK;
}

int sl_ordered_sums_finish(int rc, sl_ordered_sums *s, sl_error *err)
{
    int64_t positions = s->positions;
    rc = sl_dist_sum_i64(rc, &positions, 1, err);
    rc = sl_dist_ordered_sum(rc, s->total, s->rows, s->nrows, s->width, err);
    s->positions = (long)positions;
    return rc;
}

void sl_ordered_sums_mean(const sl_ordered_sums *s, float *mean)
{
    for (long k = 0; k < s->width; k++) mean[k] = (float)(s->total[k] / (double)s->positions);
}

void sl_ordered_sums_free(sl_ordered_sums *s)
{
    free(s->slot);
    free(s->total);
    free(s->rows);
    s->slot = s->total = s->rows = NULL;
}
