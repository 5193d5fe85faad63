/* The CPU backend's gradient of one example (models/model.h: sl_gradient):
 * the kernels of the linear's and the norms' backward, the backward's
 * workspace (ws->bw, on first use) and its tape, which the driving loop
 * (models/gradient.c) points the operations at block by block. */
#include "models/backward.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/simd.h"
#include "models/arch.h"
#include "models/attention_tile.h"
#include "models/cpu_ops.h"
#include "models/ig_path.h"

void sl_linear_backward(const float *dy, int ldy, int rows, int out, const float *W, int in, float *dx, int ldx,
                        float beta)
{
    if (rows > 0) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, in, out, 1.0f, dy, ldy, W, in, beta, dx, ldx);
}

void sl_layernorm_backward(const float *x, const float *w, float eps, int rows, int d, const float *dy, float *dx,
                           int accumulate)
{
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (long)r * d, *gr = dy + (long)r * d;
        double mean, rstd = sl_norm_rstd(xr, d, 1, eps, &mean), m1 = 0, m2 = 0;
#pragma omp simd reduction(+ : m1, m2)
        for (int i = 0; i < d; i++) {
            double g = (double)gr[i] * w[i], xh = (xr[i] - mean) * rstd;
            m1 += g;
            m2 += g * xh;
        }
        m1 /= d;
        m2 /= d;
        for (int i = 0; i < d; i++) {
            double xh = (xr[i] - mean) * rstd;
            float v = (float)(rstd * ((double)gr[i] * w[i] - m1 - xh * m2));
            dx[(long)r * d + i] = accumulate ? dx[(long)r * d + i] + v : v;
        }
    }
}

/* RMSNorm's backward takes this many rows at a time (fewer at the end):
 * each row's two double sums still run over i in order, as one row alone
 * would (the same bits), but eight independent chains keep the adder busy
 * where one row's chain waited on each add's latency (2.8x at d 64 alone,
 * 1.7x inside IG). The forward's float sum could not do the same: GCC
 * vectorises its products and adds them in order unfused, but fuses the
 * tail, so its bits depend on how GCC splits the loop. */
#define SL_NORM_ROWS 8

#if defined(__AVX2__) && defined(__FMA__)
/* rmsnorm_backward_rows's two sums of eight rows of d (a multiple of 8),
 * a row to each lane of two vectors of doubles: eight columns of the eight
 * rows transposed at a time (v8_transpose8), then summed column after
 * column, the same FMAs in the same order as the scalar loop. GCC compiled
 * that loop into loads of one float at a time (25% of the function with
 * AVX-512) and, on AVX2, into inserts and stack round trips: the sums were
 * 2.6% of a Mamba gradient at L 2,497 here. */
static void rmsnorm_sums8(const float *x, const float *w, int d, const float *dy, double *ss, double *dot)
{
    __m256d s[2] = {_mm256_setzero_pd(), _mm256_setzero_pd()}, t[2] = {s[0], s[0]};
    for (int i0 = 0; i0 < d; i0 += 8) {
        v8f xr[8], gr[8], xc[8], gc[8];
        for (int j = 0; j < 8; j++) {
            xr[j] = v8_load(x + (long)j * d + i0);
            gr[j] = v8_load(dy + (long)j * d + i0);
        }
        v8_transpose8(xr, xc);
        v8_transpose8(gr, gc);
        for (int k = 0; k < 8; k++)
            for (int h = 0; h < 2; h++) { /* rows 4h..4h+3 */
                __m128 xq = h ? _mm256_extractf128_ps((__m256)xc[k], 1) : _mm256_castps256_ps128((__m256)xc[k]);
                __m128 gq = h ? _mm256_extractf128_ps((__m256)gc[k], 1) : _mm256_castps256_ps128((__m256)gc[k]);
                __m256d xd = _mm256_cvtps_pd(xq), gw = _mm256_mul_pd(_mm256_cvtps_pd(gq), _mm256_set1_pd(w[i0 + k]));
                s[h] = _mm256_fmadd_pd(xd, xd, s[h]);
                t[h] = _mm256_fmadd_pd(gw, xd, t[h]);
            }
    }
    for (int h = 0; h < 2; h++) {
        _mm256_storeu_pd(ss + 4 * h, s[h]);
        _mm256_storeu_pd(dot + 4 * h, t[h]);
    }
}
#endif

