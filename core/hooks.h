/* Named hook points (design.md section 4). A hook is a function called with a
 * mutable view of an activation in the middle of a forward pass: reading it
 * is capture, writing it is ablation or patching. One mechanism for both. */
#ifndef SL_HOOKS_H
#define SL_HOOKS_H

#include <stdint.h>

#include "core/error.h"

enum sl_hook_kind {
    HK_EMBED_TOKENS, /* token embedding (times embed_scale) before any positional term */
    HK_EMBED,
    HK_RESID_PRE,
    HK_MIXER_IN_X,
    HK_MIXER_DELTA,
    HK_MIXER_B,
    HK_MIXER_C,
    HK_MIXER_GATE,
    HK_MIXER_Y, /* Mamba-2: the scan's output with D x, before the gated norm */
    HK_MIXER_OUT,
    HK_ATTN_PATTERN,
    HK_ATTN_OUT,
    HK_MLP_HIDDEN,
    HK_MLP_OUT,
    HK_RESID_POST,
    HK_FINAL,
    HK_POOLED,
    HK_LOGITS,
    HK_COUNT
};

typedef struct {
    char name[48];
    int kind, layer; /* layer is -1 for model-level points */
    int width;       /* values per position (pattern: keys per query row) */
    int per_example; /* pooled, logits: one row per example, no position axis */
} sl_hook_point;

/* One activation of one example. Rows are positions 0..len-1 (pattern: H
 * blocks of len query rows over len keys; pooled and logits: one row). */
typedef struct {
    const sl_hook_point *point;
    int id;
    long example; /* index in the dataset */
    int slot;     /* index within the running batch */
    int len;      /* valid positions */
    int heads;    /* pattern only */
    const int32_t *tokens;
    float *data;
    int rows, cols, ld;
} sl_hook_event;

typedef int (*sl_hook_fn)(void *user, sl_hook_event *ev, sl_error *err);

typedef struct sl_row_replace sl_row_replace;

typedef struct {
    int point;
    sl_hook_fn fn;
    void *user;
    /* set by sl_hooks_add_replace: the write as data, which a device can
     * carry out without copying the activation out and back */
    const sl_row_replace *replace;
} sl_hook_entry;

typedef struct {
    int n_points;
    unsigned char *active; /* per point: any entry registered */
    sl_hook_entry *list;
    int n, cap;
    /* [n_layers] bits of the architecture's structural switches, or NULL:
     * what no activation write can express because it changes the
     * computation between two hook points (models/model.h names the bits) */
    const unsigned *knockout;
} sl_hooks;

int sl_hooks_init(sl_hooks *h, int n_points, sl_error *err);
void sl_hooks_free(sl_hooks *h);
int sl_hooks_add(sl_hooks *h, int point, sl_hook_fn fn, void *user, sl_error *err);
/* Runs the entries of ev->id in registration order. */
int sl_hooks_fire(const sl_hooks *h, sl_hook_event *ev, sl_error *err);

static inline int sl_hooks_on(const sl_hooks *h, int id) { return h && id >= 0 && h->active[id]; }

/* A write the device core can carry out on the device (no copy of the
 * activation to the host and back): at each valid position t of batch slot
 * s with mask[s * ld + t] != 0, the row becomes `row` (NULL: zeros). On the
 * CPU it is an ordinary hook, sl_hook_replace_rows. mask and row are read
 * when the hook fires, so the caller may rewrite them between batches. */
struct sl_row_replace {
    const uint8_t *mask;
    long ld;
    const float *row;
};

int sl_hook_replace_rows(void *user, sl_hook_event *ev, sl_error *err);
int sl_hooks_add_replace(sl_hooks *h, int point, const sl_row_replace *r, sl_error *err);

/* Dot-separated names; a pattern component matches one name component by
 * fnmatch, so `*` stands for one index: "blocks.*.resid_post". */
int sl_hook_match(const char *pattern, const char *name);

#endif
