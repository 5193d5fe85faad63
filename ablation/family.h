/* Family ablation: what does the model lose when one token family is taken
 * away? One baseline pass (none when given the baseline's logits) and one
 * pass per family present (design.md section 5). */
#ifndef SL_FAMILY_H
#define SL_FAMILY_H

#include <stdint.h>

#include "core/dataset.h"
#include "models/model.h"
#include "models/run.h"

/* skip (Mamba and Mamba-2 only): delta = 0 at the family's positions in
 * every layer, the positions dropped from pooling; the tokens stay. */
enum { FAM_MEAN, FAM_ZERO, FAM_PAD, FAM_RESAMPLE, FAM_SKIP };

typedef struct {
    int mode;
    uint64_t seed;
    int bootstrap; /* paired resamples for ci95; 0 skips them */
    /* the unablated logits of examples o->first.. [o->count], as sl_run
     * gives them (eval's, read back), or NULL: one pass computes them */
    const float *base;
} sl_family_opts;

typedef struct {
    int family;    /* or -1 */
    int layer;     /* or -1 */
    int component; /* SL_COMP_*, or -1 */
    double auc, delta_auc, ci95[2], p_value, masked_fraction;
    int has_ci;
} sl_ablation_row;

typedef struct {
    long n;
    double baseline_auc;
    sl_ablation_row *rows;
    int n_rows;
} sl_ablation_result;

/* families[n_fam]: indices into ds->family_names. FAM_SKIP on a model
 * without mixer.delta points (a Transformer) is SL_EINPUT. */
/* logits, when not NULL, receives the ablated logits [n_fam, o->count]. */
int sl_ablate_families(const sl_model *m, sl_dataset *ds, const sl_run_opts *o, const int *families, int n_fam,
                       const sl_family_opts *fo, sl_ablation_result *out, float *logits, sl_error *err);
void sl_ablation_result_free(sl_ablation_result *r);

/* Fills each row's auc, delta_auc, p_value and ci95 from the logits of the
 * ablated run against the baseline's. */
int sl_ablation_score(const float *base, const float *ablated, const int32_t *labels, long n, int bootstrap,
                      uint64_t seed, sl_ablation_row *row, sl_error *err);

/* The result of a variant sweep (layer or component ablation): n, the
 * baseline AUC, and row k for layers[k] and components[k] (components
 * NULL: -1), scored from ablated [n][count]; out->rows holds n rows. */
int sl_ablation_score_rows(const float *base, const float *ablated, const int32_t *labels, long count,
                           const int *layers, const int *components, int n, int bootstrap, uint64_t seed,
                           sl_ablation_result *out, sl_error *err);

const char *sl_family_mode_name(int mode);

#endif
