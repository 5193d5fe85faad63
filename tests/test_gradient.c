/* The backward pass against PyTorch autograd (float64, rounded to float32):
 * the gradient of each example's logit with respect to embed and every
 * block's input and output, on all fixtures; relative error <= 1e-4
 * (max |a - b| / max |b| per hook). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/dataset.h"
#include "models/backward.h"
#include "models/forward_common.h"
#include "models/model.h"
#include "models/workspace.h"
#include "tests/fixture_files.h"
#include "tests/testing.h"

#define TOL 1e-4

static void check(const char *name)
{
    char dir[512], data[600], want_path[600];
    snprintf(dir, sizeof dir, FIXTURES "/%s", name);
    snprintf(data, sizeof data, "%s/data.h5", dir);
    snprintf(want_path, sizeof want_path, "%s/grad_expected.h5", dir);
    sl_model m;
    sl_dataset ds;
    sl_error err = {0};
    if (sl_model_load(&m, dir, &err) || sl_dataset_open(&ds, data, m.c.vocab_size, m.c.pad_token_id, &err)) {
        CHECK(0, "%s: %s", name, err.msg);
        return;
    }
    int nl = m.c.n_layers, d = m.c.d_model, L = ds.L;
    long N = ds.n;
    float *got = calloc((size_t)(nl + 1) * N * L * d, sizeof *got); /* [hook][N][L][d] */
    float *grad = malloc((size_t)(nl + 1) * L * d * sizeof *grad), *logits = malloc((size_t)N * sizeof *logits);
    int32_t *tok = malloc((size_t)N * L * sizeof *tok);
    sl_workspace *ws = sl_workspace_new(&m, L, &err);
    sl_dataset_read_tokens(&ds, 0, N, tok, &err);
    for (long e = 0; e < N; e++) {
        int len = ds.lengths[e];
        sl_example ex = {tok + e * L, len, e, 0, NULL};
        int rc = sl_gradient(&m, &ex, ws, NULL, &logits[e], grad, &err);
        CHECK(!rc, "%s: %s", name, err.msg);
        for (int k = 0; !rc && k <= nl; k++)
            memcpy(got + (((size_t)k * N + e) * L) * d, grad + (size_t)k * len * d, (size_t)len * d * sizeof *grad);
    }
    double worst = 0;
    for (int k = 0; k <= nl; k++) {
        char hook[64];
        if (k < nl) snprintf(hook, sizeof hook, "blocks.%d.resid_pre", k);
        else snprintf(hook, sizeof hook, "blocks.%d.resid_post", nl - 1);
        size_t n = (size_t)N * L * d;
        float *want = read_floats(want_path, hook, n);
        CHECK(want != NULL, "%s: grad_expected.h5 lacks %s", name, hook);
        if (!want) continue;
        double diff = 0, scale = 0;
        for (size_t q = 0; q < n; q++) {
            double e = fabs((double)got[(size_t)k * n + q] - want[q]);
            if (!(e <= diff)) diff = e;
            if (fabs(want[q]) > scale) scale = fabs(want[q]);
        }
        double rel = scale > 0 ? diff / scale : diff;
        CHECK(rel <= TOL, "%s: d logit / d %s: relative error %.3g", name, hook, rel);
        if (rel > worst) worst = rel;
        free(want);
    }
    /* embed is the input of block 0: the same gradient */
    float *want_embed = read_floats(want_path, "embed", (size_t)N * L * d);
    CHECK(want_embed != NULL, "%s: no embed gradient", name);
    for (size_t q = 0; want_embed && q < (size_t)N * L * d; q++)
        if (fabs(got[q] - want_embed[q]) > TOL * 10 * fmax(1e-3, fabs(want_embed[q]))) {
            CHECK(0, "%s: d logit / d embed differs at %zu: %g vs %g", name, q, got[q], want_embed[q]);
            break;
        }
    free(want_embed);
    float *want_logits = read_floats(want_path, "logits", (size_t)N);
    for (long e = 0; want_logits && e < N; e++)
        CHECK(fabs(logits[e] - want_logits[e]) <= 1e-5 * fmax(1, fabs(want_logits[e])), "%s: logit %ld", name, e);
    free(want_logits);
    printf("%-32s worst gradient relative error %.2g\n", name, worst);
    free(got);
    free(grad);
    free(logits);
    free(tok);
    sl_workspace_free(ws);
    sl_dataset_close(&ds);
    sl_model_free(&m);
}

