/* The CPU backend's operations (models/ops.h), each on all rows of one
 * example: the architectures (models/mamba.c, transformer.c, forward.c)
 * call them once per example, the kernels loop over its positions. */
#include "models/cpu_ops.h"

#include <math.h>
#include <string.h>

#include "core/blas.h"
#include "core/mathx.h"
#include "core/mathx8.h"
#include "models/backward.h"
#include "models/forward_common.h"

int sl_fire(const sl_model *m, const sl_hooks *hooks, const sl_example *ex, int kind, int layer, float *data, int rows,
            int cols, int ld, sl_error *err)
{
    int id = sl_model_point(m, kind, layer);
    if (!sl_hooks_on(hooks, id)) return SL_OK;
    sl_hook_event ev = {
        .point = &m->points[id], .id = id, .example = ex->index, .slot = ex->slot, .len = ex->len,
        .heads = m->c.n_heads, .tokens = ex->tokens, .data = data, .rows = rows, .cols = cols, .ld = ld,
    };
    return sl_hooks_fire(hooks, &ev, err);
}

void sl_rmsnorm(const float *x, const float *w, float eps, int rows, int d, float *y)
{
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (long)r * d;
        float *yr = y + (long)r * d;
        float ss = 0;
        for (int i = 0; i < d; i++) ss += xr[i] * xr[i];
        float inv = 1.0f / sqrtf(ss / d + eps);
        for (int i = 0; i < d; i++) yr[i] = xr[i] * inv * w[i];
    }
}

void sl_layernorm(const float *x, const float *w, const float *b, float eps, int rows, int d, float *y)
{
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (long)r * d;
        float *yr = y + (long)r * d;
        float mean = 0, var = 0;
        for (int i = 0; i < d; i++) mean += xr[i];
        mean /= d;
        for (int i = 0; i < d; i++) var += (xr[i] - mean) * (xr[i] - mean);
        float inv = 1.0f / sqrtf(var / d + eps);
        for (int i = 0; i < d; i++) yr[i] = (xr[i] - mean) * inv * w[i] + (b ? b[i] : 0.0f);
    }
}

static sl_cpu_ops *cpu(sl_ops *o) { return (sl_cpu_ops *)o; }

/* Where view v's first row begins in this example's memory. */
static float *at(sl_ops *o, sl_view v)
{
    sl_cpu_ops *c = cpu(o);
    sl_workspace *ws = c->ws;
    const sl_mamba_tape *tp = c->tape;
    float *base = NULL;
    switch (v.buf) {
    case SL_H: base = ws->h; break;
    case SL_A: base = ws->a; break;
    case SL_OUT: base = ws->out; break;
    case SL_XZ: base = tp ? tp->xz : ws->xz; break;
    case SL_XC: base = tp ? tp->xc : ws->xc; break;
    case SL_XDBL: base = tp ? tp->xdbl : ws->xdbl; break;
    case SL_DELTA: base = tp ? tp->delta : ws->delta; break;
    case SL_Y: base = tp ? tp->y : ws->y; break;
    case SL_YG: base = ws->y; break;
    case SL_QKV: base = c->tf_tape ? c->tf_tape->qkv : ws->qkv; break;
    case SL_CTX: base = c->tf_tape ? c->tf_tape->ctx : ws->ctx; break;
    case SL_FF: base = ws->ff; break;
    case SL_H_IN: base = c->h_in; break;
    case SL_G: base = ws->bw->g; break;
    case SL_XPRE: base = tp ? tp->dsilu : ws->bw->buf[2]; break; /* the tape keeps SiLU' instead */
    case SL_DPRE: base = tp ? tp->dsoftplus : ws->bw->buf[0]; break; /* the tape keeps softplus' instead */
    case SL_DA: base = ws->bw->buf[8]; break;
    case SL_DY: base = ws->bw->buf[3]; break;
    case SL_DXZ: base = ws->bw->buf[4]; break;
    case SL_DX: base = ws->bw->buf[5]; break;
    case SL_DDELTA: base = ws->bw->buf[6]; break;
    case SL_DXDBL: base = ws->bw->buf[7]; break;
    case SL_ATTN_RESID: base = c->tf_tape->attn_resid; break;
    case SL_MLP_RESID: base = c->tf_tape->mlp_resid; break;
    case SL_FF_PRE: base = c->tf_tape->mlp_pre; break;
    case SL_DFF: base = ws->bw->buf[9]; break;
    case SL_DCTX: base = ws->bw->buf[10]; break;
    case SL_DQKV: base = ws->bw->buf[11]; break;
    case SL_ZXBCDT: base = ws->zxbcdt; break;
    case SL_XBC: base = ws->xbc; break;
    case SL_DZXBCDT: base = ws->bw->buf[4]; break;
    case SL_DXBC: base = ws->bw->buf[5]; break;
    case SL_POOLED: base = ws->pooled; break;
    case SL_LOGITS: base = c->logit; break;
    }
    return base + v.off;
}

