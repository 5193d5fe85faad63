/* Prefix reuse inside Mamba blocks on the CPU (models/cpu_prefix.h). */
#include "models/cpu_prefix.h"

#include <stdlib.h>
#include <string.h>

#include "models/arch.h"
#include "models/cpu_ops.h"
#include "models/forward_common.h"
#include "models/mamba_scan.h"

_Static_assert(SL_SSD_CHUNK == SL_SCAN_CHUNK, "a Mamba-2's kept states are a Mamba-1's, chunk for chunk");

static int n_chunks(int max_len) { return (max_len + SL_SCAN_CHUNK - 1) / SL_SCAN_CHUNK; }

/* The conv's channels: x (Mamba-1), or x, B and C (Mamba-2's xBC) */
static int conv_width(const sl_config *c)
{
    return c->arch == ARCH_MAMBA2 ? c->d_inner + 2 * c->ngroups * c->d_state : c->d_inner;
}

size_t sl_mamba_kept_bytes(const sl_model *m, int max_len, int activations)
{
    const sl_config *c = &m->c;
    size_t di = (size_t)c->d_inner, cw = (size_t)conv_width(c), K1 = (size_t)c->d_conv - 1;
    size_t nl = (size_t)c->n_layers, L = (size_t)max_len, nc = (size_t)n_chunks(max_len);
    size_t floats = nl * nc * ((size_t)c->d_state * di + K1 * cw) + (4 * K1 + 1) * cw + L * c->d_model;
    return (floats + (activations ? nl * L * 4 * di : 0)) * sizeof(float);
}

sl_mamba_kept *sl_mamba_kept_new(const sl_model *m, int max_len, int activations)
{
    const sl_config *c = &m->c;
    int nl = c->n_layers, S = c->d_state, di = c->d_inner, K = c->d_conv, cw = conv_width(c);
    size_t nc = (size_t)n_chunks(max_len), L = (size_t)max_len;
    sl_mamba_kept *k = calloc((size_t)nl, sizeof *k);
    float *state = malloc((size_t)nl * nc * S * di * sizeof *state);
    float *xleft = malloc(((size_t)nl * nc * (K - 1) + 1) * cw * sizeof *xleft);
    float *tmp = malloc(((size_t)4 * (K - 1) + 1) * cw * sizeof *tmp);
    float *fin = malloc(L * c->d_model * sizeof *fin);
    float *act = activations ? malloc((size_t)nl * L * 4 * di * sizeof *act) : NULL;
    if (!k || !state || !xleft || !tmp || !fin || (activations && !act)) {
        free(k), free(state), free(xleft), free(tmp), free(fin), free(act);
        return NULL;
    }
    for (int i = 0; i < nl; i++) {
        k[i] = (sl_mamba_kept){.S = S, .di = di, .K = K, .cw = cw, .tmp = tmp, .fin = fin};
        k[i].state = state + (size_t)i * nc * S * di;
        k[i].xleft = xleft + (size_t)i * nc * (K - 1) * cw;
        if (act) {
            k[i].xz = act + (size_t)i * L * 4 * di;
            k[i].xc = k[i].xz + L * 2 * di;
            k[i].y = k[i].xc + L * di;
        }
    }
    return k;
}

void sl_mamba_kept_free(sl_mamba_kept *k)
{
    if (!k) return;
    free(k[0].state);
    free(k[0].xleft);
    free(k[0].tmp);
    free(k[0].fin);
    free(k[0].xz);
    free(k);
}

int sl_restart_row(int first_row, int len)
{
    int align = SL_RESTART_ALIGN;
    while (align % SL_SCAN_CHUNK) align += SL_RESTART_ALIGN;
    int row = first_row < len - SL_RESTART_ROWS ? first_row : len - SL_RESTART_ROWS;
    return row > 0 ? row / align * align : 0;
}

const float *sl_mamba_kept_state(const sl_mamba_kept *k, int row0)
{
    return row0 ? k->state + (size_t)(row0 / SL_SCAN_CHUNK) * k->S * k->di : NULL;
}

