/* Where does the decision draw its evidence from? Per-token attribution of
 * the logit to `embed` (summed over the model dimension, absolute value per
 * token), gathered per token family and by distance from the sequence end
 * (design.md section 5, `attribute`). */
#ifndef SL_ATTRIBUTE_H
#define SL_ATTRIBUTE_H

#include "core/dataset.h"
#include "models/model.h"
#include "models/run.h"

enum { ATTR_GRAD_INPUT, ATTR_IG };
enum { BASELINE_PAD, BASELINE_ZERO };

/* Distances from the end are bucketed by powers of two: 0, 1, 2-3, 4-7, ... */
#define SL_DISTANCE_BUCKETS 32

typedef struct {
    int method, steps, baseline;
    int bootstrap;  /* resamples of the examples for the families' ci95; 0: none */
    uint64_t seed;
    /* [o->count] each run example's logit as eval computed it, or NULL:
     * ig then needs no forward pass of its own for it (the CPU computes
     * each example alone, so the bits are the same) */
    const float *logits;
} sl_attr_opts;

typedef struct {
    long n, valid;
    int n_families;
    double total;          /* sum of |attribution| over valid tokens */
    double *family_abs;    /* [F] */
    long *family_count;    /* [F] */
    double bucket_abs[SL_DISTANCE_BUCKETS];
    long bucket_count[SL_DISTANCE_BUCKETS];
    /* ig: |sum of attributions - (logit - baseline logit)| over examples */
    double completeness_mean, completeness_max, completeness_relative_mean;
    /* [F][2]: percentile bootstrap 95% intervals over examples of each
     * family's attribution share and ratio; NaN without resamples */
    double *share_ci, *ratio_ci;
} sl_attr_result;

/* Receives each batch's signed attribution per position: rows [count, L]
 * (0 beyond each length) for examples row..row+count-1 of the selection. */
typedef int (*sl_attr_tokens_fn)(void *user, long row, int count, int L, const float *attr, sl_error *err);

/* tokens_fn may be NULL. */
int sl_attribute(const sl_model *m, sl_dataset *ds, const sl_run_opts *o, const sl_attr_opts *ao, sl_attr_result *out,
                 sl_attr_tokens_fn tokens_fn, void *tokens_user, sl_error *err);
void sl_attr_result_free(sl_attr_result *r);

#endif