/* Rows of a view: the example's positions, or one (pooled, logits). */
static int rows(sl_ops *o, sl_view v) { return v.buf >= SL_POOLED ? 1 : cpu(o)->ex->len; }

float *sl_cpu_at(sl_ops *o, sl_view v) { return at(o, v); }

int sl_cpu_rows(sl_ops *o, sl_view v) { return rows(o, v); }

/* A pass over positions row0.. shows hooks the whole example's rows, those
 * before row0 as the pass found them. */
static int fire(sl_ops *o, int kind, int layer, sl_view v, sl_error *err)
{
    const sl_cpu_ops *c = cpu(o);
    if (c->row0 && v.buf < SL_POOLED)
        return sl_fire(o->m, o->hooks, c->full, kind, layer, at(o, v) - (long)c->row0 * v.ld, rows(o, v) + c->row0,
                       v.cols, v.ld, err);
    return sl_fire(o->m, o->hooks, c->ex, kind, layer, at(o, v), rows(o, v), v.cols, v.ld, err);
}

static int norm(sl_ops *o, int kind, sl_view x, const float *w, const float *b, float eps, sl_view y, sl_error *err)
{
    (void)err;
    if (kind == SL_NORM_LAYER) sl_layernorm(at(o, x), w, b, eps, rows(o, x), x.cols, at(o, y));
    else sl_rmsnorm(at(o, x), w, eps, rows(o, x), x.cols, at(o, y));
    return SL_OK;
}

static int linear(sl_ops *o, sl_view x, const float *w, const float *b, sl_view y, sl_error *err)
{
    (void)err;
    sl_linear(at(o, x), x.ld, rows(o, x), x.cols, w, b, y.cols, at(o, y), y.ld);
    return SL_OK;
}

static int conv_silu(sl_ops *o, sl_view x, const float *w, const float *b, int K, int identity, sl_view y,
                     sl_error *err)
{
    (void)err;
    const sl_cpu_ops *c = cpu(o);
    if (c->tape) { /* the taped forward keeps SiLU' of the conv for the backward, from SiLU's own exp */
        float *dsilu = c->tape->dsilu;
        if (identity) sl_mamba_silu_keep(at(o, x), x.ld, rows(o, x), x.cols, at(o, y), dsilu);
        else sl_mamba_conv_silu_keep(at(o, x), x.ld, rows(o, x), x.cols, K, w, b, dsilu, at(o, y)); /* one pass */
    } else if (identity) {
        sl_mamba_silu(at(o, x), x.ld, rows(o, x), x.cols, at(o, y));
    } else {
        sl_mamba_conv_silu(at(o, x), x.ld, rows(o, x), x.cols, K, w, b, at(o, y));
    }
    if (c->kept) {
        sl_mamba_keep_conv_input(c->kept, at(o, x), x.ld, rows(o, x), x.cols, K);
        sl_mamba_keep_rows(c->kept->xz, at(o, x) - x.off, rows(o, x), x.ld); /* x and z */
        sl_mamba_keep_rows(c->kept->xc, at(o, y), rows(o, y), y.cols);
    }
    if (c->resume && !identity)
        sl_mamba_resume_conv(c->resume, c->row0, at(o, x), x.ld, rows(o, x), x.cols, K, w, b, at(o, y));
    return SL_OK;
}

/* The elementwise operations take whole rows (cols == ld). */
static int softplus(sl_ops *o, sl_view y, sl_error *err)
{
    (void)err;
    const sl_cpu_ops *c = cpu(o);
    float *p = at(o, y);
    long n = (long)rows(o, y) * y.cols;
    sl_mamba_softplus(p, n, c->tape ? c->tape->dsoftplus : NULL); /* softplus' for the backward, from the same exp */
    return SL_OK;
}

