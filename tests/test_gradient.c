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
    return TEST_SUMMARY();
}
