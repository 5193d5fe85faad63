/* --sample: a seeded sample of the examples stands in for the data in every
 * reader (core/dataset.h, sl_dataset_sample), and attribute's bootstrap
 * intervals over examples. */
#include <stdlib.h>
#include <string.h>

#include "attribution/attribute.h"
#include "core/dataset.h"
#include "models/model.h"
#include "testing.h"

#define DATA "examples/data.h5"
#define MODEL "examples/mamba"

/* Per-example attributions, as --tokens receives them: [n, L]. */
typedef struct {
    float *rows;
    int L;
} token_rows;

static int keep_rows(void *user, long row, int count, int L, const float *attr, sl_error *err)
{
    (void)err;
    token_rows *t = user;
    memcpy(t->rows + (size_t)row * L, attr, (size_t)count * L * sizeof *attr);
    return SL_OK;
}

static void sample_reads(const sl_model *m)
{
    sl_dataset all, part, again;
    sl_error err = {0};
    int rc = sl_dataset_open(&all, DATA, m->c.vocab_size, m->c.pad_token_id, &err);
    rc = rc ? rc : sl_dataset_open(&part, DATA, m->c.vocab_size, m->c.pad_token_id, &err);
    rc = rc ? rc : sl_dataset_open(&again, DATA, m->c.vocab_size, m->c.pad_token_id, &err);
    CHECK(!rc, "open: %s", err.msg);
    if (rc) return;
    long first = 30, count = 300, size = 37;
    CHECK(!sl_dataset_sample(&part, first, count, size, 7, &err), "sample: %s", err.msg);
    CHECK(part.n == size && part.sampled_from == count, "n %ld from %ld", part.n, part.sampled_from);
    int ordered = 1, runs = 0;
    for (long i = 0; i < size; i++) {
        ordered &= part.rows[i] >= first && part.rows[i] < first + count && (!i || part.rows[i] > part.rows[i - 1]);
        runs += i && part.rows[i] != part.rows[i - 1] + 1;
    }
    CHECK(ordered, "rows distinct, ascending, inside %ld..%ld", first, first + count);
    CHECK(runs > 5, "a scattered sample, not a block (%d gaps)", runs);
    int same_labels = 1;
    for (long i = 0; i < size; i++)
        same_labels &= part.labels[i] == all.labels[part.rows[i]] && part.lengths[i] == all.lengths[part.rows[i]];
    CHECK(same_labels, "labels and lengths follow the sample's rows");

    /* tokens and families of every sampled example, read across batches */
    int L = all.L;
    int32_t *tok = malloc((size_t)size * L * sizeof *tok), *want = malloc((size_t)L * sizeof *want);
    int32_t *fam = malloc((size_t)size * L * sizeof *fam), *wfam = malloc((size_t)L * sizeof *wfam);
    rc = sl_dataset_read_tokens(&part, 0, 10, tok, &err) || sl_dataset_read_tokens(&part, 10, size - 10, tok + 10L * L, &err) ||
         sl_dataset_read_families(&part, 0, size, tok, fam, &err);
    CHECK(!rc, "read the sample: %s", err.msg);
    int same_tokens = 1;
    for (long i = 0; !rc && i < size; i++) {
        rc = sl_dataset_read_tokens(&all, part.rows[i], 1, want, &err) ||
             sl_dataset_read_families(&all, part.rows[i], 1, want, wfam, &err);
        same_tokens &= !memcmp(tok + i * L, want, (size_t)L * sizeof *want) && !memcmp(fam + i * L, wfam, (size_t)L * sizeof *wfam);
    }
    CHECK(!rc && same_tokens, "each sampled example's tokens and families are its file row's");

    CHECK(!sl_dataset_sample(&again, first, count, size, 7, &err), "sample again: %s", err.msg);
    CHECK(!memcmp(again.rows, part.rows, (size_t)size * sizeof *part.rows), "the same seed picks the same rows");
    sl_dataset_close(&again);
    CHECK(!sl_dataset_open(&again, DATA, m->c.vocab_size, m->c.pad_token_id, &err), "%s", err.msg);
    CHECK(!sl_dataset_sample(&again, first, count, size, 8, &err), "sample, seed 8: %s", err.msg);
    CHECK(memcmp(again.rows, part.rows, (size_t)size * sizeof *part.rows), "another seed, other rows");
    CHECK(sl_dataset_sample(&again, 0, 10, 5, 1, &err) == SL_ERUNTIME, "a sample of a sample is refused");
    free(tok), free(want), free(fam), free(wfam);
    sl_dataset_close(&again);
    sl_dataset_close(&part);
    sl_dataset_close(&all);
}