static int scan(sl_ops *o, sl_view x, sl_view delta, sl_view B, const float *A_t, const float *D, int ablated,
                sl_view y, sl_error *err)
{
    (void)err;
    sl_cpu_ops *c = cpu(o);
    const float *xp = at(o, x);
    float *yp = at(o, y);
    int T = rows(o, x), di = x.cols;
    if (ablated)
        for (long k = 0; k < (long)T * di; k++) yp[k] = D[k % di] * xp[k];
    else
        sl_mamba_scan_from(xp, at(o, delta), at(o, B) - B.off, B.ld, B.off, B.off + B.cols, T, di, B.cols, A_t, D,
                           c->resume ? sl_mamba_kept_state(c->resume, c->row0) : NULL, c->ws->state, yp,
                           c->tape ? c->tape->ckpt : c->kept ? c->kept->state : NULL);
    if (c->kept) sl_mamba_keep_rows(c->kept->y, yp, T, di);
    return SL_OK;
}

/* In place (out is y), z becomes the gate as the hook sees it where the
 * gate runs in two steps around its hook; out of place (the taped
 * forward), z becomes what the backward multiplies by: the tape's xz
 * (sl_mamba_tape). */
static int gate(sl_ops *o, int step, int ablated, sl_view z, sl_view y, sl_view out, sl_error *err)
{
    (void)err;
    const sl_cpu_ops *c = cpu(o);
    float *zp = at(o, z), *yp = at(o, y), *op = at(o, out);
    int T = rows(o, y), di = y.cols;
    if (c->tape && !ablated && op != yp) { /* x, read by the conv only, gives way to SiLU'(z) */
        sl_mamba_gate_keep(zp, z.ld, yp, y.ld, T, di, op, out.ld, c->tape->xz, z.ld);
        return SL_OK;
    }
    /* out = y * SiLU(z) in one pass; z itself is left alone where no hook
     * sees the gate (step BOTH), as ops.h allows */
    if (!ablated && (op != yp || step == SL_OP_GATE_BOTH)) {
        sl_mamba_gate(zp, z.ld, yp, y.ld, T, di, op, out.ld);
        return SL_OK;
    }
    if (op != yp) { /* the gate ablated: SiLU(z) is 1, so out = y */
        for (int t = 0; t < T; t++) memcpy(op + (long)t * out.ld, yp + (long)t * y.ld, (size_t)di * sizeof *op);
        return SL_OK;
    }
    if (step != SL_OP_GATE_MULTIPLY)
        for (int t = 0; t < T; t++)
            for (int k = 0; k < di; k++)
                zp[(long)t * z.ld + k] = ablated ? 1.0f : sl_silu(zp[(long)t * z.ld + k]);
    if (step != SL_OP_GATE_ACTIVATE)
        for (int t = 0; t < T; t++)
            for (int k = 0; k < di; k++) yp[(long)t * y.ld + k] *= zp[(long)t * z.ld + k];
    return SL_OK;
}

static int add(sl_ops *o, sl_view x, sl_view y, sl_error *err)
{
    (void)err;
    const float *xp = at(o, x);
    float *yp = at(o, y);
    long n = (long)rows(o, y) * y.cols;
    for (long k = 0; k < n; k++) yp[k] += xp[k];
    return SL_OK;
}

/* GPT-NeoX rotate-half on q and k of every head. */
static void rope_rows(const sl_config *c, const float *table, float *qkv, int T)
{
    int d = c->d_model, dh = c->d_head, half = dh / 2;
    for (int t = 0; t < T; t++) {
        const float *cs = table + (long)t * 2 * half, *sn = cs + half;
        for (int part = 0; part < 2; part++)
            for (int h = 0; h < c->n_heads; h++) {
                float *x = qkv + (long)t * 3 * d + part * d + h * dh;
                for (int i = 0; i < half; i++) {
                    float a = x[i], b = x[i + half];
                    x[i] = a * cs[i] - b * sn[i];
                    x[i + half] = b * cs[i] + a * sn[i];
                }
            }
    }
}

