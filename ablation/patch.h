/* Interchange interventions (activation patching): a base example run with
 * one hook's activation at one position taken from a source example's run.
 * Each (hook, position) costs one partial forward pass per pair, from the
 * patched layer up: the base's residual stream below it is kept. */
#ifndef SL_PATCH_H
#define SL_PATCH_H

#include <stdint.h>

#include "core/dataset.h"
#include "models/model.h"

typedef struct {
    const int *points; /* hook point ids */
    int n_points;
    const int *positions; /* >= 0 absolute, < 0 from each example's end (-1 = last valid) */
    int n_positions;
    const long *pairs; /* [n_pairs][2] (base, source) dataset indices */
    long n_pairs;
    int threads, bootstrap;
    uint64_t seed;
    struct sl_backend *backend; /* where the pairs run; NULL: the CPU, threads at a time */
    int batch;                  /* pairs per backend call; 0: 4 per thread */
} sl_patch_opts;

typedef struct {
    long n_pairs;
    float *base, *source; /* [n_pairs] logits */
    float *patched;       /* [n_pairs][n_points][n_positions]; NaN where the position is not valid in both */
    /* per cell [n_points][n_positions] */
    double *effect, *ci_lo, *ci_hi; /* NaN when no pair is used; ci NaN without bootstrap */
    long *n_used, *n_skipped;
} sl_patch_result;

/* Whether a hook point can be patched: one row per position (not the
 * attention pattern, pooled, logits or embed.tokens). */
int sl_patchable(const sl_model *m, int point);

int sl_patch(const sl_model *m, sl_dataset *ds, const sl_patch_opts *o, sl_patch_result *out, sl_error *err);
void sl_patch_result_free(sl_patch_result *r);

/* Pairs for base examples first..first+n-1: a seeded source among
 * first..first+count-1 other than the base; with label_flip, of the other
 * label (a base whose label is alone in the range gets source -1 and is
 * left out: *n_out counts the pairs written). */
int sl_patch_pairs(const sl_dataset *ds, long first, long count, long n, int label_flip, uint64_t seed, long *pairs,
                   long *n_out, sl_error *err);

#endif