/* A workspace no wider than the example: the scan's d_state x d_inner
 * gradient is larger than a row buffer of 1 to 3 positions (it was written
 * into one, past its end), and the gradient must not depend on the width
 * (nor, for Mamba-2, on where the kept states' slots end). */
static void narrow_workspace(const char *dir)
{
    sl_model m;
    sl_error err = {0};
    if (sl_model_load(&m, dir, &err)) {
        CHECK(0, "%s: %s", dir, err.msg);
        return;
    }
    int nl = m.c.n_layers, d = m.c.d_model, wide = 8;
    int32_t tok[8];
    for (int t = 0; t < wide; t++) tok[t] = 1 + t % (m.c.vocab_size - 1);
    float *narrow = malloc((size_t)(nl + 1) * wide * d * sizeof *narrow);
    float *whole = malloc((size_t)(nl + 1) * wide * d * sizeof *whole);
    sl_workspace *big = sl_workspace_new(&m, wide, &err);
    for (int len = 1; big && len <= 3; len++) {
        sl_workspace *small = sl_workspace_new(&m, len, &err);
        sl_example ex = {tok, len, 0, 0, NULL};
        float a = 0, b = 0;
        int rc = small ? sl_gradient(&m, &ex, small, NULL, &a, narrow, &err) : err.code;
        if (!rc) rc = sl_gradient(&m, &ex, big, NULL, &b, whole, &err);
        CHECK(!rc, "%s, %d positions: %s", dir, len, err.msg);
        double diff = fabs((double)a - b);
        for (size_t q = 0; !rc && q < (size_t)(nl + 1) * len * d; q++)
            diff = fmax(diff, fabs((double)narrow[q] - whole[q]) / fmax(1e-3, fabs(whole[q])));
        CHECK(!rc && diff <= 1e-5, "%s, %d positions: a workspace of %d positions gives another gradient (%g)", dir, len,
              len, diff);
        sl_workspace_free(small);
    }
    CHECK(big != NULL, "%s: %s", dir, err.msg);
    sl_workspace_free(big);
    free(narrow);
    free(whole);
    sl_model_free(&m);
}

/* dir's Transformer without positional terms, its width split into
 * n_heads heads: the model the attention-kernel cases below run. 0 (after
 * a failed check) when it does not load. */
static int load_heads(sl_model *m, const char *dir, int n_heads, int causal)
{
    sl_error err = {0};
    if (sl_model_load(m, dir, &err)) {
        CHECK(0, "%s: %s", dir, err.msg);
        return 0;
    }
    m->c.positional = POS_NONE;
    m->c.n_heads = n_heads;
    m->c.d_head = m->c.d_model / n_heads;
    m->c.causal = causal;
    return 1;
}

/* The attention's backward under a pad mask (keep) and a causal one. With
 * no positional term, dropping positions from the keys and the pooling is
 * the same as deleting them from the sequence: the gradient at the kept
 * positions must be the shorter sequence's, and 0 (not NaN) at the dropped
 * ones, among them leading rows that see no key at all under the causal
 * mask. n_heads picks the kernel (d_head 4: the plain loops; 8, 16, 32); 300
 * positions make ragged query blocks and two key tiles. */
