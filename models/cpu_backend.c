/* The CPU backend (models/backend.h): the examples of a batch in parallel,
 * one thread and one workspace each, every example through the per-example
 * model core (models/cpu_forward.c, backward.c). */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "models/backend.h"
#include "models/cpu_prefix.h"
#include "models/cpu_tf_patch.h"
#include "models/ig_path.h"
#include "models/mamba_scan.h"

typedef struct {
    float *x, *base, *path, *acc; /* embed_gradient's, allocated on its first call */
    float *delta; /* x - base */
    double *attr; /* each position's attribution, summed over d_model (and a Mamba-1's steps) */
    float *pb, *pd, *bias; /* integrated gradients on a Mamba-1: the path's products (models/ig_path.h) */
    /* the last baseline logit this thread computed, and for which baseline
     * (1 zeros, 2 all pad; 0 none yet) and length: it depends on nothing else */
    int memo_kind, memo_len;
    float memo_logit;
} grad_scratch;

typedef struct {
    sl_backend be;
    int threads;
    sl_workspace **ws;   /* [threads] */
    grad_scratch *gs;    /* [threads] */
    sl_error *slot_err;  /* [max_batch]: each example's own failure */
    int *order;          /* [max_batch]: the batch's examples, longest first */
    float *cache;        /* variants: [slot][n_layers + 1][max_len][d_model], on first use */
    sl_hooks keep;       /* variants: the hooks that fill the cache */
    sl_mamba_kept **kept; /* variants of a Mamba: [threads] what restarts need, or NULL (too large) */
    sl_tf_kept **tf_kept; /* variants of a Transformer whose first block can take its attention from
                           * the unmodified run's, or of a causal one that restarts (causal_suffix):
                           * [threads] each block's attention, or NULL (too large) */
    float *pad_resid;     /* integrated gradients on a Mamba: [pad_len][d_model] the all-pad baseline's residual
                           * stream after the last block, on first use (prepare_pad_baseline) */
    int pad_len;
} cpu_backend;

/* One example's work: thread picks the scratch, ex->slot the results. */
typedef int (*example_fn)(cpu_backend *cb, int thread, const sl_example *ex, void *ctx, sl_error *err);

static int uses_keep(const uint8_t *keep, int len)
{
    for (int t = 0; keep && t < len; t++)
        if (!keep[t]) return 1;
    return 0;
}

/* The batch's slots by length, longest first (ties in slot order): handed
 * out in that order, the threads finish a batch of mixed lengths closer
 * together (measured: 1.90 of 2 threads busy on IG over sequences of
 * 1,031 to 2,040 tokens in batch order). An insertion sort: a batch is
 * small. */
static void longest_first(const sl_batch *b, int *order)
{
    for (int e = 0; e < b->count; e++) {
        int k = e;
        for (; k > 0 && b->lengths[order[k - 1]] < b->lengths[e]; k--) order[k] = order[k - 1];
        order[k] = e;
    }
}

/* fn on every example of b in parallel (sl_run_backend has made BLAS
 * single-threaded); each example's results go to its own slot, so the
 * order they run in changes no bit; the failure reported is that of the
 * first failing example in batch order, whatever the threads did. */
static int each_example(cpu_backend *cb, const sl_batch *b, example_fn fn, void *ctx, sl_error *err)
{
    if (b->count > cb->be.max_batch || b->L > cb->be.max_len)
        return sl_fail(err, SL_ERUNTIME, "CPU batch of %d x %d outside the backend's %d x %d", b->count, b->L,
                       cb->be.max_batch, cb->be.max_len);
    for (int e = 0; e < b->count; e++) cb->slot_err[e].code = SL_OK;
    longest_first(b, cb->order);
    int failed = 0;
#pragma omp parallel for num_threads(cb->threads) schedule(dynamic, 1)
    for (int k = 0; k < b->count; k++) {
        int e = cb->order[k], stop;
#pragma omp atomic read
        stop = failed;
        if (stop) continue;
        const uint8_t *kp = b->keep ? b->keep + (long)e * b->L : NULL;
        sl_example ex = {b->tokens + (long)e * b->L, b->lengths[e], sl_batch_index(b, e), e,
                         uses_keep(kp, b->lengths[e]) ? kp : NULL};
        if (fn(cb, omp_get_thread_num(), &ex, ctx, &cb->slot_err[e])) {
#pragma omp atomic write
            failed = 1;
        }
    }
    for (int e = 0; failed && e < b->count; e++)
        if (cb->slot_err[e].code) {
            *err = cb->slot_err[e];
            return err->code;
        }
    return SL_OK;
}