static void rmsnorm_backward_rows(const float *x, const float *w, float eps, int n, int d, const float *dy, float *dx,
                                  int accumulate)
{
    double ss[SL_NORM_ROWS] = {0}, dot[SL_NORM_ROWS] = {0};
#if defined(__AVX2__) && defined(__FMA__)
    if (n == SL_NORM_ROWS && d % 8 == 0) rmsnorm_sums8(x, w, d, dy, ss, dot);
    else
#endif
        for (int i = 0; i < d; i++)
            for (int j = 0; j < n; j++) {
                const float *xr = x + (long)j * d, *gr = dy + (long)j * d;
                ss[j] += (double)xr[i] * xr[i];
                dot[j] += (double)gr[i] * w[i] * xr[i];
            }
    /* dividing by a power of two is multiplying by its inverse, exactly;
     * vdivpd was half the function at d 64 */
    int pow2 = (d & (d - 1)) == 0;
    double inv = 1.0 / d;
    for (int j = 0; j < n; j++) {
        const float *xr = x + (long)j * d, *gr = dy + (long)j * d;
        float *o = dx + (long)j * d;
        double rs = 1.0 / sqrt(ss[j] / d + eps), dt = dot[j];
        if (pow2 && accumulate)
            for (int i = 0; i < d; i++) o[i] += (float)(rs * gr[i] * w[i] - xr[i] * rs * rs * rs * dt * inv);
        else if (pow2)
            for (int i = 0; i < d; i++) o[i] = (float)(rs * gr[i] * w[i] - xr[i] * rs * rs * rs * dt * inv);
        else
            for (int i = 0; i < d; i++) {
                float v = (float)(rs * gr[i] * w[i] - xr[i] * rs * rs * rs * dt / d);
                o[i] = accumulate ? o[i] + v : v;
            }
    }
}

void sl_rmsnorm_backward(const float *x, const float *w, float eps, int rows, int d, const float *dy, float *dx,
                         int accumulate)
{
    for (int r = 0; r < rows; r += SL_NORM_ROWS) {
        int n = rows - r < SL_NORM_ROWS ? rows - r : SL_NORM_ROWS;
        rmsnorm_backward_rows(x + (long)r * d, w, eps, n, d, dy + (long)r * d, dx + (long)r * d, accumulate);
    }
}

void sl_backward_ws_free(sl_backward_ws *b)
{
    if (!b) return;
    free(b->tape);
    free(b->g);
    for (int i = 0; i < SL_BW_BUFS; i++) free(b->buf[i]);
    float *tf[] = {b->qkv_tape, b->ctx_tape, b->lse_tape, b->keep_tape, b->vt, b->kr, b->dout, b->dq, b->dk, b->dv, b->rowd, b->tile};
    for (size_t i = 0; i < sizeof tf / sizeof *tf; i++) free(tf[i]);
    free(b->mtape);
    free(b->ckpt);
    free(b->chunk);
    free(b);
}

