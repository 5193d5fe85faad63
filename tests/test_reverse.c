/* reverse-test: a model with no positional information and non-causal
 * attention reads a bag of tokens, so reversal and shuffling must leave its
 * logits unchanged; a causal model with rope must change; the shuffle is
 * seeded and independent of threads and batches. */
#include <math.h>
#include <stdlib.h>

#include "ablation/reverse.h"
#include "tests/testing.h"

#define FIX "tests/fixtures/"

static int run(const char *name, int threads, int batch, uint64_t seed, sl_reverse_result *r)
{
    char dir[256], data[300];
    snprintf(dir, sizeof dir, FIX "%s", name);
    snprintf(data, sizeof data, "%s/data.h5", dir);
    sl_model m;
    sl_dataset ds;
    sl_error err = {0};
    int rc = sl_model_load(&m, dir, &err);
    if (!rc) rc = sl_dataset_open(&ds, data, m.c.vocab_size, m.c.pad_token_id, &err);
    sl_run_opts o = {.count = rc ? 0 : ds.n, .batch = batch, .threads = threads};
    if (!rc) rc = sl_reverse_test(&m, &ds, &o, seed, r, NULL, &err);
    CHECK(!rc, "%s: %s", name, err.msg);
    sl_dataset_close(&ds);
    sl_model_free(&m);
    return rc;
}

int main(void)
{
    sl_h5_quiet();
    sl_reverse_result a, b, c, d;
    /* positional "none", non-causal, mean pooling: permutation invariant */
    if (!run("tf_post_gelu_none", 1, 4, 0, &a)) {
        CHECK(a.pearson_r > 1 - 1e-9 && a.shuffle_pearson_r > 1 - 1e-9, "bag-of-tokens model: r %.12f, shuffle r %.12f",
              a.pearson_r, a.shuffle_pearson_r);
        CHECK(a.auc_original == a.auc_reversed && a.auc_original == a.auc_shuffled, "bag-of-tokens model: AUCs differ");
    }
    /* causal with rope: order matters */
    if (!run("tf_post_relu_rope_causal_bf16", 1, 4, 0, &b))
        CHECK(b.pearson_r < 0.999 && b.shuffle_pearson_r < 0.9999, "causal rope model: r %.6f, shuffle r %.6f", b.pearson_r,
              b.shuffle_pearson_r);
    /* the long fixture: same numbers on 2 threads and batches of 1, another seed another shuffle */
    if (!run("tf_long_dh16_rope_causal", 1, 3, 5, &c) && !run("tf_long_dh16_rope_causal", 2, 1, 5, &d)) {
        CHECK(c.pearson_r == d.pearson_r && c.shuffle_pearson_r == d.shuffle_pearson_r,
              "threads/batch changed the result: %.17g vs %.17g", c.shuffle_pearson_r, d.shuffle_pearson_r);
        sl_reverse_result e;
        if (!run("tf_long_dh16_rope_causal", 2, 2, 6, &e))
            CHECK(e.shuffle_pearson_r != c.shuffle_pearson_r && e.pearson_r == c.pearson_r,
                  "the seed must change the shuffle and only the shuffle");
    }
    return TEST_SUMMARY();
}
