/* AUC, log-loss and accuracy against scikit-learn on small cases (values
 * from sklearn 1.x: roc_auc_score, log_loss), including ties and NaN. */
#include <math.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <stdlib.h>

#include "core/correlation.h"
#include "core/metrics.h"
#include "core/roc.h"
#include "tests/fixture_files.h"
#include "tests/testing.h"

static float *floats(const cJSON *arr, int *n)
{
    *n = cJSON_GetArraySize(arr);
    float *v = malloc((size_t)*n * sizeof *v);
    for (int i = 0; i < *n; i++) v[i] = (float)cJSON_GetArrayItem(arr, i)->valuedouble;
    return v;
}

static double num(const cJSON *c, const char *key) { return cJSON_GetObjectItem(c, key)->valuedouble; }

/* tests/fixtures/metrics.json: sklearn, scipy and a definition-based DeLong
 * (tests/reference/make_metric_fixtures.py). */
static void golden_cases(void)
{
    cJSON *root = read_json("tests/fixtures/metrics.json");
    CHECK(root != NULL, "cannot read tests/fixtures/metrics.json");
    if (!root) return;
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "cases"))
    {
        const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
        int n, nb, ny;
        float *a = floats(cJSON_GetObjectItem(c, "a"), &n), *b = floats(cJSON_GetObjectItem(c, "b"), &nb);
        float *yf = floats(cJSON_GetObjectItem(c, "labels"), &ny);
        int32_t *y = malloc((size_t)n * sizeof *y);
        for (int i = 0; i < n; i++) y[i] = (int32_t)yf[i];
        CHECK(fabs(sl_auc(a, y, n) - num(c, "auc_a")) < 1e-12, "%s: AUC a %.17g vs sklearn %.17g", name, sl_auc(a, y, n), num(c, "auc_a"));
        CHECK(fabs(sl_auc(b, y, n) - num(c, "auc_b")) < 1e-12, "%s: AUC b", name);
        CHECK(fabs(sl_pearson(a, b, n) - num(c, "pearson")) < 1e-9, "%s: Pearson %.12g vs scipy %.12g", name, sl_pearson(a, b, n), num(c, "pearson"));
        CHECK(fabs(sl_spearman(a, b, n) - num(c, "spearman")) < 1e-9, "%s: Spearman %.12g vs scipy %.12g", name, sl_spearman(a, b, n), num(c, "spearman"));
        sl_delong d;
        CHECK(sl_delong_test(a, b, y, n, &d) == 0, "%s: DeLong failed", name);
        CHECK(fabs(d.auc_a - num(c, "auc_a")) < 1e-12 && fabs(d.auc_b - num(c, "auc_b")) < 1e-12, "%s: DeLong AUCs", name);
        CHECK(fabs(d.z - num(c, "delong_z")) < 1e-9, "%s: DeLong z %.12g vs %.12g", name, d.z, num(c, "delong_z"));
        CHECK(fabs(d.p_value - num(c, "delong_p")) < 1e-9, "%s: DeLong p %.12g vs %.12g", name, d.p_value, num(c, "delong_p"));
        double ci[2], ci2[2];
        const cJSON *want = cJSON_GetObjectItem(c, "bootstrap_ci");
        int reps = (int)num(c, "bootstrap_reps");
        uint64_t seed = (uint64_t)num(c, "bootstrap_seed");
        CHECK(sl_bootstrap_auc_delta(a, b, y, n, reps, seed, ci) == 0, "%s: bootstrap failed", name);
        CHECK(fabs(ci[0] - cJSON_GetArrayItem(want, 0)->valuedouble) < 1e-12
                  && fabs(ci[1] - cJSON_GetArrayItem(want, 1)->valuedouble) < 1e-12,
              "%s: bootstrap CI [%.12g, %.12g] vs replayed [%.12g, %.12g]", name, ci[0], ci[1],
              cJSON_GetArrayItem(want, 0)->valuedouble, cJSON_GetArrayItem(want, 1)->valuedouble);
        sl_bootstrap_auc_delta(a, b, y, n, reps, seed + 1, ci2);
        CHECK(ci2[0] != ci[0] || ci2[1] != ci[1], "%s: the seed must matter", name);
        free(a);
        free(b);
        free(yf);
        free(y);
    }
    cJSON_Delete(root);
}