static sl_backward_ws *backward_ws(const sl_model *m, sl_workspace *ws, sl_error *err)
{
    if (ws->bw) return ws->bw;
    const sl_config *c = &m->c;
    size_t L = (size_t)ws->max_len, d = (size_t)c->d_model, wide = 3 * d;
    if (c->arch == ARCH_MAMBA) {
        size_t mw = 2 * (size_t)c->d_inner + (size_t)c->dt_rank + 2 * (size_t)c->d_state;
        if (mw > wide) wide = mw;
    } else if (c->arch == ARCH_MAMBA2) {
        size_t mw = 2 * (size_t)c->d_inner + 2 * (size_t)c->ngroups * c->d_state + (size_t)c->nheads; /* in_proj's */
        if (mw > wide) wide = mw;
    } else if ((size_t)c->d_ff > wide) {
        wide = (size_t)c->d_ff;
    }
    sl_backward_ws *b = calloc(1, sizeof *b);
    int ok = b && (b->tape = malloc((size_t)(c->n_layers + 1) * L * d * 4)) && (b->g = malloc(L * d * 4));
    for (int i = 0; ok && i < SL_BW_BUFS; i++) ok = (b->buf[i] = calloc(L * wide, 4)) != NULL;
    if (ok && c->arch == ARCH_TRANSFORMER) {
        size_t dh = (size_t)c->d_head, nl = (size_t)c->n_layers;
        ok = (b->qkv_tape = malloc(nl * L * 3 * d * 4)) && (b->ctx_tape = malloc(nl * L * d * 4))
          && (b->lse_tape = malloc(nl * (size_t)c->n_heads * L * 4))
          && (b->keep_tape = malloc(nl * L * (2 * d + (size_t)c->d_ff) * 4)) && (b->vt = malloc((size_t)ws->kt_ld * dh * 4))
          && (b->kr = malloc(L * dh * 4)) && (b->dout = malloc(L * dh * 4)) && (b->dq = malloc(L * dh * 4))
          && (b->dk = malloc(L * dh * 4)) && (b->dv = malloc(L * dh * 4)) && (b->rowd = malloc(L * 4))
          && (b->tile = malloc(2 * SL_QB * SL_KEY_TILE * 4));
    } else if (ok && c->arch == ARCH_MAMBA2) {
        /* one block's kept states at a time: each block's backward runs its forward again */
        size_t scratch = (sl_ssd_scratch_floats(c->nheads, c->headdim, c->ngroups, c->d_state) * 4 + 63) & ~(size_t)63;
        ok = (b->ckpt = malloc(sl_ssd_ckpt_floats(c->nheads, c->headdim, c->d_state, (int)L) * 4))
          && (b->chunk = aligned_alloc(64, scratch));
    } else if (ok) {
        ok = sl_mamba_backward_alloc(c, L, b);
    }
    if (!ok) {
        sl_backward_ws_free(b);
        sl_fail(err, SL_ERUNTIME, "out of memory for the backward pass of %zu positions", L);
        return NULL;
    }
    ws->bw = b;
    return b;
}

/* ---- the CPU's tape (models/ops.h: sl_tape): ws->bw, one example's rows ---- */

typedef struct {
    sl_tape tape;
    float *grad;         /* [n_layers + 1][T][d], each block's input's gradient; or NULL */
    sl_mamba_tape mamba; /* the block in hand's place on the tapes */
    sl_tf_tape tf;
} cpu_tape;

static float *kept(sl_cpu_ops *c, int i)
{
    return c->ws->bw->tape + (size_t)i * c->ws->max_len * c->ops.m->c.d_model;
}

/* A Mamba block's activations go to its tape (z kept, the gated y in
 * ws->y), so that its backward need not run it again; a Transformer block
 * keeps its residual after each half and its MLP's pre-activation
 * (ws->keep), its attention's log-sum-exps (ws->lse) and, at its end, q, k,
 * v and the context. A Mamba-2 block runs plain: its backward runs it again
 * from its input. */
static int forward_begin(sl_tape *tp, sl_ops *o, int i, sl_error *err)
{
    (void)err;
    cpu_tape *t = (cpu_tape *)tp;
    sl_cpu_ops *c = (sl_cpu_ops *)o;
    int arch = o->m->c.arch;
    c->h_in = kept(c, i);
    if (i == o->m->c.n_layers) return SL_OK;
    if (arch == ARCH_MAMBA) {
        t->mamba = sl_mamba_tape_at(o->m, c->ws, i);
        c->tape = &t->mamba;
    } else if (arch == ARCH_TRANSFORMER) {
        t->tf = sl_tf_tape_at(o->m, c->ws, i);
        c->ws->lse = t->tf.lse;
        c->ws->keep = t->tf.attn_resid;
    }
    return SL_OK;
}

