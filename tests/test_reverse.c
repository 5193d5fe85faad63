/* reverse-test: a model with no positional information and non-causal
 * attention reads a bag of tokens, so reversal and shuffling must leave its
 * logits unchanged; a causal model with rope must change; the shuffle is
 * seeded and independent of threads and batches. Its entry in the registry:
 * the verdict at and around its thresholds, the scores file's loader, and
 * its section on a report page. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ablation/reverse.h"
#include "cli/registry.h"
#include "plots/report.h"
#include "plots/results.h"
#include "tests/testing.h"

#define DIR "build/tests/reverse-unit"

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
    if (!rc) rc = sl_reverse_test(&m, &ds, &o, seed, NULL, r, NULL, &err);
    CHECK(!rc, "%s: %s", name, err.msg);
    sl_dataset_close(&ds);
    sl_model_free(&m);
    return rc;
}

static int contains(const char *hay, const char *needle) { return strstr(hay, needle) != NULL; }

static const sl_section *section(void)
{
    const sl_command *c = sl_command_find("reverse-test");
    CHECK(c && c->n_sections == 1 && c->n_stages == 1, "reverse-test is registered with one section and one stage");
    return c && c->n_sections == 1 ? &c->sections[0] : NULL;
}

static void verdicts(const sl_section *sec)
{
    static const struct {
        double r;
        const char *expect;
    } REV[] = {{0.981, "Order-insensitive"}, {0.95, "Order-insensitive"}, {0.9499, "Partly"}, {0.7, "Partly"},
               {0.69, "Order-sensitive"},    {-0.99, "Order-sensitive"}};
    for (size_t i = 0; i < sizeof REV / sizeof *REV; i++) {
        char text[256], v[1024];
        snprintf(text, sizeof text,
                 "{\"n\":10,\"pearson_r\":%g,\"spearman_rho\":0.9,\"auc_original\":0.6,\"auc_reversed\":0.6,"
                 "\"shuffle_pearson_r\":0.5}",
                 REV[i].r);
        cJSON *j = cJSON_Parse(text);
        sec->verdict(NULL, j, v, sizeof v);
        CHECK(!strncmp(v, REV[i].expect, strlen(REV[i].expect)), "r = %g: %s", REV[i].r, v);
        cJSON_Delete(j);
    }
}

static void loader_errors(void)
{
    sl_results r;
    sl_error err = {0};
    CHECK(system("rm -rf " DIR " && mkdir -p " DIR) == 0, "cannot make " DIR);
    write_text_in(DIR, "reverse.json", "{\"n\": 3, \"pearson_r\": \"high\", \"spearman_rho\": 1, \"auc_original\": 0.5, "
                               "\"auc_reversed\": 0.5, \"shuffle_pearson_r\": 1}");
    CHECK(sl_results_load(&r, DIR, &err) == SL_EINPUT && contains(err.msg, "field 'pearson_r' is not a number"),
          "wrong type: %s", err.msg);
    unlink(DIR "/reverse.json");
    write_text_in(DIR, "reverse-scores.h5", "not hdf5");
    err = (sl_error){0};
    CHECK(sl_results_load(&r, DIR, &err) == SL_EINPUT && contains(err.msg, "reverse-scores.h5: not an HDF5 file"),
          "bad scores file: %s", err.msg);
    unlink(DIR "/reverse-scores.h5");
    /* a few KB declaring 2^31 logits per vector (chunks never written): the
     * report allocated 3 x that before reading */
    hid_t f = H5Fcreate(DIR "/reverse-scores.h5", H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t n = 1ull << 31, chunk = 1024;
    hid_t sp = H5Screate_simple(1, &n, NULL), pl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(pl, 1, &chunk);
    const char *names[3] = {"original", "reversed", "shuffled"};
    for (int k = 0; k < 3; k++) H5Dclose(H5Dcreate2(f, names[k], H5T_IEEE_F32LE, sp, H5P_DEFAULT, pl, H5P_DEFAULT));
    H5Pclose(pl);
    H5Sclose(sp);
    H5Fclose(f);
    err = (sl_error){0};
    CHECK(sl_results_load(&r, DIR, &err) == SL_EINPUT && contains(err.msg, "/original declares shape [2147483648]"),
          "a scores file declaring 2^31 logits: %s", err.msg);
    unlink(DIR "/reverse-scores.h5");
}

/* its section and its line in the glance list, on a page without gnuplot */
static void page(void)
{
    setenv("SEQLENS_GNUPLOT", "", 1);
    write_text_in(DIR, "reverse.json", "{\"n\": 10, \"pearson_r\": 0.2, \"spearman_rho\": 0.1, \"auc_original\": 0.75, "
                               "\"auc_reversed\": 0.5, \"shuffle_pearson_r\": 0.1}");
    sl_report_info info;
    sl_error err = {0};
    CHECK(sl_report_build(DIR, &info, &err) == SL_OK, "report: %s", err.msg);
    FILE *f = fopen(DIR "/report.html", "r");
    char text[1 << 16] = "";
    if (f) {
        text[fread(text, 1, sizeof text - 1, f)] = 0;
        fclose(f);
    }
    CHECK(contains(text, "<a href=\"#reversal\">Order</a>: Order-sensitive: reverse r = 0.200"),
          "the verdict is in the glance list");
    CHECK(contains(text, "<section id=\"reversal\">") && contains(text, "<code>reverse.json</code></li>"),
          "the section and its result file");
    unsetenv("SEQLENS_GNUPLOT");
}

int main(void)
{
    sl_h5_quiet();
    const sl_section *sec = section();
    if (sec) verdicts(sec);
    loader_errors();
    page();
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
