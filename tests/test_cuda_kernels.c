/* The CUDA kernels' device code, run on the CPU through cuda/host_grid.h:
 * each Mamba block of each fixture rebuilt from the kernels (GEMMs through
 * CBLAS, as cuBLAS will do them), starting from PyTorch's resid_pre, and
 * every hook compared with PyTorch's (expected.h5) at the parity test's
 * tolerance. So index math, masking and numerics of the kernels are tested
 * on every change, without a GPU. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/blas.h"
#include "cuda/host_grid.h"
#include "cuda/mamba_kernels.h"
#include "cuda/transformer_kernels.h"
#include "tests/fixture_files.h"
#include "tests/testing.h"

#define TOL 1e-5

typedef struct {
    const float *x, *w, *b, *A_t, *D, *xdbl;
    float *y, *out, *xz, *delta, *h;
    int d, di, K, S, R, nx, T, ldx, layer_norm;
    float eps;
} block_ctx;

/* The block norm: RMSNorm, or LayerNorm with bias b (norm "layer"). */
static void norm_fn(void *p, int x, int y)
{
    (void)y;
    block_ctx *c = p;
    if (c->layer_norm) sl_k_layernorm_row(c->x, c->w, c->b, c->eps, c->d, c->out, x);
    else sl_k_rmsnorm_row(c->x, c->w, c->eps, c->d, c->out, x);
}

static void conv_fn(void *p, int x, int y)
{
    block_ctx *c = p;
    sl_k_conv_silu(c->xz, c->ldx, c->di, c->K, c->w, c->b, 0, c->out, y, x);
}

static void softplus_fn(void *p, int x, int y)
{
    block_ctx *c = p;
    sl_k_softplus_inplace(c->delta, (long)y * c->di + x);
}

static void scan_fn(void *p, int x, int y)
{
    (void)y;
    block_ctx *c = p;
    sl_k_scan_channel(c->x, c->delta, c->xdbl, c->nx, c->R, c->R + c->S, c->T, c->di, c->S, c->A_t, c->D, 0, c->y, x);
}

static void gate_fn(void *p, int x, int y)
{
    block_ctx *c = p;
    sl_k_gate(c->xz, c->ldx, c->di, 0, c->y, y, x);
}

static void residual_fn(void *p, int x, int y)
{
    block_ctx *c = p;
    sl_k_residual_add(c->h, c->out, (long)y * c->d + x);
}

/* Worst |got - want| over rows x cols (strided), and the largest |want|. */
static void compare(const float *got, int ldg, const float *want, int ldw, int rows, int cols, double *err, double *scale)
{
    for (int r = 0; r < rows; r++)
        for (int k = 0; k < cols; k++) {
            double w = want[(long)r * ldw + k];
            *err = fmax(*err, fabs(got[(long)r * ldg + k] - w));
            *scale = fmax(*scale, fabs(w));
        }
}

enum { H_IN_X, H_DELTA, H_B, H_C, H_GATE, H_OUT, H_POST, N_HOOKS };
static const char *const HOOKS[N_HOOKS] = {"in_x", "delta", "B", "C", "gate", "out", "resid_post"};