static void forward_end(sl_tape *tp, sl_ops *o, int i)
{
    cpu_tape *t = (cpu_tape *)tp;
    sl_cpu_ops *c = (sl_cpu_ops *)o;
    sl_workspace *ws = c->ws;
    size_t d = (size_t)o->m->c.d_model, T = (size_t)c->ex->len;
    c->tape = NULL;
    if (o->m->c.arch != ARCH_TRANSFORMER || i == o->m->c.n_layers) return;
    ws->lse = ws->keep = NULL;
    memcpy(t->tf.qkv, ws->qkv, T * 3 * d * sizeof *ws->qkv);
    memcpy(t->tf.ctx, ws->ctx, T * d * sizeof *ws->ctx);
}

/* What block i's backward reads: its tapes; a Mamba-2 block's ssd keeps
 * its states in ckpt as the backward runs it again. */
static int backward_begin(sl_tape *tp, sl_ops *o, int i, sl_error *err)
{
    (void)err;
    cpu_tape *t = (cpu_tape *)tp;
    sl_cpu_ops *c = (sl_cpu_ops *)o;
    int arch = o->m->c.arch;
    c->h_in = kept(c, i);
    c->tape = NULL, c->tf_tape = NULL, c->ssd_ckpt = NULL;
    if (i == o->m->c.n_layers) return SL_OK;
    if (arch == ARCH_MAMBA) t->mamba = sl_mamba_tape_at(o->m, c->ws, i), c->tape = &t->mamba;
    else if (arch == ARCH_MAMBA2) c->ssd_ckpt = c->ws->bw->ckpt;
    else t->tf = sl_tf_tape_at(o->m, c->ws, i), c->tf_tape = &t->tf;
    return SL_OK;
}

static int backward_end(sl_tape *tp, sl_ops *o, int i, sl_error *err)
{
    (void)err;
    cpu_tape *t = (cpu_tape *)tp;
    sl_cpu_ops *c = (sl_cpu_ops *)o;
    size_t n = (size_t)c->ex->len * o->m->c.d_model;
    if (t->grad) memcpy(t->grad + (size_t)i * n, c->ws->bw->g, n * sizeof *t->grad);
    return SL_OK;
}

static const sl_tape_ops cpu_tape_ops = {forward_begin, forward_end, backward_begin, backward_end};

static int gradient(const sl_model *m, const sl_example *ex, sl_workspace *ws, const float *embed_in, float *logit,
                    float *grad, const sl_ig_path *ig, sl_error *err)
{
    if (m->c.d_model > 4096) return sl_fail(err, SL_EINPUT, "gradients: d_model %d above 4096", m->c.d_model);
    if (!backward_ws(m, ws, err)) return err->code;
    int rc = sl_forward_start(m, ex, ws, embed_in, err);
    if (rc) return rc;
    cpu_tape t = {.tape = {&cpu_tape_ops}, .grad = grad};
    sl_cpu_ops c = sl_cpu_ops_on(m, ex, ws, NULL, logit);
    c.ops.ig_path = ig != NULL;
    c.ig = ig;
    return sl_arch_gradient(&c.ops, &t.tape, err);
}

int sl_gradient(const sl_model *m, const sl_example *ex, sl_workspace *ws, const float *embed_in, float *logit, float *grad,
                sl_error *err)
{
    return gradient(m, ex, ws, embed_in, logit, grad, NULL, err);
}

int sl_gradient_ig(const sl_model *m, const sl_example *ex, sl_workspace *ws, const float *path, const sl_ig_path *ig,
                   sl_error *err)
{
    if (m->c.arch != ARCH_MAMBA) return sl_fail(err, SL_ERUNTIME, "sl_gradient_ig: a Mamba-1 only");
    float unused;
    return gradient(m, ex, ws, path, &unused, NULL, ig, err);
}

const float *sl_gradient_embed(const sl_workspace *ws) { return ws->bw->g; }
