/* attribute: grad-input per token against PyTorch (embed . autograd
 * gradient from the fixtures), integrated gradients' completeness, and the
 * planted truth on the trained gym models: the signal family draws far more
 * attribution than its share of tokens. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attribution/attribute.h"
#include "tests/fixture_files.h"
#include "tests/testing.h"

static int keep_rows(void *user, long row, int count, int L, const float *attr, sl_error *err)
{
    (void)err;
    memcpy((float *)user + row * L, attr, (size_t)count * L * sizeof *attr);
    return SL_OK;
}

static void grad_input_vs_pytorch(const char *name, const char *grad_path, void *user)
{
    (void)grad_path;
    (void)user;
    char dir[512], data[600], exp[600], grad[600];
    snprintf(dir, sizeof dir, FIXTURES "/%s", name);
    snprintf(data, sizeof data, "%s/data.h5", dir);
    snprintf(exp, sizeof exp, "%s/expected.h5", dir);
    snprintf(grad, sizeof grad, "%s/grad_expected.h5", dir);
    fixture o;
    if (open_model_data(&o, dir, data, 1, 1)) return;
    long N = o.ds.n;
    int L = o.ds.L, d = o.m.c.d_model;
    float *tok = malloc((size_t)N * L * sizeof *tok);
    float *e = read_floats(exp, "embed", (size_t)N * L * d), *g = read_floats(grad, "embed", (size_t)N * L * d);
    sl_run_opts ro = {.count = N, .batch = 3, .threads = 2};
    sl_attr_opts ao = {ATTR_GRAD_INPUT, 0, BASELINE_PAD, 0, 0, NULL};
    sl_attr_result r;
    sl_error err = {0};
    CHECK(e && g && !sl_attribute(&o.m, &o.ds, &ro, &ao, &r, keep_rows, tok, &err), "%s: %s", name, err.msg);
    double diff = 0, scale = 0;
    for (long x = 0; e && g && x < N * L; x++) {
        double want = 0;
        for (int k = 0; k < d; k++) want += (double)e[x * d + k] * g[x * d + k];
        diff = fmax(diff, fabs(tok[x] - want));
        scale = fmax(scale, fabs(want));
    }
    CHECK(diff <= 1e-4 * scale, "%s: grad-input per token: relative error %.3g", name, diff / scale);
    sl_attr_result_free(&r);
    free(tok);
    free(e);
    free(g);
    close_fixture(&o);
}

static double ig_completeness(const char *dir, const char *data, int baseline, int steps)
{
    fixture o;
    if (open_model_data(&o, dir, data, 1, 1)) return INFINITY;
    sl_run_opts ro = {.count = o.ds.n, .batch = 4, .threads = 2};
    sl_attr_opts ao = {ATTR_IG, steps, baseline, 0, 0, NULL};
    sl_attr_result r;
    sl_error err = {0};
    double rel = INFINITY;
    if (!sl_attribute(&o.m, &o.ds, &ro, &ao, &r, NULL, NULL, &err)) {
        rel = r.completeness_relative_mean;
        printf("%-34s ig (%s baseline, %d steps) completeness: mean %.3g, max %.3g, mean relative %.3g\n", dir,
               baseline == BASELINE_PAD ? "pad" : "zero", steps, r.completeness_mean, r.completeness_max, rel);
        sl_attr_result_free(&r);
    } else {
        CHECK(0, "%s: %s", dir, err.msg);
    }
    close_fixture(&o);
    return rel;
}

static void integrated_gradients(void)
{
    const char *dirs[][2] = {{FIXTURES "/tf_pre_relu_learned", FIXTURES "/tf_pre_relu_learned/data.h5"},
                             {FIXTURES "/mamba_last_bias_2logit_f16", FIXTURES "/mamba_last_bias_2logit_f16/data.h5"},
                             {"tests/trained/tf_order", "tests/trained/order_test.h5"}};
    /* from the pad baseline, 64 midpoint steps: the attributions add up to
     * the change of the logit to well under 1% */
    for (int i = 0; i < 3; i++) {
        double rel = ig_completeness(dirs[i][0], dirs[i][1], BASELINE_PAD, 64);
        CHECK(rel < 5e-3, "%s: ig completeness: mean relative error %.4g", dirs[i][0], rel);
    }
    /* from zeros, a model that normalises first changes sharply near the
     * baseline (a norm of a near-zero vector): the error falls as steps grow */
    double e16 = ig_completeness(dirs[1][0], dirs[1][1], BASELINE_ZERO, 16);
    double e256 = ig_completeness(dirs[1][0], dirs[1][1], BASELINE_ZERO, 256);
    CHECK(e256 < e16 / 4, "zero baseline: the completeness error must fall with steps: %.3g then %.3g", e16, e256);
}