static void mamba_fixture(const char *name, const char *path, void *user)
{
    (void)user;
    fixture f;
    if (open_fixture(&f, name, 1, 1)) return;
    if (f.m.c.arch != ARCH_MAMBA) {
        close_fixture(&f);
        return;
    }
    const sl_config *cf = &f.m.c;
    int n = (int)f.ds.n, L = f.ds.L, d = cf->d_model, di = cf->d_inner, S = cf->d_state, R = cf->dt_rank;
    int nx = R + 2 * S;
    CHECK(S <= SL_MAX_STATE, "%s: d_state %d over the kernel's %d", name, S, SL_MAX_STATE);
    float *want[N_HOOKS + 1];
    double err[N_HOOKS] = {0}, scale[N_HOOKS] = {0};
    float *a = malloc((size_t)L * d * 4), *xz = malloc((size_t)L * 2 * di * 4), *xc = malloc((size_t)L * di * 4);
    float *xdbl = malloc((size_t)L * nx * 4), *delta = malloc((size_t)L * di * 4), *y = malloc((size_t)L * di * 4);
    float *out = malloc((size_t)L * d * 4), *h = malloc((size_t)L * d * 4);
    const int32_t *lengths = f.ds.lengths;
    for (int i = 0; i < cf->n_layers; i++) {
        char hook[64];
        size_t widths[N_HOOKS] = {(size_t)di, (size_t)di, (size_t)S, (size_t)S, (size_t)di, (size_t)d, (size_t)d};
        for (int k = 0; k < N_HOOKS; k++) {
            snprintf(hook, sizeof hook, k == H_POST ? "blocks.%d.resid_post" : "blocks.%d.mixer.%s", i, HOOKS[k]);
            want[k] = read_floats(path, hook, (size_t)n * L * widths[k]);
        }
        snprintf(hook, sizeof hook, "blocks.%d.resid_pre", i);
        want[N_HOOKS] = read_floats(path, hook, (size_t)n * L * d);
        const sl_mamba_layer *w = &f.m.mamba[i];
        for (int e = 0; e < n && want[N_HOOKS]; e++) {
            int T = lengths[e];
            memcpy(h, want[N_HOOKS] + (size_t)e * L * d, (size_t)T * d * 4);
            block_ctx c = {.d = d, .di = di, .K = cf->d_conv, .S = S, .R = R, .nx = nx, .T = T, .ldx = 2 * di,
                           .layer_norm = cf->norm == NORM_LAYER, .eps = cf->norm_eps};
            c.x = h, c.w = w->norm_w, c.b = w->norm_b, c.out = a;
            sl_host_grid(T, 1, norm_fn, &c);
            sl_linear(a, d, T, d, w->in_w, w->in_b, 2 * di, xz, 2 * di);
            c.xz = xz, c.w = w->conv_w, c.b = w->conv_b, c.out = xc;
            sl_host_grid(di, T, conv_fn, &c);
            sl_linear(xc, di, T, di, w->xproj_w, NULL, nx, xdbl, nx);
            sl_linear(xdbl, nx, T, R, w->dt_w, w->dt_b, di, delta, di);
            c.delta = delta;
            sl_host_grid(di, T, softplus_fn, &c);
            c.x = xc, c.xdbl = xdbl, c.A_t = w->A_t, c.D = w->D, c.y = y;
            sl_host_grid(di, 1, scan_fn, &c);
            sl_host_grid(di, T, gate_fn, &c);
            sl_linear(y, di, T, di, w->out_w, w->out_b, d, out, d);
            c.h = h, c.out = out;
            sl_host_grid(d, T, residual_fn, &c);
            size_t base = (size_t)e * L;
            if (want[H_IN_X]) compare(xc, di, want[H_IN_X] + base * di, di, T, di, &err[H_IN_X], &scale[H_IN_X]);
            if (want[H_DELTA]) compare(delta, di, want[H_DELTA] + base * di, di, T, di, &err[H_DELTA], &scale[H_DELTA]);
            if (want[H_B]) compare(xdbl + R, nx, want[H_B] + base * S, S, T, S, &err[H_B], &scale[H_B]);
            if (want[H_C]) compare(xdbl + R + S, nx, want[H_C] + base * S, S, T, S, &err[H_C], &scale[H_C]);
            if (want[H_GATE]) compare(xz + di, 2 * di, want[H_GATE] + base * di, di, T, di, &err[H_GATE], &scale[H_GATE]);
            if (want[H_OUT]) compare(out, d, want[H_OUT] + base * d, d, T, d, &err[H_OUT], &scale[H_OUT]);
            if (want[H_POST]) compare(h, d, want[H_POST] + base * d, d, T, d, &err[H_POST], &scale[H_POST]);
        }
        for (int k = 0; k <= N_HOOKS; k++) {
            CHECK(want[k] != NULL, "%s: layer %d: a hook is missing from expected.h5", name, i);
            free(want[k]);
        }
    }
    for (int k = 0; k < N_HOOKS; k++)
        CHECK(scale[k] > 0 && err[k] / scale[k] <= TOL, "%s: kernel %s vs PyTorch: %.2e", name, HOOKS[k],
              scale[k] > 0 ? err[k] / scale[k] : INFINITY);
    free(a), free(xz), free(xc), free(xdbl), free(delta), free(y), free(out), free(h);
    close_fixture(&f);
}