static void activation_rows(int act, float *x, long n)
{
    if (act == ACT_GELU) {
        long k = 0;
#ifdef SL_HAVE_MATHX8
        /* four vectors at a time (core/mathx8.h, sl_gelu's bits): GCC's
         * loop took one through a chain of some 60 dependent steps */
        for (; k + 32 <= n; k += 32) {
            v8f v[4];
            for (int u = 0; u < 4; u++) v[u] = v8_load(x + k + 8 * u);
            sl_gelu8n(v, 4);
            for (int u = 0; u < 4; u++) v8_store(x + k + 8 * u, v[u]);
        }
#endif
        for (; k < n; k++) x[k] = sl_gelu(x[k]);
    } else
        for (long k = 0; k < n; k++) x[k] = x[k] > 0.0f ? x[k] : 0.0f;
}

static int rope(sl_ops *o, sl_error *err)
{
    (void)err;
    sl_cpu_ops *c = cpu(o);
    rope_rows(&o->m->c, c->ws->pos_table, c->ws->qkv, c->ex->len);
    return SL_OK;
}

static int attention(sl_ops *o, int layer, sl_error *err)
{
    return sl_attention(o->m, cpu(o)->ex, cpu(o)->ws, o->hooks, layer, err);
}

static int activation(sl_ops *o, int act, sl_view y, sl_error *err)
{
    (void)err;
    activation_rows(act, at(o, y), (long)rows(o, y) * y.cols);
    return SL_OK;
}

/* Into ws->keep where the taped forward set it: [L][d] after the
 * attention's write, [L][d] after the MLP's, [L][d_ff] the pre-activation. */
static int keep(sl_ops *o, int what, sl_view v, sl_error *err)
{
    (void)err;
    sl_workspace *ws = cpu(o)->ws;
    if (!ws->keep) return SL_OK;
    size_t Ld = (size_t)ws->max_len * o->m->c.d_model;
    float *dst = ws->keep + (what == SL_KEEP_ATTN_RESID ? 0 : what == SL_KEEP_MLP_RESID ? Ld : 2 * Ld);
    memcpy(dst, at(o, v), (size_t)rows(o, v) * v.cols * sizeof *dst);
    return SL_OK;
}

static int embed(sl_ops *o, const float *emb, float scale, sl_view y, sl_error *err)
{
    (void)err;
    const sl_example *ex = cpu(o)->ex;
    int d = y.cols;
    float *h = at(o, y);
    for (int t = 0; t < ex->len; t++) {
        const float *src = emb + (long)ex->tokens[t] * d;
        float *dst = h + (long)t * d;
        for (int k = 0; k < d; k++) dst[k] = scale * src[k];
    }
    return SL_OK;
}

static int add_positions(sl_ops *o, const float *learned, sl_view y, sl_error *err)
{
    (void)err;
    const float *pe = learned ? learned : cpu(o)->ws->pos_table;
    float *h = at(o, y);
    long n = (long)rows(o, y) * y.cols;
    for (long k = 0; k < n; k++) h[k] += pe[k];
    return SL_OK;
}

/* Only the kept positions (ex->keep) count. */
static int pool(sl_ops *o, int pooling, sl_view x, sl_view y, sl_error *err)
{
    (void)err;
    const sl_cpu_ops *c = cpu(o);
    const sl_example *ex = c->row0 ? c->full : c->ex; /* a pass from row0 pools every row */
    int d = x.cols, T = ex->len;
    const float *fin = at(o, x) - (long)c->row0 * x.ld;
    float *p = at(o, y);
    if (pooling == POOL_CLS) {
        memcpy(p, fin, (size_t)d * sizeof *p);
    } else if (pooling == POOL_LAST) {
        int t = T - 1;
        while (ex->keep && t > 0 && !ex->keep[t]) t--;
        memcpy(p, fin + (long)t * d, (size_t)d * sizeof *p);
    } else {
        int kept = 0;
        memset(p, 0, (size_t)d * sizeof *p);
        for (int t = 0; t < T; t++) {
            if (ex->keep && !ex->keep[t]) continue;
            kept++;
            for (int i = 0; i < d; i++) p[i] += fin[(long)t * d + i];
        }
        for (int i = 0; i < d; i++) p[i] /= kept ? kept : 1;
    }
    return SL_OK;
}

