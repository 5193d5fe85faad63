/* The gym's truth and the order-free baseline on it: the stated
 * Bayes-optimal AUC is what the optimal score reaches on generated data;
 * the bag-of-tokens baseline solves count and cannot solve order. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/dataset.h"
#include "core/metrics.h"
#include "gym/gym.h"
#include "probes/baseline.h"
#include "tests/testing.h"

#define N 3000
#define LEN 64

/* The Bayes-optimal score of each task, from the tokens. */
static float optimal_score(int task, const int32_t *t, int len)
{
    if (task == GYM_COUNT || task == GYM_DISTANT) {
        int a = 0;
        for (int i = 0; i < len; i++) a += t[i] == 1;
        return (float)a;
    }
    if (task == GYM_ORDER) {
        for (int i = 0; i < len; i++)
            if (t[i] == 1 || t[i] == 2) return t[i] == 1;
        return 0.5f;
    }
    for (int i = 0; i + 1 < len - 1; i++) /* recall: the value after the queried key */
        if (t[i] == t[len - 1]) return t[i + 1] >= 15;
    return 0.5f;
}

static void task_case(int task, double noise)
{
    const char *path = "build/tests/gym.h5";
    sl_gym_opts o = {task, N, LEN, 99, noise};
    sl_error err = {0};
    CHECK(sl_gym_write(&o, path, &err) == 0, "gym %s: %s", sl_gym_task_name(task), err.msg);
    sl_dataset ds;
    if (sl_dataset_open(&ds, path, GYM_VOCAB, 0, &err)) {
        CHECK(0, "gym %s: its own output does not open: %s", sl_gym_task_name(task), err.msg);
        sl_dataset_close(&ds);
        return;
    }
    int32_t *tok = malloc((size_t)N * LEN * sizeof *tok);
    float *s = malloc(N * sizeof *s);
    sl_dataset_read_tokens(&ds, 0, N, tok, &err);
    for (long e = 0; e < N; e++) s[e] = optimal_score(task, tok + e * LEN, ds.lengths[e]);
    double auc = sl_auc(s, ds.labels, N), want = sl_gym_truth_of(&o).bayes_auc;
    /* sampling error of an AUC over 3000 examples is about 0.006 */
    CHECK(fabs(auc - want) < 0.025, "gym %s (noise %.2f): optimal score reaches %.4f, stated Bayes AUC %.4f",
          sl_gym_task_name(task), noise, auc, want);
    CHECK(ds.has_lengths && ds.n_families == 5 && !strcmp(ds.family_names[0], "marker"), "gym %s: dataset layout",
          sl_gym_task_name(task));

    sl_baseline_result b;
    CHECK(sl_baseline(&ds, 0, N, 3, &b, &err) == 0, "baseline on %s: %s", sl_gym_task_name(task), err.msg);
    printf("%-8s noise %.2f: Bayes %.4f, optimal score %.4f, bag of tokens %.4f, bag of families %.4f\n",
           sl_gym_task_name(task), noise, want, auc, b.tokens.test_auc, b.families.test_auc);
    if (task == GYM_COUNT || task == GYM_DISTANT)
        CHECK(b.tokens.test_auc > want - 0.06, "bag of tokens must solve %s: %.4f vs Bayes %.4f", sl_gym_task_name(task),
              b.tokens.test_auc, want);
    if (task == GYM_ORDER)
        CHECK(fabs(b.tokens.test_auc - 0.5) < 0.07, "bag of tokens must fail order: %.4f", b.tokens.test_auc);
    /* marker a and b share a family: family counts carry no signal anywhere */
    CHECK(fabs(b.families.test_auc - 0.5) < 0.07, "bag of families on %s: %.4f", sl_gym_task_name(task), b.families.test_auc);
    CHECK(b.n_train == 2100 && b.n_test == 900, "70/30 split: %ld / %ld", b.n_train, b.n_test);
    free(tok);
    free(s);
    sl_dataset_close(&ds);
}

int main(void)
{
    sl_h5_quiet();
    for (int task = 0; task < GYM_TASKS; task++) task_case(task, task == GYM_COUNT ? 0.0 : 0.1);
    task_case(GYM_COUNT, 0.2);
    sl_gym_opts o = {GYM_ORDER, 10, LEN, 1, 0.25};
    CHECK(fabs(sl_gym_truth_of(&o).bayes_auc - 0.75) < 1e-12, "order with 25%% noise: Bayes AUC %.6f, want 0.75",
          sl_gym_truth_of(&o).bayes_auc);
    return TEST_SUMMARY();
}
