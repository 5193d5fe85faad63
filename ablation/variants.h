/* Prefix reuse for interventions inside the network: every example runs
 * once with the residual stream kept at each block's input (and after the
 * last block); each variant then restores one of those, may edit it, and
 * restarts at a block of its choice with its own hooks. The blocks below
 * never run twice. Layer and component ablation are both variants. */
#ifndef SL_VARIANTS_H
#define SL_VARIANTS_H

#include "core/dataset.h"
#include "core/ordered_sums.h"
#include "models/model.h"
#include "models/run.h"

/* base [o->count] receives the unmodified logits, logits [n][o->count]
 * each variant's. edit may be NULL. */
int sl_run_variants(const sl_model *m, sl_dataset *ds, const sl_run_opts *o, const sl_variant *v, int n,
                    sl_variant_edit edit, void *user, float *base, float *logits, sl_error *err);

/* Means over the valid positions of the data: sl_ordered_sums. */

#endif