static void masked_gradient(const char *dir, int n_heads, int causal)
{
    sl_model m;
    sl_error err = {0};
    if (!load_heads(&m, dir, n_heads, causal)) return;
    enum { T = 300 };
    int nl = m.c.n_layers, d = m.c.d_model, kept = 0;
    int32_t tok[T], short_tok[T];
    uint8_t keep[T];
    int where[T];
    for (int t = 0; t < T; t++) {
        tok[t] = 1 + (t * 7 + t / 5) % (m.c.vocab_size - 1);
        keep[t] = (m.c.pooling == POOL_CLS && t == 0) || !(t < 3 || t % 3 == 1 || (t > 100 && t < 140));
        if (keep[t]) short_tok[kept] = tok[t], where[kept++] = t;
    }
    float *masked = malloc((size_t)(nl + 1) * T * d * sizeof *masked);
    float *compact = malloc((size_t)(nl + 1) * T * d * sizeof *compact);
    sl_workspace *ws = sl_workspace_new(&m, T, &err);
    sl_example ex = {tok, T, 0, 0, keep}, sx = {short_tok, kept, 0, 0, NULL};
    float a = 0, b = 0;
    int rc = ws && masked && compact ? sl_gradient(&m, &ex, ws, NULL, &a, masked, &err) : SL_ERUNTIME;
    if (!rc) rc = sl_gradient(&m, &sx, ws, NULL, &b, compact, &err);
    CHECK(!rc, "%s, %d heads: %s", dir, n_heads, err.msg);
    for (int k = 0; !rc && k <= nl; k++) {
        const float *gm = masked + (size_t)k * T * d, *gc = compact + (size_t)k * kept * d;
        double scale = 0, diff = 0, dropped = 0;
        for (size_t q = 0; q < (size_t)kept * d; q++) scale = fmax(scale, fabs(gc[q]));
        for (int j = 0; j < kept; j++)
            for (int i = 0; i < d; i++) {
                double e = fabs((double)gm[(size_t)where[j] * d + i] - gc[(size_t)j * d + i]);
                if (!(e <= diff)) diff = e;
            }
        for (int t = 0; t < T; t++)
            for (int i = 0; i < d && !keep[t]; i++)
                if (!(fabs(gm[(size_t)t * d + i]) <= dropped)) dropped = fabs(gm[(size_t)t * d + i]);
        CHECK(scale > 0 && diff <= 1e-5 * scale && dropped == 0,
              "%s, d_head %d%s, hook %d: masked vs shortened gradient differ by %g (of %g), %g at dropped positions",
              dir, m.c.d_head, causal ? " causal" : "", k, diff, scale, dropped);
    }
    CHECK(!rc && fabs((double)a - b) <= 1e-5 * fmax(1, fabs(b)), "%s: logit %g vs %g", dir, a, b);
    sl_workspace_free(ws);
    free(masked);
    free(compact);
    sl_model_free(&m);
}

/* The streaming attention's two kernels per head width: without a NaN test
 * per score where every q and k is tame (finite, |x| <= 1e15), with one
 * otherwise (models/attention_tile.h, sl_scores_tame). On one layer's qkv:
 * a query row of 1e20 at a dropped position (no key) sends its heads
 * through the checking kernels, whose outputs at every other row, forward
 * and backward, must be the plain kernels' bit for bit (that row's d
 * context is 0, so it adds nothing to dK and dV); a NaN in one kept key's k
 * (not its v) must reach every query's output and d q. */