/* ---- Transformer ---- */

typedef struct {
    const sl_config *c;
    float *x, *qkv, *ctx, *table;
    const float *w, *b, *add;
    int T, dh, width;
    int gelu;
} tf_ctx;

static void ln_fn(void *p, int x, int y)
{
    (void)y;
    tf_ctx *c = p;
    sl_k_layernorm_row(c->x, c->w, c->b, c->c->layer_norm_eps, c->c->d_model, c->ctx, x);
}

static void rope_fn(void *p, int x, int y)
{
    tf_ctx *c = p;
    sl_k_rope(c->qkv, c->table, c->c->d_model, c->dh, y, x % c->c->n_heads, x / c->c->n_heads, 0);
}

static void attention_fn(void *p, int x, int y)
{
    tf_ctx *c = p;
    sl_k_attention_row(c->qkv, NULL, c->T, c->c->d_model, c->dh, c->c->causal, c->ctx, y, x);
}

static void act_fn(void *p, int x, int y)
{
    tf_ctx *c = p;
    sl_k_activation(c->x, (long)y * c->width + x, c->gelu);
}

static void add_fn(void *p, int x, int y)
{
    tf_ctx *c = p;
    sl_k_residual_add(c->x, c->add, (long)y * c->c->d_model + x);
}

/* h [T][d] = LayerNorm(h) in place, through the kernel. */
static void layernorm(tf_ctx *c, float *h, const float *w, const float *b, float *tmp)
{
    c->x = h, c->w = w, c->b = b, c->ctx = tmp;
    sl_host_grid(c->T, 1, ln_fn, c);
    memcpy(h, tmp, (size_t)c->T * c->c->d_model * 4);
}

enum { T_ATTN, T_HIDDEN, T_MLP, T_POST, N_TF };
static const char *const TF_HOOKS[N_TF] = {"attn.out", "mlp.hidden", "mlp.out", "resid_post"};