/* ---- forward ---- */

typedef struct {
    const sl_hooks *hooks;
    float *logits;
} forward_ctx;

static int forward_one(cpu_backend *cb, int thread, const sl_example *ex, void *ctx, sl_error *err)
{
    forward_ctx *f = ctx;
    return sl_forward(cb->be.m, ex, cb->ws[thread], f->hooks, &f->logits[ex->slot], err);
}

static int cpu_forward(sl_backend *be, const sl_batch *b, const sl_hooks *hooks, float *logits, sl_error *err)
{
    forward_ctx f = {hooks, logits};
    return each_example((cpu_backend *)be, b, forward_one, &f, err);
}

/* ---- variants ---- */

static float *slot_cache(const cpu_backend *cb, int slot, int r)
{
    const sl_config *c = &cb->be.m->c;
    return cb->cache + (((size_t)slot * (c->n_layers + 1) + r) * cb->be.max_len) * c->d_model;
}

static int keep_residual(void *user, sl_hook_event *ev, sl_error *err)
{
    (void)err;
    const cpu_backend *cb = user;
    const sl_config *c = &cb->be.m->c;
    int r = ev->point->kind == HK_RESID_PRE ? ev->point->layer : c->n_layers;
    memcpy(slot_cache(cb, ev->slot, r), ev->data, (size_t)ev->len * c->d_model * sizeof(float));
    return SL_OK;
}

static int prepare_cache(cpu_backend *cb, sl_error *err)
{
    if (cb->cache) return SL_OK;
    const sl_model *m = cb->be.m;
    int nl = m->c.n_layers;
    size_t n = (size_t)cb->be.max_batch * (nl + 1) * cb->be.max_len * m->c.d_model;
    if (!(cb->cache = malloc(n * sizeof *cb->cache)))
        return sl_fail(err, SL_ERUNTIME, "out of memory for a residual cache of %d x %d x %d x %d floats",
                       cb->be.max_batch, nl + 1, cb->be.max_len, m->c.d_model);
    int rc = sl_hooks_init(&cb->keep, m->n_points, err);
    for (int i = 0; !rc && i < nl; i++) rc = sl_hooks_add(&cb->keep, sl_model_point(m, HK_RESID_PRE, i), keep_residual, cb, err);
    if (!rc) rc = sl_hooks_add(&cb->keep, sl_model_point(m, HK_RESID_POST, nl - 1), keep_residual, cb, err);
    return rc;
}

typedef struct {
    const sl_variant *v;
    int n;
    sl_variant_edit edit;
    void *user;
    float *base, *out;
    long ld_out;
} variants_ctx;

/* A variant that only throws switches of its first block (ablate
 * --component on a Mamba): that block from the kept activations. */
static unsigned switched(const sl_variant *v, int nl, int edited)
{
    const sl_hooks *h = v->hooks;
    if (edited || !h || !h->knockout || h->n || v->restore != v->start || v->start >= nl) return 0;
    for (int i = 0; i < nl; i++)
        if (i != v->start && h->knockout[i]) return 0;
    return h->knockout[v->start];
}

/* A Transformer variant whose first block's input is the unmodified run's
 * and whose hooks write only after that block's attention: the block can
 * take its attention from the unmodified run's (sl_tf_forward_hooked). */
static int from_kept_attention(const sl_model *m, const sl_variant *v, int edited)
{
    return v->start == v->restore && (v->one_row || !edited) && sl_tf_hooks_after_attention(m, v->hooks, v->start);
}

