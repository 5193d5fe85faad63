/* Runs a model over a range of a dataset in batches, each batch handed to
 * a backend (models/backend.h), batches one after another so that memory
 * is bounded by the batch size. */
#ifndef SL_RUN_H
#define SL_RUN_H

#include "core/batch.h"
#include "core/dataset.h"
#include "models/backend.h"
#include "models/model.h"

typedef struct {
    long first, count; /* examples first..first+count-1 */
    int batch;         /* examples per batch */
    int threads;
    /* where the batches run; NULL: a CPU backend of `threads` threads made
     * for the call */
    sl_backend *backend;
} sl_run_opts;

/* logits receives o->count values (may be NULL); a NaN or infinite one
 * among them is an error (core/metrics.h, sl_check_logits), since every
 * score made from them would be wrong. before/after run on the calling
 * thread around each batch; either may be NULL. */
int sl_run(const sl_model *m, sl_dataset *ds, const sl_run_opts *o, const sl_hooks *hooks, sl_batch_fn before,
           sl_batch_fn after, void *user, float *logits, sl_error *err);

/* The work of one batch: fills b->logits. */
typedef int (*sl_batch_work)(void *work_user, sl_batch *b, sl_error *err);

/* The batch loop under sl_run: reads each batch's tokens, calls before,
 * work, after, and gathers the logits. */
int sl_run_batches(sl_dataset *ds, const sl_run_opts *o, sl_batch_fn before, sl_batch_work work, void *work_user,
                   sl_batch_fn after, void *user, float *logits, sl_error *err);

/* The backend a run uses: o->backend (checked to run m), or a new CPU one
 * for o's threads and batch in *made, which the caller frees with
 * sl_backend_free. *opts receives o with its batch within the backend's. */
int sl_run_backend(const sl_model *m, int max_len, const sl_run_opts *o, sl_run_opts *opts, sl_backend **made,
                   sl_error *err);

int sl_default_threads(void);

#endif