static float *kept_rows(const sl_mamba_kept *k, int row0)
{
    return k->xleft + (size_t)(row0 / SL_SCAN_CHUNK) * (k->K - 1) * k->cw;
}

void sl_mamba_keep_conv_input(const sl_mamba_kept *k, const float *x, int ldx, int T, int di, int K)
{
    for (int c0 = SL_SCAN_CHUNK; c0 < T; c0 += SL_SCAN_CHUNK) {
        float *dst = kept_rows(k, c0);
        for (int r = 0; r < K - 1; r++) {
            int t = c0 - (K - 1) + r;
            if (t < 0) memset(dst + (size_t)r * di, 0, (size_t)di * sizeof *dst);
            else memcpy(dst + (size_t)r * di, x + (long)t * ldx, (size_t)di * sizeof *dst);
        }
    }
}

void sl_mamba_resume_conv(const sl_mamba_kept *k, int row0, const float *x, int ldx, int T, int di, int K,
                          const float *w, const float *b, float *y)
{
    int m = T < K - 1 ? T : K - 1;
    if (m < 1) return;
    /* the kept rows, then the pass's first m: rows K-1.. of the conv over
     * them have all their taps, in the kernel's order */
    float *in = k->tmp, *out = k->tmp + (size_t)2 * (K - 1) * di;
    memcpy(in, kept_rows(k, row0), (size_t)(K - 1) * di * sizeof *in);
    for (int t = 0; t < m; t++) memcpy(in + (size_t)(K - 1 + t) * di, x + (long)t * ldx, (size_t)di * sizeof *in);
    sl_mamba_conv_silu(in, di, K - 1 + m, di, K, w, b, out);
    memcpy(y, out + (size_t)(K - 1) * di, (size_t)m * di * sizeof *y);
}

void sl_mamba_keep_rows(float *dst, const float *src, int T, int cols)
{
    if (dst) memcpy(dst, src, (size_t)T * cols * sizeof *dst);
}

int sl_mamba_block_switched(const sl_model *m, const sl_example *ex, sl_workspace *ws, int i, unsigned off,
                            const sl_mamba_kept *kept, sl_error *err)
{
    const sl_config *c = &m->c;
    const sl_mamba_layer *w = &m->mamba[i];
    const sl_mamba_kept *k = &kept[i];
    int d = c->d_model, di = c->d_inner, S = c->d_state, R = c->dt_rank, nx = R + 2 * S, T = ex->len;
    if (c->arch != ARCH_MAMBA || !k->xz || !off)
        return sl_fail(err, SL_ERUNTIME, "example %ld: block %d cannot run switched", ex->index, i);
    sl_cpu_ops co = sl_cpu_ops_on(m, ex, ws, NULL, NULL);
    sl_ops *o = &co.ops;
    const sl_ops_table *t = o->t;
    sl_view h = sl_rows(SL_H, d), out = sl_rows(SL_OUT, d), xc = sl_rows(SL_XC, di);
    sl_view delta = sl_rows(SL_DELTA, di), y = sl_rows(SL_Y, di), xdbl = sl_rows(SL_XDBL, nx);
    sl_view x = sl_cols(SL_XZ, 0, di, 2 * di), z = sl_cols(SL_XZ, di, di, 2 * di), B = sl_cols(SL_XDBL, R, S, nx);
    size_t n = (size_t)T * di;
    int rc = SL_OK;
    if (off & SL_OFF_CONV) { /* in_proj's output as it was, the rest again */
        memcpy(ws->xz, k->xz, 2 * n * sizeof *ws->xz);
        rc = t->conv_silu(o, x, w->conv_w, w->conv_b, c->d_conv, 1, xc, err);
        if (!rc) rc = t->linear(o, xc, w->xproj_w, NULL, xdbl, err);
        if (!rc) rc = t->linear(o, sl_cols(SL_XDBL, 0, R, nx), w->dt_w, w->dt_b, delta, err);
        if (!rc) rc = t->softplus(o, delta, err);
        if (!rc) rc = t->scan(o, xc, delta, B, w->A_t, w->D, !!(off & SL_OFF_SSM), y, err);
    } else if (off & SL_OFF_SSM) { /* y = D x from the conv's output as it was */
        memcpy(ws->xz, k->xz, 2 * n * sizeof *ws->xz);
        memcpy(ws->xc, k->xc, n * sizeof *ws->xc);
        rc = t->scan(o, xc, delta, B, w->A_t, w->D, 1, y, err);
    } else { /* the scan's output as it was; the switched gate reads no z */
        memcpy(ws->y, k->y, n * sizeof *ws->y);
    }
    if (!rc) rc = t->gate(o, SL_OP_GATE_BOTH, !!(off & SL_OFF_GATE), z, y, sl_rows(SL_YG, di), err);
    if (!rc) rc = t->linear(o, sl_rows(SL_YG, di), w->out_w, w->out_b, out, err);
    return rc ? rc : t->add(o, out, h, err);
}

