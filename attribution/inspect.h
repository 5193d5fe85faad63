/* How each layer treats each token family, from the forward pass alone:
 * the selectivity of a Mamba mixer (delta, gate, write strength, retention)
 * and a Transformer's attention (mass received against token share, per head),
 * every number a mean over the valid positions of that family in the data
 * (design.md section 5, `inspect`). */
#ifndef SL_INSPECT_H
#define SL_INSPECT_H

#include "core/dataset.h"
#include "models/model.h"
#include "models/run.h"

/* Mamba-2's selectivity per head: the statistics of each head (its delta,
 * its channels' gate and write, its retention) in the order of
 * sl_inspect_family.per_head. */
enum { SL_PH_DELTA, SL_PH_GATE, SL_PH_WRITE, SL_PH_RETENTION, SL_PH_MEMORY, SL_PH_COUNT };
/* Their names in the JSON: "mean_delta_per_head", ... */
extern const char *const SL_INSPECT_PER_HEAD_NAMES[SL_PH_COUNT];

typedef struct {
    long count; /* valid positions (selectivity) or else query-head pairs (attention) behind the means */
    /* Mamba-2: each the mean over heads (equal to the mean over channels,
     * every channel taking its head's delta) of the per-head values below */
    double mean_delta, mean_gate, mean_write, mean_retention, memory_length;
    double *per_head[SL_PH_COUNT]; /* Mamba-2: [ssm_heads] each, memory_length from that head's retention */
    double attention_mass, token_share, ratio;
    double *attention_mass_per_head; /* [H] */
} sl_inspect_family;

typedef struct {
    double entropy, mean_distance;
} sl_inspect_head;

/* The statistics gathered are those of the model's hook points: the
 * selectivity ones (mean_delta ... memory_length) where it has mixer.delta,
 * the attention ones (n_heads > 0) where it has attn.pattern. */
typedef struct {
    int n_layers, n_families, n_heads;
    int selectivity;
    int ssm_heads; /* Mamba-2: nheads, whose per-head selectivity is in per_head; else 0 */
    sl_inspect_family *fam; /* [layer][family] */
    sl_inspect_head *head;  /* [layer][head] */
    double *per_head_storage;
    double *ssm_head_storage;
} sl_inspect_result;

int sl_inspect(const sl_model *m, sl_dataset *ds, const sl_run_opts *o, sl_inspect_result *out, sl_error *err);
void sl_inspect_free(sl_inspect_result *r);

#endif