/* n tokens below vocab from xorshift64 seeded with x */
static void random_tokens(int32_t *tokens, int n, int vocab, uint64_t x)
{
    for (int k = 0; k < n; k++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        tokens[k] = (int32_t)(x % (uint64_t)vocab);
    }
}

/* One embed_gradient call (1 step) over the batch on a CPU backend of
 * `threads` threads: the baseline logits into base. */
static int baseline_run(const sl_model *m, int threads, const sl_batch *b, const int32_t *pad, float *base, sl_error *err)
{
    float *attr = malloc(sizeof(float) * b->count * b->L);
    double *sum = malloc(sizeof(double) * b->count);
    sl_path p = {1, pad, 0};
    sl_path_out out = {attr, sum, b->logits, base};
    sl_backend *be = sl_backend_cpu(m, threads, b->count, b->L, err);
    int rc = be && attr && sum ? be->ops->embed_gradient(be, b, &p, &out, err) : SL_ERUNTIME;
    sl_backend_free(be);
    free(attr);
    free(sum);
    return rc;
}

/* The baseline's logit in integrated gradients: a Mamba takes the all-pad
 * baseline's from one pass over the longest width, and every model reuses
 * a thread's last one for examples of the same length (models/cpu_backend.c).
 * Each must be, bit for bit, that of a whole forward pass over its own
 * length (lengths around the BLAS tiles, short ones that take the whole
 * pass, and repeats), on 1 and 2 threads; from zeros, that of the example
 * run alone. */
static void baseline_logits(const char *dir)
{
    static const int32_t lengths[] = {1, 17, 63, 64, 65, 96, 97, 131, 192, 200, 255, 256,
                                      100, 70, 256, 64, 64, 17, 200, 256, 70, 1};
    enum { N = sizeof lengths / sizeof *lengths, L = 256 };
    sl_model m;
    sl_error err = {0};
    if (sl_model_load(&m, dir, &err)) {
        CHECK(0, "%s: %s", dir, err.msg);
        return;
    }
    int32_t *tokens = malloc(sizeof(int32_t) * N * L), pad[L];
    float logits[N], base[N], alone[N];
    random_tokens(tokens, N * L, m.c.vocab_size, 88172645463325252u);
    for (int k = 0; k < L; k++) pad[k] = m.c.pad_token_id;
    sl_workspace *ws = sl_workspace_new(&m, L, &err);
    int rc = ws ? SL_OK : SL_ERUNTIME;
    for (int threads = 1; !rc && threads <= 2; threads++) {
        sl_batch b = {.first = 0, .count = N, .L = L, .tokens = tokens, .lengths = lengths, .logits = logits};
        rc = baseline_run(&m, threads, &b, pad, base, &err);
        for (int e = 0; !rc && e < N; e++) {
            float want;
            sl_example pe = {pad, lengths[e], e, e, NULL};
            rc = sl_forward(&m, &pe, ws, NULL, &want, &err);
            CHECK(!rc && !memcmp(&want, &base[e], sizeof want),
                  "%s, %d threads, length %d: pad baseline logit %.9g, a whole pass %.9g", dir, threads, lengths[e],
                  base[e], want);
        }
        if (!rc) rc = baseline_run(&m, threads, &b, NULL, base, &err);
        for (int e = 0; !rc && e < N; e++) {
            sl_batch one = {.first = e, .count = 1, .L = L, .tokens = tokens + (long)e * L, .lengths = &lengths[e],
                            .logits = logits};
            rc = baseline_run(&m, 1, &one, NULL, &alone[e], &err);
            CHECK(!rc && !memcmp(&alone[e], &base[e], sizeof *base),
                  "%s, %d threads, length %d: zero baseline logit %.9g, the example alone %.9g", dir, threads,
                  lengths[e], base[e], alone[e]);
        }
    }
    CHECK(!rc, "%s: %s", dir, err.msg);
    sl_workspace_free(ws);
    free(tokens);
    sl_model_free(&m);
}

/* Integrated gradients on a Mamba-1 take block 0's norm and in_proj from
 * two products an example and give each step's d logit / d h . (x - b)
 * from dot products (models/ig_path.c): against the whole gradient at
 * each step times x - b (sl_gradient), summed in double, from both
 * baselines and from one of a different token at each position (whose
 * products are not one row), on lengths of one position, around the BLAS
 * tiles and the scan's chunk, on 2 threads. */
