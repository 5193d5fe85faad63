/* Runs a model over a range of a dataset in batches: examples of a batch in
 * parallel (one thread per example, BLAS single-threaded inside), batches
 * one after another so that memory is bounded by the batch size. */
#ifndef SL_RUN_H
#define SL_RUN_H

#include "core/dataset.h"
#include "models/model.h"

struct sl_dev_model;

typedef struct {
    long first, count; /* examples first..first+count-1 */
    int batch;         /* examples per batch */
    int threads;
    /* when set, plain forward passes (no per-example fn) run there a
     * batch at a time (cuda/device_model.h); NULL: the CPU */
    struct sl_dev_model *dev;
} sl_run_opts;

typedef struct {
    long first; /* dataset index of slot 0 */
    int count, L;
    int32_t *tokens;        /* [count, L]; `before` may rewrite them */
    uint8_t *keep;          /* [count, L] all 1 unless `before` clears some */
    const int32_t *lengths; /* [count] */
    const int32_t *labels;  /* [count] */
    float *logits;          /* [count], filled by the run */
} sl_batch;

typedef int (*sl_batch_fn)(void *user, sl_batch *b, sl_error *err);

/* logits receives o->count values (may be NULL); a NaN or infinite one
 * among them is an error (core/metrics.h, sl_check_logits), since every
 * score made from them would be wrong. before/after run on the calling
 * thread around each batch; either may be NULL. */
int sl_run(const sl_model *m, sl_dataset *ds, const sl_run_opts *o, const sl_hooks *hooks, sl_batch_fn before,
           sl_batch_fn after, void *user, float *logits, sl_error *err);

/* Per-example work in place of one plain forward pass: thread is 0..threads-1
 * (for per-thread scratch), logit receives the example's logit. */
typedef int (*sl_example_fn)(void *user, int thread, const sl_example *ex, sl_workspace *ws, float *logit,
                             sl_error *err);

/* sl_run with each example handed to fn (sl_forward when fn is NULL). */
int sl_run_each(const sl_model *m, sl_dataset *ds, const sl_run_opts *o, const sl_hooks *hooks, sl_batch_fn before,
                sl_batch_fn after, void *user, sl_example_fn fn, void *fn_user, float *logits, sl_error *err);

/* The work of one batch: fills b->logits. */
typedef int (*sl_batch_work)(void *work_user, sl_batch *b, sl_error *err);

/* The batch loop under sl_run and sl_run_each: reads each batch's tokens,
 * calls before, work, after, and gathers the logits. */
int sl_run_batches(sl_dataset *ds, const sl_run_opts *o, sl_batch_fn before, sl_batch_work work, void *work_user,
                   sl_batch_fn after, void *user, float *logits, sl_error *err);

/* Prefix reuse (ablation/variants.h): a variant restores the residual kept
 * at block `restore`'s input (n_layers: after the last block), may edit
 * it, and runs again from block `start` with its own hooks. */
typedef struct {
    int restore;           /* 0..n_layers */
    int start;             /* first block run again, restore..n_layers */
    const sl_hooks *hooks; /* active from start on, or NULL */
} sl_variant;

/* Called on the restored residual h [len][d_model] of batch slot `slot`
 * before the restart. */
typedef void (*sl_variant_edit)(void *user, int variant, int slot, float *h, int len);

int sl_default_threads(void);

#endif