/* A causal Transformer's variant that says where it begins (first_row)
 * and hooks no attention pattern: the rows from there on can run alone
 * (sl_tf_forward_suffix). */
static int causal_suffix(const sl_model *m, const sl_variant *v)
{
    return m->c.causal && v->first_row && !sl_tf_pattern_hooked(m, v->hooks, v->start);
}

/* A Mamba's variants that say where they begin (first_row) run from a
 * restart row at or before it (sl_restart_row), and so do a causal
 * Transformer's (causal_suffix); a Mamba's that switch a part of their
 * first block off start inside it; a Transformer's take the attention of
 * their first block from the unmodified run's where its input is unchanged
 * or changed in one row (sl_tf_forward_hooked, sl_tf_forward_row); the
 * rest, and the other architectures, run whole blocks from position 0. */
static int variants_one(cpu_backend *cb, int thread, const sl_example *ex, void *ctx, sl_error *err)
{
    const variants_ctx *x = ctx;
    const sl_model *m = cb->be.m;
    sl_workspace *ws = cb->ws[thread];
    const sl_mamba_kept *kept = cb->kept ? cb->kept[thread] : NULL;
    sl_tf_kept *tk = cb->tf_kept ? cb->tf_kept[thread] : NULL;
    size_t d = (size_t)m->c.d_model;
    int nl = m->c.n_layers;
    int rc = kept ? sl_forward_keeping(m, ex, ws, &cb->keep, kept, &x->base[ex->slot], err)
           : tk   ? sl_tf_forward_keeping(m, ex, ws, &cb->keep, tk, &x->base[ex->slot], err)
                  : sl_forward(m, ex, ws, &cb->keep, &x->base[ex->slot], err);
    float *h = sl_workspace_residual(ws);
    int fin_rows = ex->len; /* the final norm's rows still the kept pass's */
    for (int k = 0; !rc && k < x->n; k++) {
        const sl_variant *v = &x->v[k];
        float *logit = &x->out[k * x->ld_out + ex->slot];
        int row = v->first_row ? v->first_row(v->row_user, ex->slot, ex->len) : 0;
        if (row >= ex->len) { /* nothing changes: the unmodified logit */
            *logit = x->base[ex->slot];
            continue;
        }
        int row0 = kept || (tk && causal_suffix(m, v)) ? sl_restart_row(row, ex->len) : 0;
        unsigned off = kept && kept->xz ? switched(v, nl, x->edit != NULL) : 0;
        size_t from = (size_t)row0 * d;
        memcpy(h + from, slot_cache(cb, ex->slot, v->restore) + from, ((size_t)ex->len * d - from) * sizeof *h);
        if (x->edit) x->edit(x->user, k, ex->slot, h, ex->len);
        if (row0) {
            rc = kept ? sl_forward_suffix(m, ex, ws, v->hooks, v->start, row0, kept, &fin_rows, logit, err)
                      : sl_tf_forward_suffix(m, ex, ws, v->hooks, v->start, row0, tk, &fin_rows, logit, err);
            continue;
        }
        fin_rows = 0; /* a pass over every row rewrites the final norm's */
        if (tk && v->one_row && !v->hooks && v->start == v->restore && v->start < nl)
            rc = sl_tf_forward_row(m, ex, ws, v->start, row, tk, NULL, logit, err);
        else if (tk && from_kept_attention(m, v, x->edit != NULL))
            rc = sl_tf_forward_hooked(m, ex, ws, v->hooks, v->start, v->one_row ? row : -1, tk, NULL, logit, err);
        else if (off) {
            rc = sl_mamba_block_switched(m, ex, ws, v->start, off, kept, err);
            if (!rc) rc = sl_forward_from(m, ex, ws, v->hooks, v->start + 1, logit, err);
        } else rc = sl_forward_from(m, ex, ws, v->hooks, v->start, logit, err);
    }
    return rc;
}

