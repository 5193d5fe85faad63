/* A Transformer's interventions on the CPU that reuse the unmodified run's
 * attention. One whose hooks write only after block s's attention (ablate
 * --component attn or mlp) leaves that attention as it was
 * (sl_tf_forward_hooked). One that changes one row (patch, through
 * sl_variant.one_row) changes the input of some block s at one position p
 * alone, and so, in block s, only row p of q, k and v.
 * Every other query's softmax then differs from the unmodified run's in one
 * key, so its context follows from the kept one in O(d_head):
 *     w = exp(s_tp - lse_t), w' = exp(s'_tp - lse_t),
 *     ctx'_t = (ctx_t - w v_p + w' v'_p) / (1 - w + w'),
 * and block s costs its projections and its MLP but not its attention's
 * O(L^2) (the blocks after it run whole: every row has changed there).
 * Where key p held more than half of a row's weight the subtraction would
 * cancel, and that row is computed again from all its keys, as is query p;
 * where many rows need it, the whole head is. q, k and v come from the
 * block's own product over every row, and rows computed again run through
 * the streaming kernel, so they have the whole pass's bits; an updated row
 * rounds otherwise (tests/test_tf_rows.c: within 1e-5). On a causal model
 * a variant that changes positions p.. runs only the rows from a restart
 * at or before p (sl_tf_forward_suffix), its queries over the kept keys
 * before it: the whole pass's bits. Internal to models/. */
#ifndef SL_CPU_TF_PATCH_H
#define SL_CPU_TF_PATCH_H

#include "models/model.h"
#include "models/workspace.h"

/* What the unmodified pass keeps of each block's attention. */
typedef struct {
    int n_layers, max_len;
    float *qkv; /* [n_layers][max_len][3 d]: q, k, v after the rotation */
    float *ctx; /* [n_layers][max_len][d]: the context */
    float *lse; /* [n_layers][n_heads][max_len]: each query row's log-sum-exp */
    float *fin; /* [max_len][d]: what the pooling read (the final norm's output, or the last block's) */
    int *redo;  /* [max_len]: scratch, the rows of a head computed again */
    /* the most rows of a head computed again apart before the whole head
     * is; -1: T / (4 SL_QB) (the tests set others) */
    int redo_max;
} sl_tf_kept;

/* How the rows of the updated blocks were found (tests/test_patch.c). */
typedef struct {
    long updated;    /* rows from the kept context and the one key */
    long recomputed; /* rows computed again from all their keys (the changed query's among them) */
    long heads;      /* heads computed again whole */
} sl_tf_row_stats;

size_t sl_tf_kept_bytes(const sl_model *m, int max_len);
/* NULL when out of memory; free with sl_tf_kept_free. */
sl_tf_kept *sl_tf_kept_new(const sl_model *m, int max_len);
void sl_tf_kept_free(sl_tf_kept *k);

/* sl_forward, keeping k on the way (the same bits). No hook may be on an
 * attention pattern. */
int sl_tf_forward_keeping(const sl_model *m, const sl_example *ex, sl_workspace *ws, const sl_hooks *hooks,
                          sl_tf_kept *k, float *logit, sl_error *err);

/* sl_forward_from(first_layer) without hooks where sl_workspace_residual(ws)
 * is block first_layer's input in k's pass but for row `row`: that block
 * from k (above), the rest whole. first_layer < n_layers. stats may be NULL. */
int sl_tf_forward_row(const sl_model *m, const sl_example *ex, sl_workspace *ws, int first_layer, int row,
                      sl_tf_kept *k, sl_tf_row_stats *stats, float *logit, sl_error *err);

/* sl_forward_from(first_layer, hooks) of a causal model where
 * sl_workspace_residual(ws) holds block first_layer's input from row0 on
 * and the variant changes nothing before row0 (sl_variant.first_row): only
 * rows row0.. of each block run, their queries over every key, those
 * before row0 the kept pass's; the pooling reads the kept pass's rows
 * before row0 (*fin_rows of them are already in place, as after the last
 * such pass; 0: none). row0 from sl_restart_row: the whole pass's bits.
 * No hook may be on an attention pattern, and the hooks see the rows before
 * row0 as earlier passes left them. */
int sl_tf_forward_suffix(const sl_model *m, const sl_example *ex, sl_workspace *ws, const sl_hooks *hooks,
                         int first_layer, int row0, sl_tf_kept *k, int *fin_rows, float *logit, sl_error *err);

/* Whether hooks are on the attention pattern of a block from `from` on
 * (which sl_tf_forward_suffix cannot run). */
int sl_tf_pattern_hooked(const sl_model *m, const sl_hooks *hooks, int from);

/* Whether hooks write only points of block `layer` after its attention
 * (attn.out, mlp.hidden, mlp.out), with no switches thrown. */
int sl_tf_hooks_after_attention(const sl_model *m, const sl_hooks *hooks, int layer);

/* sl_forward_from(first_layer, hooks) where sl_workspace_residual(ws) is
 * block first_layer's input in k's pass and hooks write only after its
 * attention (sl_tf_hooks_after_attention): that block from its kept
 * context, with the whole pass's bits (its attention is the unmodified
 * run's). Where the hooks write row `row` alone (row >= 0), the block's
 * output differs from k's pass in that row alone, and the next block runs
 * by sl_tf_forward_row; the rest whole (row -1: every later block whole,
 * the whole pass's bits). */
int sl_tf_forward_hooked(const sl_model *m, const sl_example *ex, sl_workspace *ws, const sl_hooks *hooks,
                         int first_layer, int row, sl_tf_kept *k, sl_tf_row_stats *stats, float *logit, sl_error *err);

#endif