int sl_forward_keeping(const sl_model *m, const sl_example *ex, sl_workspace *ws, const sl_hooks *hooks,
                       const sl_mamba_kept *kept, float *logit, sl_error *err)
{
    int rc = sl_forward_check(m, ex, ws, err);
    sl_cpu_ops c = sl_cpu_ops_on(m, ex, ws, hooks, logit);
    if (!rc) rc = sl_arch_embed(&c.ops, err);
    for (int i = 0; !rc && i < m->c.n_layers; i++) {
        c.kept = &kept[i];
        rc = sl_arch_layer(&c.ops, i, err);
    }
    c.kept = NULL;
    if (!rc) rc = sl_arch_tail(&c.ops, err);
    if (!rc) memcpy(kept->fin, ws->a, (size_t)ex->len * m->c.d_model * sizeof *kept->fin);
    return rc;
}

int sl_forward_suffix(const sl_model *m, const sl_example *ex, sl_workspace *ws, const sl_hooks *hooks, int first_layer,
                      int row0, const sl_mamba_kept *kept, int *fin_rows, float *logit, sl_error *err)
{
    const sl_config *cf = &m->c;
    int rc = sl_forward_check(m, ex, ws, err);
    if (!rc && (!sl_arch_is_mamba(m->c.arch) || row0 < 0 || row0 >= ex->len || row0 % SL_SCAN_CHUNK))
        return sl_fail(err, SL_ERUNTIME, "example %ld: no restart of a %s at position %d of %d", ex->index,
                       sl_arch_name(m->c.arch), row0, ex->len);
    /* the workspace and the example seen from row0: every operation runs
     * on rows row0..len-1 */
    size_t r = (size_t)row0, d = (size_t)cf->d_model, di = (size_t)cf->d_inner;
    sl_workspace sw = *ws;
    sw.h += r * d, sw.a += r * d, sw.out += r * d, sw.y += r * di;
    if (cf->arch == ARCH_MAMBA2) {
        size_t H = (size_t)cf->nheads, nxbc = di + 2 * (size_t)cf->ngroups * cf->d_state;
        sw.zxbcdt += r * (di + nxbc + H), sw.xbc += r * nxbc, sw.delta += r * H;
    } else {
        size_t nx = (size_t)cf->dt_rank + 2 * (size_t)cf->d_state;
        sw.xz += r * 2 * di, sw.xc += r * di, sw.xdbl += r * nx, sw.delta += r * di;
    }
    sl_example sx;
    sl_cpu_ops c = sl_cpu_ops_from(m, ex, row0, &sx, &sw, hooks, logit);
    for (int i = first_layer; !rc && i < cf->n_layers; i++) {
        c.resume = row0 ? &kept[i] : NULL;
        rc = sl_arch_layer(&c.ops, i, err);
    }
    /* the final norm of rows row0.., then pooling over every row: those
     * before row0 are the unmodified pass's */
    if (rc) *fin_rows = 0;
    else sl_cpu_kept_rows_before(ws->a, kept->fin, (int)d, row0, fin_rows);
    c.resume = NULL;
    return rc ? rc : sl_arch_tail(&c.ops, err);
}