int main(void)
{
    golden_cases();
    /* identical curves: no difference, p = 1; a class missing is refused */
    const float same[4] = {0.1f, 0.4f, 0.35f, 0.8f};
    const int32_t ys[4] = {0, 0, 1, 1}, yone[4] = {1, 1, 1, 1};
    sl_delong d;
    CHECK(sl_delong_test(same, same, ys, 4, &d) == 0 && d.p_value == 1.0 && d.z == 0.0, "identical curves: p %g", d.p_value);
    CHECK(sl_delong_test(same, same, yone, 4, &d) == -1, "one class must be refused");
    CHECK(isnan(sl_pearson(same, (const float[]){1, 1, 1, 1}, 4)), "constant side: r must be NaN");
    /* ties across classes count one half */
    const float s[8] = {0.5f, 0.5f, 0.2f, 0.9f, 0.1f, 0.5f, 0.7f, 0.2f};
    const int32_t y[8] = {1, 0, 0, 1, 0, 1, 1, 0};
    CHECK(fabs(sl_auc(s, y, 8) - 0.9375) < 1e-12, "AUC with ties %.17g != sklearn 0.9375", sl_auc(s, y, 8));

    const float perfect[4] = {0.1f, 0.2f, 0.3f, 0.4f}, all_tied[4] = {1, 1, 1, 1};
    const int32_t y4[4] = {0, 0, 1, 1}, one_class[4] = {1, 1, 1, 1};
    CHECK(sl_auc(perfect, y4, 4) == 1.0, "separable scores: AUC %g", sl_auc(perfect, y4, 4));
    CHECK(sl_auc(all_tied, y4, 4) == 0.5, "all tied: AUC %g", sl_auc(all_tied, y4, 4));
    CHECK(isnan(sl_auc(perfect, one_class, 4)), "one class: AUC must be NaN");
    const float with_nan[4] = {0.1f, NAN, 0.3f, 0.4f};
    CHECK(isnan(sl_auc(with_nan, y4, 4)), "NaN score: AUC must be NaN (and return)");

    const float z[8] = {2.0f, -1.0f, 0.5f, 3.0f, -2.5f, 0.0f, 1.5f, -0.3f};
    CHECK(fabs(sl_log_loss(z, y, 8) - 0.37383243331822225) < 1e-7, "log-loss %.17g != sklearn 0.3738324333",
          sl_log_loss(z, y, 8));
    const float big[2] = {1000.0f, -1000.0f};
    const int32_t yb[2] = {1, 0};
    CHECK(sl_log_loss(big, yb, 2) < 1e-300 + 1e-12, "log-loss must not overflow on large logits");
    /* logit 0 predicts class 0: examples 2 (0.5, label 0) and 5 (0.0, label 1) are wrong */
    CHECK(fabs(sl_accuracy(z, y, 8) - 0.75) < 1e-12, "accuracy %g != 0.75", sl_accuracy(z, y, 8));

    /* no score from a non-finite logit: the error counts them and names the first */
    const float odd[6] = {0.5f, NAN, -1.0f, INFINITY, -INFINITY, 2.0f};
    sl_error err = {0};
    CHECK(sl_count_nonfinite(odd, 6) == 3 && sl_count_nonfinite(odd, 1) == 0, "non-finite count %zu",
          sl_count_nonfinite(odd, 6));
    CHECK(sl_check_logits(z, 8, 0, "the model", &err) == SL_OK && err.code == SL_OK, "finite logits refused");
    CHECK(sl_check_logits(odd, 6, 100, "the model", &err) == SL_ERUNTIME && strstr(err.msg, "on 3 of 6 examples") &&
              strstr(err.msg, "first: example 101"),
          "non-finite logits: %s", err.msg);
    err = (sl_error){0};
    CHECK(sl_check_logits(odd + 3, 1, -1, "an ablation", &err) == SL_ERUNTIME && !strstr(err.msg, "first:") &&
              strstr(err.msg, "an ablation gave NaN or infinite logits on 1 of 1"),
          "infinite logit: %s", err.msg);
    return TEST_SUMMARY();
}
