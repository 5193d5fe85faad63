/* The backward pass against PyTorch autograd (float64, rounded to float32):
 * the gradient of each example's logit with respect to embed and every
 * block's input and output, on all fixtures; relative error <= 1e-4
 * (max |a - b| / max |b| per hook). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/dataset.h"
#include "models/model.h"
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
    if (sl_model_load(&m, dir, &err)) {
        CHECK(0, "%s: %s", dir, err.msg);
        return;
    }
    m.c.positional = POS_NONE;
    m.c.n_heads = n_heads;
    m.c.d_head = m.c.d_model / n_heads;
    m.c.causal = causal;
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
    return TEST_SUMMARY();
}