static int head(sl_ops *o, const float *w, const float *b, int nrows, sl_view x, sl_view y, sl_error *err)
{
    (void)err;
    int d = x.cols;
    const float *p = at(o, x);
    float z[2];
    for (int r = 0; r < nrows; r++) {
        float s = b ? b[r] : 0.0f;
        for (int i = 0; i < d; i++) s += w[r * d + i] * p[i];
        z[r] = s;
    }
    *at(o, y) = nrows == 2 ? z[1] - z[0] : z[0];
    return SL_OK;
}

static int delta2(sl_ops *o, sl_view dt, const float *bias, float lo, float hi, sl_view delta, sl_error *err)
{
    (void)err;
    sl_delta2(at(o, dt), dt.ld, rows(o, dt), dt.cols, bias, lo, hi, at(o, delta), delta.ld);
    return SL_OK;
}

sl_ssd_in sl_cpu_ssd_in(sl_ops *o, sl_view x, sl_view delta, sl_view B, sl_view C, const float *A, const float *D)
{
    const sl_config *c = &o->m->c;
    return (sl_ssd_in){.T = rows(o, x), .H = c->nheads, .P = c->headdim, .G = c->ngroups, .N = c->d_state,
                       .D_per_channel = c->D_has_hdim, .x = at(o, x), .delta = at(o, delta), .B = at(o, B),
                       .C = at(o, C), .A = A, .D = D, .ldx = x.ld, .ldd = delta.ld, .ldb = B.ld};
}

/* The states go to ssd_ckpt where the backward of a block runs it, to
 * kept's where a pass keeps them for restarts; a restart resumes from the
 * kept one. */
static int ssd(sl_ops *o, sl_view x, sl_view delta, sl_view B, sl_view C, const float *A, const float *D, int ablated,
               sl_view y, sl_error *err)
{
    (void)err;
    sl_cpu_ops *c = cpu(o);
    sl_ssd_in in = sl_cpu_ssd_in(o, x, delta, B, C, A, D);
    if (ablated) sl_ssd_skip(&in, at(o, y), y.ld);
    else
        sl_ssd_from(&in, c->resume ? sl_mamba_kept_state(c->resume, c->row0) : NULL, c->ws->state, at(o, y), y.ld,
                    c->ssd_ckpt ? c->ssd_ckpt : c->kept ? c->kept->state : NULL);
    return SL_OK;
}

static int gated_norm(sl_ops *o, sl_view y, sl_view g, const float *w, int group, float eps, int before, sl_view out,
                      sl_error *err)
{
    (void)err;
    sl_gated_norm(at(o, y), y.ld, at(o, g), g.ld, rows(o, y), y.cols, w, group, eps, before, at(o, out), out.ld);
    return SL_OK;
}

static const sl_ops_table cpu_table = {
    .fire = fire, .norm = norm, .linear = linear, .conv_silu = conv_silu, .softplus = softplus, .scan = scan,
    .gate = gate, .add = add, .rope = rope, .attention = attention, .activation = activation, .keep = keep,
    .embed = embed, .add_positions = add_positions, .pool = pool, .head = head, .delta2 = delta2, .ssd = ssd,
    .gated_norm = gated_norm,
};

sl_cpu_ops sl_cpu_ops_on(const sl_model *m, const sl_example *ex, sl_workspace *ws, const sl_hooks *hooks,
                         float *logit)
{
    return (sl_cpu_ops){.ops = {.t = &cpu_table, .g = &sl_cpu_grad_table, .m = m, .hooks = hooks, .taped = 1},
                        .ex = ex, .ws = ws, .logit = logit};
}

sl_cpu_ops sl_cpu_ops_from(const sl_model *m, const sl_example *ex, int row0, sl_example *sx, sl_workspace *sw,
                           const sl_hooks *hooks, float *logit)
{
    *sx = *ex;
    sx->tokens += row0;
    sx->len -= row0;
    if (sx->keep) sx->keep += row0;
    sl_cpu_ops c = sl_cpu_ops_on(m, sx, sw, hooks, logit);
    c.row0 = row0;
    c.full = ex;
    return c;
}

void sl_cpu_kept_rows_before(float *fin, const float *kept, int d, int row0, int *fin_rows)
{
    if (*fin_rows < row0)
        memcpy(fin + (size_t)*fin_rows * d, kept + (size_t)*fin_rows * d, (size_t)(row0 - *fin_rows) * d * sizeof *fin);
    *fin_rows = row0;
}