/* attribute on a sample: each example's attribution is the one the whole
 * run gives that file row, and the intervals bracket the estimate. */
static void sample_attribute(const sl_model *m)
{
    sl_dataset all, part;
    sl_error err = {0};
    int rc = sl_dataset_open(&all, DATA, m->c.vocab_size, m->c.pad_token_id, &err);
    rc = rc ? rc : sl_dataset_open(&part, DATA, m->c.vocab_size, m->c.pad_token_id, &err);
    rc = rc ? rc : sl_dataset_sample(&part, 0, 120, 25, 3, &err);
    CHECK(!rc, "%s", err.msg);
    if (rc) return;
    int L = all.L;
    token_rows ta = {calloc((size_t)120 * L, sizeof(float)), L}, tp = {calloc((size_t)25 * L, sizeof(float)), L};
    sl_attr_opts ao = {ATTR_IG, 4, BASELINE_PAD, 200, 11, NULL};
    sl_attr_result ra, rp, rz;
    sl_run_opts oa = {0, 120, 4, 2, NULL}, op = {0, 25, 4, 2, NULL};
    CHECK(!sl_attribute(m, &all, &oa, &ao, &ra, keep_rows, &ta, &err), "whole: %s", err.msg);
    CHECK(!sl_attribute(m, &part, &op, &ao, &rp, keep_rows, &tp, &err), "sample: %s", err.msg);
    int same = 1;
    for (long i = 0; i < 25; i++)
        same &= !memcmp(tp.rows + i * L, ta.rows + part.rows[i] * L, (size_t)L * sizeof(float));
    CHECK(same, "a sampled example's attribution is its file row's");
    CHECK(rp.n == 25, "n %ld", rp.n);
    for (int f = 0; f < rp.n_families; f++) {
        if (!rp.family_count[f]) continue;
        double share = rp.family_abs[f] / rp.total, lo = rp.share_ci[2 * f], hi = rp.share_ci[2 * f + 1];
        CHECK(lo < share && share < hi && hi - lo < 0.5, "family %d: share %g in its interval [%g, %g]", f, share, lo, hi);
        CHECK(rp.ratio_ci[2 * f] < rp.ratio_ci[2 * f + 1], "family %d: a ratio interval", f);
    }
    ao.bootstrap = 0;
    CHECK(!sl_attribute(m, &part, &op, &ao, &rz, NULL, NULL, &err), "no resamples: %s", err.msg);
    CHECK(isnan(rz.share_ci[0]) && isnan(rz.ratio_ci[1]), "--bootstrap 0: no interval");
    CHECK(rz.total == rp.total, "the resamples change no estimate");
    sl_attr_result_free(&ra), sl_attr_result_free(&rp), sl_attr_result_free(&rz);
    free(ta.rows), free(tp.rows);
    sl_dataset_close(&part);
    sl_dataset_close(&all);
}

int main(void)
{
    sl_h5_quiet();
    sl_model m;
    sl_error err = {0};
    if (sl_model_load(&m, MODEL, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    sample_reads(&m);
    sample_attribute(&m);
    sl_model_free(&m);
    return TEST_SUMMARY();
}
