/* A backend runs whole batches of one model (README "Architecture"): an
 * analysis hands it batches and never asks which backend it has. The CPU
 * backend (models/cpu_backend.c) runs a batch's examples in parallel, one
 * thread each; a device backend registers itself by name (cuda/) and runs
 * a batch at a time. */
#ifndef SL_BACKEND_H
#define SL_BACKEND_H

#include "core/batch.h"
#include "models/model.h"

/* Prefix reuse (ablation/variants.h): a variant restores the residual kept
 * at block `restore`'s input (n_layers: after the last block), may edit
 * it, and runs again from block `start` with its own hooks. */
typedef struct {
    int restore;           /* 0..n_layers */
    int start;             /* first block run again, restore..n_layers */
    const sl_hooks *hooks; /* active from start on, or NULL */
    /* NULL, or the first position the variant changes in batch slot `slot`
     * of length len (len: none). On a causal model the positions before it
     * are the unmodified run's in every block, and a backend may run only
     * the rest (models/cpu_prefix.h): the edit and the hooks must then
     * write only rows from there on, and hooks see the rows before it as
     * the backend left them. */
    int (*first_row)(const void *user, int slot, int len);
    const void *row_user;
    /* 1: the variant changes first_row's row alone: with hooks NULL the
     * edit writes that row of the restored residual; with hooks, each hook
     * writes that row of its activation and the edit writes nothing. A
     * backend may then take the attention of the first block whose input
     * changed from the unmodified run's (models/cpu_tf_patch.h) */
    int one_row;
} sl_variant;

/* Called on the restored residual h [len][d_model] of batch slot `slot`
 * before the restart (with first_row, only its rows from there on hold the
 * restored residual). */
typedef void (*sl_variant_edit)(void *user, int variant, int slot, float *h, int len);

/* The gradient of each logit with respect to its input embedding, along
 * the straight path from a baseline to the input (attribution). */
typedef struct {
    int steps; /* 0: at the input alone (gradient x input); K: K midpoint steps from the baseline */
    /* [L] the tokens whose embedding is the baseline (all pad), or NULL: zeros */
    const int32_t *baseline;
    /* 1: the output's logits already hold each input's logit (eval's, read
     * back), so the backend skips the forward pass that computes them (ig) */
    int logits_given;
} sl_path;

typedef struct {
    float *attr;        /* [count][L]: per valid position, the mean gradient times (input - baseline), summed over d_model */
    double *sum;        /* [count]: attr summed over the example's positions */
    float *logits;      /* [count] */
    float *base_logits; /* [count], steps > 0: the baseline's logit */
} sl_path_out;

typedef struct sl_backend sl_backend;

typedef struct {
    /* logits [b->count] of a plain forward pass with hooks (may be NULL) */
    int (*forward)(sl_backend *be, const sl_batch *b, const sl_hooks *hooks, float *logits, sl_error *err);
    /* the batch once, keeping the residual at every block's input and after
     * the last block (base receives its logits); then each variant k, its
     * logits at out + k * ld_out */
    int (*variants)(sl_backend *be, const sl_batch *b, const sl_variant *v, int n, sl_variant_edit edit, void *user,
                    float *base, float *out, long ld_out, sl_error *err);
    int (*embed_gradient)(sl_backend *be, const sl_batch *b, const sl_path *p, const sl_path_out *out, sl_error *err);
    void (*free)(sl_backend *be);
} sl_backend_ops;

struct sl_backend {
    const sl_backend_ops *ops;
    const sl_model *m;
    const char *name; /* "cpu", or the device's own name */
    int max_batch;    /* examples per call */
    int max_len;      /* positions per example */
};

/* The CPU: threads examples at a time, batches of up to max_batch
 * examples of up to max_len positions. */
sl_backend *sl_backend_cpu(const sl_model *m, int threads, int max_batch, int max_len, sl_error *err);
void sl_backend_free(sl_backend *be);

/* SL_OK when be runs m: a backend holding another model's weights would
 * silently run the wrong network. */
int sl_backend_check(const sl_backend *be, const sl_model *m, sl_error *err);

/* ---- the registry of the other backends ---- */

typedef struct {
    int batch;    /* examples per batch; 0: the backend's choice */
    int max_len;  /* positions per example */
    int backward; /* the run takes gradients: size batches for them */
} sl_backend_want;

typedef struct sl_backend_kind {
    const char *name; /* what --device names */
    /* SL_OK when --device NAME can be asked for in this build, else the reason */
    int (*accept)(sl_error *err);
    int (*found)(void); /* a device is there: --device auto takes it */
    sl_backend *(*open)(const sl_model *m, const sl_backend_want *w, sl_error *err);
    /* a line for standard error once opened (NULL: none), e.g. that a
     * stand-in runs in the device's place */
    const char *(*notice)(void);
    struct sl_backend_kind *next;
} sl_backend_kind;

/* From a constructor in the backend's own file: nothing names it. */
void sl_backend_register(sl_backend_kind *k);
const sl_backend_kind *sl_backend_kind_find(const char *name);
/* The first registered kind with a device found, or NULL. */
const sl_backend_kind *sl_backend_kind_auto(void);
/* The registered names, "cuda" or "cuda or rocm", for an error line. */
const char *sl_backend_names(void);

#endif