static void ig_first_block(const char *dir)
{
    static const int32_t lengths[] = {1, 17, 64, 131, 160};
    enum { N = sizeof lengths / sizeof *lengths, L = 160, K = 8 };
    sl_model m;
    sl_error err = {0};
    if (sl_model_load(&m, dir, &err)) {
        CHECK(0, "%s: %s", dir, err.msg);
        return;
    }
    int d = m.c.d_model;
    int32_t *tokens = malloc(sizeof(int32_t) * N * L), pad[L], mixed[L];
    float logits[N], base_logits[N], *attr = malloc(sizeof(float) * N * L);
    float *x = malloc(sizeof(float) * L * d), *b = malloc(sizeof(float) * L * d), *path = malloc(sizeof(float) * L * d);
    double sum[N], want[L];
    random_tokens(tokens, N * L, m.c.vocab_size, 2463534242u);
    for (int k = 0; k < L; k++) pad[k] = m.c.pad_token_id, mixed[k] = k % m.c.vocab_size;
    sl_workspace *ws = sl_workspace_new(&m, L, &err);
    int rc = ws ? SL_OK : SL_ERUNTIME;
    static const char *names[] = {"pad", "zero", "mixed"};
    for (int base = 0; !rc && base < 3; base++) {
        int zeros = base == 1;
        const int32_t *bt_tokens = base == 2 ? mixed : pad;
        sl_batch bt = {.first = 0, .count = N, .L = L, .tokens = tokens, .lengths = lengths, .logits = logits};
        sl_path p = {K, zeros ? NULL : bt_tokens, 0};
        sl_path_out out = {attr, sum, logits, base_logits};
        sl_backend *be = sl_backend_cpu(&m, 2, N, L, &err);
        rc = be ? be->ops->embed_gradient(be, &bt, &p, &out, &err) : SL_ERUNTIME;
        sl_backend_free(be);
        for (int e = 0; !rc && e < N; e++) {
            int T = lengths[e];
            sl_example ex = {tokens + (long)e * L, T, e, e, NULL}, pe = {bt_tokens, T, e, e, NULL};
            rc = sl_embed(&m, &ex, ws, x, &err);
            if (!rc && zeros) memset(b, 0, sizeof(float) * T * d);
            else if (!rc) rc = sl_embed(&m, &pe, ws, b, &err);
            memset(want, 0, sizeof want);
            for (int step = 0; !rc && step < K; step++) {
                float alpha = (step + 0.5f) / K, unused;
                for (long k = 0; k < (long)T * d; k++) path[k] = b[k] + alpha * (x[k] - b[k]);
                rc = sl_gradient(&m, &ex, ws, path, &unused, NULL, &err);
                const float *g = sl_gradient_embed(ws);
                for (long k = 0; !rc && k < (long)T * d; k++) want[k / d] += (double)g[k] * (x[k] - b[k]) / K;
            }
            double top = 0, worst = 0, total = 0;
            for (int t = 0; t < T; t++) top = fmax(top, fabs(want[t])), total += want[t];
            for (int t = 0; t < T; t++) worst = fmax(worst, fabs(attr[(long)e * L + t] - want[t]));
            /* float rounding, mostly the whole gradient's: up to 4e-6 of the largest seen with AVX-512 and
             * 1.1e-5 with AVX2 (the trained count Mamba, zero baseline, length 64), where against float64
             * autograd this path was 1.9e-6 off and the summed whole gradients 9.1e-6; the last term
             * divided by d + 1 instead of d fails 88 of the 90 */
            CHECK(!rc && worst <= 2e-5 * top + 1e-9 && fabs(sum[e] - total) <= 2e-5 * (top * T) + 1e-9,
                  "%s, %s baseline, length %d: ig from block 0's products off the whole gradient's by %.3g (largest "
                  "%.3g), sum %.9g against %.9g",
                  dir, names[base], T, worst, top, sum[e], total);
        }
    }
    CHECK(!rc, "%s: %s", dir, err.msg);
    sl_workspace_free(ws);
    free(tokens), free(attr), free(x), free(b), free(path);
    sl_model_free(&m);
}

static void planted_truth(const char *model, const char *data)
{
    char dir[256], path[256];
    snprintf(dir, sizeof dir, "tests/trained/%s", model);
    snprintf(path, sizeof path, "tests/trained/%s", data);
    fixture o;
    if (open_model_data(&o, dir, path, 1, 1)) return;
    for (int method = ATTR_GRAD_INPUT; method <= ATTR_IG; method++) {
        sl_run_opts ro = {.count = o.ds.n, .batch = 16, .threads = 2};
        sl_attr_opts ao = {method, 16, BASELINE_PAD, 0, 0, NULL};
        sl_attr_result r;
        sl_error err = {0};
        if (sl_attribute(&o.m, &o.ds, &ro, &ao, &r, NULL, NULL, &err)) {
            CHECK(0, "%s: %s", model, err.msg);
            continue;
        }
        double ratio = (r.family_abs[0] / r.total) / ((double)r.family_count[0] / r.valid); /* family 0 = marker */
        printf("%-12s %-10s marker attribution ratio %.2f\n", model, method ? "ig" : "grad-input", ratio);
        /* gradient x input misses it on three of the four models (their
         * marker embeddings sit where the gradient is small); integrated
         * gradients finds it on all: that is what the test holds the tool to */
        if (method == ATTR_IG)
            CHECK(ratio > 1.8, "%s: integrated gradients give the signal family a ratio of only %.2f", model, ratio);
        sl_attr_result_free(&r);
    }
    close_fixture(&o);
}