static void drop_kept(cpu_backend *cb)
{
    for (int t = 0; cb->kept && t < cb->threads; t++) sl_mamba_kept_free(cb->kept[t]);
    free(cb->kept);
    cb->kept = NULL;
    for (int t = 0; cb->tf_kept && t < cb->threads; t++) sl_tf_kept_free(cb->tf_kept[t]);
    free(cb->tf_kept);
    cb->tf_kept = NULL;
}

/* A Transformer's attention kept per thread where a variant can use it
 * and it fits in budget bytes a thread; else whole blocks. */
static void prepare_tf_kept(cpu_backend *cb, const sl_variant *v, int n, int edited, size_t budget)
{
    const sl_model *m = cb->be.m;
    int one = 0;
    for (int k = 0; k < n; k++)
        one |= (v[k].one_row && v[k].start < m->c.n_layers) || from_kept_attention(m, &v[k], edited)
             || causal_suffix(m, &v[k]);
    if (!one || sl_tf_kept_bytes(m, cb->be.max_len) > budget) {
        drop_kept(cb);
        return;
    }
    if (cb->tf_kept) return;
    if (!(cb->tf_kept = calloc((size_t)cb->threads, sizeof *cb->tf_kept))) return;
    for (int t = 0; t < cb->threads; t++)
        if (!(cb->tf_kept[t] = sl_tf_kept_new(m, cb->be.max_len))) {
            drop_kept(cb);
            return;
        }
}

/* What restarts and switched blocks need, per thread: taken when some
 * variant can use it and it fits in 64 MiB a thread (the activations
 * first to go), else every variant runs whole blocks. A Transformer's:
 * prepare_tf_kept. */
static void prepare_kept(cpu_backend *cb, const sl_variant *v, int n, int edited)
{
    const sl_model *m = cb->be.m;
    int rows = 0, acts = 0;
    for (int k = 0; k < n; k++) {
        rows |= v[k].first_row != NULL;
        acts |= switched(&v[k], m->c.n_layers, edited) != 0;
    }
    size_t budget = (size_t)64 << 20;
    if (m->c.arch == ARCH_TRANSFORMER) {
        prepare_tf_kept(cb, v, n, edited, budget);
        return;
    }
    /* a Mamba-2 restarts; only a Mamba-1 runs a switched block from its kept activations */
    if ((acts && sl_mamba_kept_bytes(m, cb->be.max_len, 1) > budget) || m->c.arch != ARCH_MAMBA) acts = 0;
    if (rows && sl_mamba_kept_bytes(m, cb->be.max_len, 0) > budget) rows = 0;
    if (!sl_arch_is_mamba(m->c.arch) || !(rows || acts)) { /* none, or those of an earlier call */
        drop_kept(cb);
        return;
    }
    if (cb->kept && (!acts || cb->kept[0]->xz)) return;
    drop_kept(cb);
    /* without memory for them, every variant runs whole blocks: the same bits, only slower */
    if (!(cb->kept = calloc((size_t)cb->threads, sizeof *cb->kept))) return;
    for (int t = 0; t < cb->threads; t++)
        if (!(cb->kept[t] = sl_mamba_kept_new(m, cb->be.max_len, acts))) {
            drop_kept(cb);
            return;
        }
}

static int cpu_variants(sl_backend *be, const sl_batch *b, const sl_variant *v, int n, sl_variant_edit edit, void *user,
                        float *base, float *out, long ld_out, sl_error *err)
{
    cpu_backend *cb = (cpu_backend *)be;
    int nl = be->m->c.n_layers;
    for (int k = 0; k < n; k++)
        if (v[k].restore < 0 || v[k].restore > nl || v[k].start < v[k].restore || v[k].start > nl)
            return sl_fail(err, SL_ERUNTIME, "variant %d: restore %d, start %d outside 0..%d", k, v[k].restore,
                           v[k].start, nl);
    int rc = prepare_cache(cb, err);
    if (!rc) prepare_kept(cb, v, n, edit != NULL);
    variants_ctx x = {v, n, edit, user, base, out, ld_out};
    return rc ? rc : each_example(cb, b, variants_one, &x, err);
}

/* ---- the embedding gradient along a path ---- */