static void transformer_fixture(const char *name, const char *path, void *user)
{
    (void)user;
    fixture f;
    if (open_fixture(&f, name, 1, 1)) return;
    const sl_config *cf = &f.m.c;
    if (cf->arch != ARCH_TRANSFORMER) {
        close_fixture(&f);
        return;
    }
    int n = (int)f.ds.n, L = f.ds.L, d = cf->d_model, ff = cf->d_ff, dh = cf->d_head, half = dh / 2;
    CHECK(dh <= SL_MAX_HEAD, "%s: d_head %d over the kernel's %d", name, dh, SL_MAX_HEAD);
    float *h = malloc((size_t)L * d * 4), *a = malloc((size_t)L * d * 4), *qkv = malloc((size_t)L * 3 * d * 4);
    float *ctx = malloc((size_t)L * d * 4), *out = malloc((size_t)L * d * 4), *hid = malloc((size_t)L * ff * 4);
    float *table = malloc((size_t)L * 2 * (half ? half : 1) * 4);
    for (int p = 0; p < L; p++) /* as models/workspace.c: angles in double */
        for (int i = 0; i < half; i++) {
            double ang = p * pow((double)cf->rope_base, -2.0 * i / dh);
            table[((long)p * 2) * half + i] = (float)cos(ang);
            table[((long)p * 2 + 1) * half + i] = (float)sin(ang);
        }
    double err[N_TF] = {0}, scale[N_TF] = {0};
    for (int i = 0; i < cf->n_layers; i++) {
        char hook[64];
        float *want[N_TF + 1];
        size_t widths[N_TF] = {(size_t)d, (size_t)ff, (size_t)d, (size_t)d};
        for (int k = 0; k < N_TF; k++) {
            snprintf(hook, sizeof hook, "blocks.%d.%s", i, TF_HOOKS[k]);
            want[k] = read_floats(path, hook, (size_t)n * L * widths[k]);
        }
        snprintf(hook, sizeof hook, "blocks.%d.resid_pre", i);
        want[N_TF] = read_floats(path, hook, (size_t)n * L * d);
        const sl_tf_layer *w = &f.m.tf[i];
        for (int e = 0; e < n && want[N_TF] && want[T_ATTN] && want[T_HIDDEN] && want[T_MLP] && want[T_POST]; e++) {
            int T = f.ds.lengths[e];
            tf_ctx c = {.c = cf, .T = T, .dh = dh, .table = table, .qkv = qkv, .gelu = cf->activation == ACT_GELU};
            memcpy(h, want[N_TF] + (size_t)e * L * d, (size_t)T * d * 4);
            const float *in = h;
            if (cf->norm_first) {
                memcpy(a, h, (size_t)T * d * 4);
                layernorm(&c, a, w->ln1_w, w->ln1_b, ctx);
                in = a;
            }
            sl_linear(in, d, T, d, w->qkv_w, w->qkv_b, 3 * d, qkv, 3 * d);
            if (cf->positional == POS_ROPE) sl_host_grid(2 * cf->n_heads, T, rope_fn, &c);
            c.ctx = ctx;
            sl_host_grid(cf->n_heads, T, attention_fn, &c);
            sl_linear(ctx, d, T, d, w->o_w, w->o_b, d, out, d);
            compare(out, d, want[T_ATTN] + (size_t)e * L * d, d, T, d, &err[T_ATTN], &scale[T_ATTN]);
            c.x = h, c.add = out;
            sl_host_grid(d, T, add_fn, &c);
            if (!cf->norm_first) layernorm(&c, h, w->ln1_w, w->ln1_b, ctx);
            in = h;
            if (cf->norm_first) {
                memcpy(a, h, (size_t)T * d * 4);
                layernorm(&c, a, w->ln2_w, w->ln2_b, ctx);
                in = a;
            }
            sl_linear(in, d, T, d, w->ff1_w, w->ff1_b, ff, hid, ff);
            c.x = hid, c.width = ff;
            sl_host_grid(ff, T, act_fn, &c);
            compare(hid, ff, want[T_HIDDEN] + (size_t)e * L * ff, ff, T, ff, &err[T_HIDDEN], &scale[T_HIDDEN]);
            sl_linear(hid, ff, T, ff, w->ff2_w, w->ff2_b, d, out, d);
            compare(out, d, want[T_MLP] + (size_t)e * L * d, d, T, d, &err[T_MLP], &scale[T_MLP]);
            c.x = h, c.add = out;
            sl_host_grid(d, T, add_fn, &c);
            if (!cf->norm_first) layernorm(&c, h, w->ln2_w, w->ln2_b, ctx);
            compare(h, d, want[T_POST] + (size_t)e * L * d, d, T, d, &err[T_POST], &scale[T_POST]);
        }
        for (int k = 0; k <= N_TF; k++) {
            CHECK(want[k] != NULL, "%s: layer %d: a hook is missing from expected.h5", name, i);
            free(want[k]);
        }
    }
    for (int k = 0; k < N_TF; k++)
        CHECK(scale[k] > 0 && err[k] / scale[k] <= TOL, "%s: kernels at %s vs PyTorch: %.2e", name, TF_HOOKS[k],
              scale[k] > 0 ? err[k] / scale[k] : INFINITY);
    free(h), free(a), free(qkv), free(ctx), free(out), free(hid), free(table);
    close_fixture(&f);
}

static void each_fixture(const char *name, const char *path, void *user)
{
    mamba_fixture(name, path, user);
    transformer_fixture(name, path, user);
}

int main(void)
{
    sl_h5_quiet();
    int n = for_each_fixture("expected.h5", each_fixture, NULL);
    CHECK(n >= 10, "only %d fixtures", n);
    return TEST_SUMMARY();
}