/* Captum's InputXGradient and IntegratedGradients(method="riemann_middle",
 * 32 steps, pad baseline) on the first 16 examples of two trained models
 * and two Mamba-2 fixtures (tests/reference/make_captum_fixtures.py; an
 * entry with "model" names its directory, else tests/trained/NAME). */
static void captum(const cJSON *all, const char *model)
{
    const cJSON *c = cJSON_GetObjectItem(all, model);
    CHECK(c != NULL, "captum_expected.json lacks %s", model);
    if (!c) return;
    char dir[256];
    const cJSON *where = cJSON_GetObjectItem(c, "model");
    if (cJSON_IsString(where)) snprintf(dir, sizeof dir, "%s", where->valuestring);
    else snprintf(dir, sizeof dir, "tests/trained/%s", model);
    fixture o;
    if (open_model_data(&o, dir, cJSON_GetObjectItem(c, "data")->valuestring, 1, 1)) return;
    int n = cJSON_GetObjectItem(c, "n")->valueint, L = o.ds.L;
    float *rows = calloc((size_t)n * L, sizeof *rows);
    const char *keys[2] = {"grad_input", "ig"};
    for (int method = ATTR_GRAD_INPUT; method <= ATTR_IG; method++) {
        sl_run_opts ro = {.count = n, .batch = 5, .threads = 2};
        sl_attr_opts ao = {method, cJSON_GetObjectItem(c, "ig_steps")->valueint, BASELINE_PAD, 0, 0, NULL};
        sl_attr_result r;
        sl_error err = {0};
        if (sl_attribute(&o.m, &o.ds, &ro, &ao, &r, keep_rows, rows, &err)) {
            CHECK(0, "%s: %s", model, err.msg);
            continue;
        }
        double diff = 0, scale = 0;
        const cJSON *ex = cJSON_GetObjectItem(c, keys[method])->child;
        for (int e = 0; ex && e < n; e++, ex = ex->next) {
            int t = 0;
            for (const cJSON *v = ex->child; v; v = v->next, t++) {
                diff = fmax(diff, fabs(rows[(long)e * L + t] - v->valuedouble));
                scale = fmax(scale, fabs(v->valuedouble));
            }
            CHECK(t == o.ds.lengths[e], "%s: example %d has %d Captum values for length %d", model, e, t, o.ds.lengths[e]);
        }
        CHECK(diff <= 1e-4 * scale, "%s, %s: relative difference from Captum %.3g", model, keys[method], diff / scale);
        printf("%-12s %-10s vs Captum: max difference %.3g (largest value %.3g)\n", model, keys[method], diff, scale);
        sl_attr_result_free(&r);
    }
    free(rows);
    close_fixture(&o);
}

int main(void)
{
    sl_h5_quiet();
    int checked = for_each_fixture("grad_expected.h5", grad_input_vs_pytorch, NULL);
    CHECK(checked >= 10, "only %d fixtures", checked);
    integrated_gradients();
    baseline_logits("tests/trained/mamba_count");
    baseline_logits(FIXTURES "/mamba_long_odd_f32");
    baseline_logits(FIXTURES "/mamba_layer_mean_f32");
    baseline_logits("tests/trained/tf_order");
    baseline_logits(FIXTURES "/tf_long_dh8_learned");
    baseline_logits(FIXTURES "/mamba2_long_g4_h4_bias_f32");
    ig_first_block("tests/trained/mamba_count");
    ig_first_block(FIXTURES "/mamba_mean_f32");
    ig_first_block(FIXTURES "/mamba_layer_mean_f32");
    ig_first_block(FIXTURES "/mamba_last_bias_2logit_f16");
    ig_first_block(FIXTURES "/mamba_layer_noconvb_last_2logit_f16");
    ig_first_block(FIXTURES "/mamba_long_odd_f32");
    cJSON *cap = read_json("tests/trained/captum_expected.json");
    CHECK(cap != NULL, "cannot read tests/trained/captum_expected.json");
    if (cap) {
        captum(cap, "tf_order");
        captum(cap, "mamba_count");
        captum(cap, "mamba2_long_g4_h4_bias_f32");
        captum(cap, "mamba2_g2_h16_layer_last_hdimD_f16");
    }
    cJSON_Delete(cap);
    planted_truth("tf_count", "count_test.h5");
    planted_truth("mamba_count", "count_test.h5");
    planted_truth("tf_order", "order_test.h5");
    planted_truth("mamba_order", "order_test.h5");
    return TEST_SUMMARY();
}