static int prepare_gradient(cpu_backend *cb, sl_error *err)
{
    if (cb->gs) return SL_OK;
    const sl_config *c = &cb->be.m->c;
    size_t ld = (size_t)cb->be.max_len * c->d_model;
    if (!(cb->gs = calloc((size_t)cb->threads, sizeof *cb->gs))) return sl_fail(err, SL_ERUNTIME, "out of memory");
    for (int t = 0; t < cb->threads; t++) {
        grad_scratch *s = &cb->gs[t];
        s->x = malloc(ld * sizeof(float));
        s->base = malloc(ld * sizeof(float));
        s->path = malloc(ld * sizeof(float));
        s->acc = malloc(ld * sizeof(float));
        s->delta = malloc(ld * sizeof(float));
        s->attr = malloc((size_t)cb->be.max_len * sizeof(double));
        int ok = s->x && s->base && s->path && s->acc && s->delta && s->attr;
        if (ok && c->arch == ARCH_MAMBA) {
            size_t n = 2 * (size_t)c->d_inner;
            ok = (s->pb = malloc(cb->be.max_len * n * sizeof(float))) && (s->pd = malloc(cb->be.max_len * n * sizeof(float)))
              && (s->bias = malloc(n * sizeof(float)));
        }
        if (!ok) return sl_fail(err, SL_ERUNTIME, "out of memory for the gradients of %d positions", cb->be.max_len);
    }
    return SL_OK;
}

typedef struct {
    const sl_path *p;
    const sl_path_out *out;
    int ld_attr;
} gradient_ctx;

/* The all-pad baseline of a Mamba-1 is causal and the same sequence for
 * every example: the first len rows of one pass over max_len positions are
 * a pass over len positions (the scan and the conv run in position order;
 * the projections' BLAS calls give a row the same bits when neither call is
 * a small one: SL_RESTART_ROWS, models/cpu_prefix.h). So that pass runs
 * once, and each example's baseline logit is the final norm, pooling and
 * head over its first len rows, instead of a whole forward pass each (one
 * of the about 44 passes attribute costs an example at 16 steps). */
static int pad_shortcut(const cpu_backend *cb, const sl_path *p)
{
    return p->steps > 0 && p->baseline && cb->be.m->c.arch == ARCH_MAMBA;
}

/* Over the batch's width L (the baseline's tokens are [L]), once for a
 * dataset's batches, which share it. */
static int prepare_pad_baseline(cpu_backend *cb, const sl_path *p, int L, sl_error *err)
{
    if (!pad_shortcut(cb, p) || (cb->pad_resid && cb->pad_len >= L)) return SL_OK;
    const sl_model *m = cb->be.m;
    size_t n = (size_t)L * m->c.d_model;
    float unused;
    sl_example pe = {p->baseline, L, -1, 0, NULL};
    free(cb->pad_resid);
    cb->pad_len = 0;
    if (!(cb->pad_resid = malloc(n * sizeof *cb->pad_resid))) return sl_fail(err, SL_ERUNTIME, "out of memory");
    int rc = sl_forward(m, &pe, cb->ws[0], NULL, &unused, err);
    if (!rc) memcpy(cb->pad_resid, sl_workspace_residual(cb->ws[0]), n * sizeof *cb->pad_resid), cb->pad_len = L;
    else free(cb->pad_resid), cb->pad_resid = NULL; /* never read half made */
    return rc;
}

/* The logit of a forward pass from the baseline's embedding base (only
 * the logit is needed) over example ex's positions. */
static int baseline_logit_pass(cpu_backend *cb, const sl_path *p, const sl_example *ex, sl_workspace *ws,
                               const float *base, float *logit, sl_error *err)
{
    const sl_model *m = cb->be.m;
    size_t n = (size_t)ex->len * m->c.d_model;
    if (pad_shortcut(cb, p) && !ex->keep && ex->len >= SL_RESTART_ROWS) {
        memcpy(sl_workspace_residual(ws), cb->pad_resid, n * sizeof *base);
        return sl_forward_from(m, ex, ws, NULL, m->c.n_layers, logit, err);
    }
    memcpy(sl_workspace_residual(ws), base, n * sizeof *base);
    return sl_forward_from(m, ex, ws, NULL, 0, logit, err);
}