static void checked_kernels(const char *dir, int n_heads)
{
    sl_model m;
    sl_error err = {0};
    if (!load_heads(&m, dir, n_heads, 0)) return;
    enum { T = 300, DROP = 7, NANKEY = 20 };
    int d = m.c.d_model, H = n_heads;
    int32_t tok[T];
    uint8_t keep[T];
    for (int t = 0; t < T; t++) tok[t] = 1 + t % (m.c.vocab_size - 1), keep[t] = t != DROP;
    sl_example ex = {tok, T, 0, 0, keep};
    sl_workspace *ws = sl_workspace_new(&m, T, &err);
    float a = 0;
    /* a gradient first, for the backward's scratch */
    int rc = ws ? sl_gradient(&m, &ex, ws, NULL, &a, NULL, &err) : SL_ERUNTIME;
    CHECK(!rc, "%s, %d heads: %s", dir, n_heads, err.msg);
    size_t nq = (size_t)T * 3 * d, nc = (size_t)T * d;
    float *qkv[3], *ctx[3], *lse[3], *dqkv[3], *dctx = malloc(nc * sizeof *dctx);
    for (int v = 0; v < 3; v++) {
        qkv[v] = malloc(nq * sizeof **qkv);
        ctx[v] = malloc(nc * sizeof **ctx);
        lse[v] = malloc((size_t)H * T * sizeof **lse);
        dqkv[v] = malloc(nq * sizeof **dqkv);
    }
    unsigned seed = 12345;
    for (size_t i = 0; i < nq; i++) {
        seed = seed * 1664525u + 1013904223u;
        qkv[0][i] = (float)((seed >> 8) / 16777216.0 - 0.5) * 4.0f;
    }
    for (size_t i = 0; i < nc; i++) {
        seed = seed * 1664525u + 1013904223u;
        dctx[i] = (float)((seed >> 8) / 16777216.0 - 0.5);
    }
    memset(dctx + (size_t)DROP * d, 0, (size_t)d * sizeof *dctx);
    memcpy(qkv[1], qkv[0], nq * sizeof **qkv);
    memcpy(qkv[2], qkv[0], nq * sizeof **qkv);
    for (int i = 0; i < d; i++) qkv[1][(size_t)DROP * 3 * d + i] *= 1e20f;
    for (int h = 0; h < H; h++) qkv[2][(size_t)NANKEY * 3 * d + d + h * m.c.d_head] = NAN;
    for (int v = 0; !rc && v < 3; v++) {
        memcpy(ws->qkv, qkv[v], nq * sizeof **qkv);
        ws->lse = lse[v];
        rc = sl_attention(&m, &ex, ws, NULL, 0, &err);
        ws->lse = NULL;
        memcpy(ctx[v], ws->ctx, nc * sizeof **ctx);
        if (!rc) sl_attention_backward(&m.c, &ex, ws, qkv[v], ctx[v], lse[v], dctx, dqkv[v]);
    }
    CHECK(!rc, "%s, %d heads: %s", dir, n_heads, err.msg);
    long differ = 0, finite = 0;
    for (int t = 0; !rc && t < T; t++) {
        if (t == DROP) continue;
        differ += memcmp(ctx[0] + (size_t)t * d, ctx[1] + (size_t)t * d, (size_t)d * sizeof **ctx) != 0;
        for (int h = 0; h < H; h++) differ += memcmp(&lse[0][(size_t)h * T + t], &lse[1][(size_t)h * T + t], 4) != 0;
        /* d q of the other rows, d k and d v of every kept key */
        differ += memcmp(dqkv[0] + (size_t)t * 3 * d, dqkv[1] + (size_t)t * 3 * d, 3 * (size_t)d * sizeof **dqkv) != 0;
        for (int i = 0; i < d; i++) {
            finite += isfinite(ctx[2][(size_t)t * d + i]) != 0;
            finite += isfinite(dqkv[2][(size_t)t * 3 * d + i]) != 0;
        }
    }
    CHECK(!rc && differ == 0, "%s, d_head %d: a 1e20 query at a dropped position changed %ld other rows", dir,
          m.c.d_head, differ);
    CHECK(!rc && finite == 0, "%s, d_head %d: a NaN in one key's k left %ld outputs or d q finite", dir, m.c.d_head,
          finite);
    for (int v = 0; v < 3; v++) free(qkv[v]), free(ctx[v]), free(lse[v]), free(dqkv[v]);
    free(dctx);
    sl_workspace_free(ws);
    sl_model_free(&m);
}

static void gradient_fixture(const char *name, const char *path, void *user)
{
    (void)path;
    (void)user;
    check(name);
}

int main(void)
{
    sl_h5_quiet();
    int checked = for_each_fixture("grad_expected.h5", gradient_fixture, NULL);
    CHECK(checked >= 10, "only %d fixtures have grad_expected.h5", checked);
    const char *mambas[] = {FIXTURES "/mamba_mean_f32", FIXTURES "/mamba_cls_bf16", FIXTURES "/mamba_last_bias_2logit_f16",
                            FIXTURES "/mamba_layer_noconvb_last_2logit_f16", FIXTURES "/mamba_long_odd_f32",
                            "tests/trained/mamba_count", FIXTURES "/mamba2_g1_h8_mean_f32",
                            FIXTURES "/mamba2_long_g4_h4_bias_f32", FIXTURES "/mamba2_h64_mean_dtlimit_nbg_f32"};
    for (size_t i = 0; i < sizeof mambas / sizeof *mambas; i++) narrow_workspace(mambas[i]);
    for (int causal = 0; causal <= 1; causal++) {
        for (int heads = 1; heads <= 4; heads *= 2) masked_gradient(FIXTURES "/tf_long_dh8_learned", heads, causal);
        masked_gradient(FIXTURES "/tf_dh32_sin", 1, causal);
    }
    for (int heads = 1; heads <= 4; heads *= 2) checked_kernels(FIXTURES "/tf_long_dh8_learned", heads);
    checked_kernels(FIXTURES "/tf_dh32_sin", 1);
    return TEST_SUMMARY();
}