/* The baseline (zeros, or every position the pad token) is the same
 * sequence for every example of a length, so examples of the length the
 * thread saw last reuse its logit: data cut to a fixed window (most of the
 * user's, all of bench/data/ig) pays one baseline pass per thread, not one
 * per example (of the some 45 passes an example's 16 steps cost). The same
 * pass on the same input, so the same bits as computing it again. */
static int baseline_logit(cpu_backend *cb, const sl_path *p, const sl_example *ex, sl_workspace *ws,
                          grad_scratch *s, float *logit, sl_error *err)
{
    int kind = p->baseline ? 2 : 1;
    if (ex->keep) return baseline_logit_pass(cb, p, ex, ws, s->base, logit, err);
    if (s->memo_kind == kind && s->memo_len == ex->len) {
        *logit = s->memo_logit;
        return SL_OK;
    }
    int rc = baseline_logit_pass(cb, p, ex, ws, s->base, logit, err);
    s->memo_kind = rc ? 0 : kind;
    s->memo_len = ex->len;
    s->memo_logit = *logit;
    return rc;
}

/* The point (step + 1/2) / K of the path from base to x (the midpoint
 * rule) into s->path; returns its alpha. */
static float path_point(grad_scratch *s, long n, int step, int K)
{
    float alpha = (step + 0.5f) / K;
    for (long k = 0; k < n; k++) s->path[k] = s->base[k] + alpha * s->delta[k];
    return alpha;
}

/* Integrated gradients' steps on a Mamba-1, block 0's norm and in_proj
 * from the path's products (models/ig_path.c): each step's attributions
 * come out of the backward as one number a position, d logit / d h .
 * (x - b), where the general path (gradient_one) sums the whole gradient. */
static int ig_mamba(const sl_model *m, int K, const sl_example *ex, grad_scratch *s, sl_workspace *ws, sl_error *err)
{
    int T = ex->len, rc = SL_OK;
    long ldpb = sl_ig_path_prepare(m, T, s->base, s->delta, s->acc, s->pb, s->pd, s->bias);
    sl_ig_path ig = {s->delta, s->pb, s->pd, s->bias, ldpb, 0, s->attr};
    memset(s->attr, 0, (size_t)T * sizeof *s->attr);
    for (int step = 0; !rc && step < K; step++) {
        ig.alpha = path_point(s, (long)T * m->c.d_model, step, K);
        rc = sl_gradient_ig(m, ex, ws, s->path, &ig, err);
    }
    for (int t = 0; t < T; t++) s->attr[t] /= K;
    return rc;
}

/* s->attr[t] = the sum of s->acc's row t (of d) */
static void sum_rows(grad_scratch *s, int T, int d)
{
    for (int t = 0; t < T; t++) {
        double a = 0;
        for (int k = 0; k < d; k++) a += s->acc[(long)t * d + k];
        s->attr[t] = a;
    }
}

static int gradient_one(cpu_backend *cb, int thread, const sl_example *ex, void *ctx, sl_error *err)
{
    const gradient_ctx *g = ctx;
    const sl_model *m = cb->be.m;
    sl_workspace *ws = cb->ws[thread];
    grad_scratch *s = &cb->gs[thread];
    int T = ex->len, d = m->c.d_model;
    long n = (long)T * d;
    float *logit = &g->out->logits[ex->slot];
    int rc = sl_embed(m, ex, ws, s->x, err);
    if (rc) return rc;
    if (g->p->steps == 0) {
        rc = sl_gradient(m, ex, ws, NULL, logit, NULL, err);
        const float *grad = sl_gradient_embed(ws);
        for (long k = 0; !rc && k < n; k++) s->acc[k] = s->x[k] * grad[k];
        sum_rows(s, T, d);
    } else {
        if (!g->p->baseline) {
            memset(s->base, 0, (size_t)n * sizeof *s->base);
        } else {
            sl_example pe = *ex;
            pe.tokens = g->p->baseline;
            rc = sl_embed(m, &pe, ws, s->base, err);
        }
        for (long k = 0; k < n; k++) s->delta[k] = s->x[k] - s->base[k];
        if (!rc) rc = baseline_logit(cb, g->p, ex, ws, s, &g->out->base_logits[ex->slot], err);
        if (!rc && !g->p->logits_given) rc = sl_forward(m, ex, ws, NULL, logit, err);
        int K = g->p->steps;
        if (m->c.arch == ARCH_MAMBA) {
            if (!rc) rc = ig_mamba(m, K, ex, s, ws, err);
        } else {
            memset(s->acc, 0, (size_t)n * sizeof *s->acc);
            for (int step = 0; !rc && step < K; step++) {
                float unused;
                path_point(s, n, step, K);
                rc = sl_gradient(m, ex, ws, s->path, &unused, NULL, err);
                const float *grad = sl_gradient_embed(ws);
                for (long k = 0; !rc && k < n; k++) s->acc[k] += grad[k];
            }
            for (long k = 0; k < n; k++) s->acc[k] *= s->delta[k] / K;
            sum_rows(s, T, d);
        }
    }
    float *attr = g->out->attr + (long)ex->slot * g->ld_attr;
    double total = 0;
    for (int t = 0; t < T; t++) {
        attr[t] = (float)s->attr[t];
        total += s->attr[t];
    }
    g->out->sum[ex->slot] = total;
    return rc;
}

static int cpu_embed_gradient(sl_backend *be, const sl_batch *b, const sl_path *p, const sl_path_out *out, sl_error *err)
{
    cpu_backend *cb = (cpu_backend *)be;
    int rc = prepare_gradient(cb, err);
    if (!rc) rc = prepare_pad_baseline(cb, p, b->L, err);
    gradient_ctx g = {p, out, b->L};
    return rc ? rc : each_example(cb, b, gradient_one, &g, err);
}

/* ---- lifetime ---- */

static void cpu_free(sl_backend *be)
{
    cpu_backend *cb = (cpu_backend *)be;
    for (int t = 0; cb->ws && t < cb->threads; t++) sl_workspace_free(cb->ws[t]);
    for (int t = 0; cb->gs && t < cb->threads; t++) {
        grad_scratch *s = &cb->gs[t];
        free(s->x), free(s->base), free(s->path), free(s->acc), free(s->delta), free(s->attr);
        free(s->pb), free(s->pd), free(s->bias);
    }
    free(cb->ws);
    free(cb->gs);
    free(cb->slot_err);
    free(cb->order);
    free(cb->pad_resid);
    free(cb->cache);
    sl_hooks_free(&cb->keep);
    drop_kept(cb);
    free(cb);
}

static const sl_backend_ops CPU_OPS = {cpu_forward, cpu_variants, cpu_embed_gradient, cpu_free};

sl_backend *sl_backend_cpu(const sl_model *m, int threads, int max_batch, int max_len, sl_error *err)
{
    cpu_backend *cb = calloc(1, sizeof *cb);
    if (!cb) {
        sl_fail(err, SL_ERUNTIME, "out of memory");
        return NULL;
    }
    cb->be = (sl_backend){&CPU_OPS, m, "cpu", max_batch > 0 ? max_batch : 1, max_len};
    cb->threads = threads > 0 ? threads : 1;
    cb->ws = calloc((size_t)cb->threads, sizeof *cb->ws);
    cb->slot_err = calloc((size_t)cb->be.max_batch, sizeof *cb->slot_err);
    cb->order = malloc((size_t)cb->be.max_batch * sizeof *cb->order);
    int rc = cb->ws && cb->slot_err && cb->order ? SL_OK : sl_fail(err, SL_ERUNTIME, "out of memory");
    for (int t = 0; !rc && t < cb->threads; t++)
        if (!(cb->ws[t] = sl_workspace_new(m, max_len, err))) rc = err->code;
    if (rc) {
        cpu_free(&cb->be);
        return NULL;
    }
    return &cb->be;
}
