/* The report's pieces that do not need gnuplot or a browser: verdicts at
 * and around their thresholds (each section's, found in the registry as
 * the report finds it), the results loader's errors, the base64 figure
 * embedding, Mamba-2's heatmap by head (the script the inspect section
 * hands gnuplot), and a page written without gnuplot. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/dataset.h"
#include "cli/registry.h"
#include "plots/html.h"
#include "plots/report.h"
#include "plots/results.h"
#include "tests/testing.h"

#define DIR "build/tests/report-unit"

static cJSON *parse(const char *text)
{
    cJSON *j = cJSON_Parse(text);
    if (!j) fprintf(stderr, "bad test JSON: %s\n", text);
    return j;
}

static int contains(const char *hay, const char *needle) { return strstr(hay, needle) != NULL; }

/* The results as the report holds them: manifest as analyze.json, json as
 * the result in file (or none). */
static sl_results results_with(cJSON *manifest, const char *file, cJSON *json)
{
    sl_results r = {.manifest = manifest};
    r.n = sl_sections_by_file(&r.sections);
    for (int k = 0; k < r.n; k++)
        if (file && !strcmp(r.sections[k]->file, file)) r.json[k] = json;
    return r;
}

/* The verdict of the section drawn from file, on own, beside the results
 * in r (eval.json for the baseline's, analyze.json for eval's). */
static void verdict_on(const char *file, const cJSON *own, const sl_results *r, char *v, size_t size)
{
    const sl_section *const *list;
    int n = sl_sections_by_file(&list);
    snprintf(v, size, "(no section for %s)", file);
    for (int k = 0; k < n; k++)
        if (!strcmp(list[k]->file, file)) list[k]->verdict(r, own, v, size);
}

static void verdict(const char *file, const cJSON *own, char *v, size_t size)
{
    sl_results r = results_with(NULL, NULL, NULL);
    verdict_on(file, own, &r, v, size);
}

static void family_verdicts(void)
{
    char v[1024];
    /* one family dominates: its drop is more than 3x the next, CI below 0 */
    cJSON *j = parse("{\"baseline_auc\":0.9,\"n\":100,\"mode\":\"mean\",\"results\":["
                     "{\"family\":\"key\",\"auc\":0.5,\"delta_auc\":-0.4,\"ci95\":[-0.45,-0.35],\"masked_fraction\":0.2},"
                     "{\"family\":\"filler\",\"auc\":0.89,\"delta_auc\":-0.01,\"ci95\":[-0.02,0.0],\"masked_fraction\":0.7},"
                     "{\"family\":\"absent\",\"auc\":0.6,\"delta_auc\":-0.3,\"ci95\":[-0.35,-0.25],\"masked_fraction\":0}]}");
    verdict("ablate-family.json", j, v, sizeof v);
    /* the largest drop is key's, the next filler's: absent, with no tokens, is left out */
    CHECK(contains(v, "Relies on one family: 'key' (AUC change -0.4000); no other family moves AUC by more than 0.0100."),
          "dominant family: %s", v);
    cJSON_Delete(j);

    /* the top drop is only 2x the next: not "relies on one" */
    j = parse("{\"baseline_auc\":0.9,\"n\":100,\"mode\":\"mean\",\"results\":["
              "{\"family\":\"a\",\"auc\":0.7,\"delta_auc\":-0.2,\"ci95\":[-0.25,-0.15]},"
              "{\"family\":\"b\",\"auc\":0.8,\"delta_auc\":-0.1,\"ci95\":[-0.15,-0.05]}]}");
    verdict("ablate-family.json", j, v, sizeof v);
    CHECK(contains(v, "Largest effect: 'a'") && !contains(v, "Relies"), "two families: %s", v);
    cJSON_Delete(j);

    /* every family about equal (the seed's Mamba: within 0.0006) */
    j = parse("{\"baseline_auc\":0.57,\"n\":100,\"mode\":\"mean\",\"results\":["
              "{\"family\":\"a\",\"auc\":0.55,\"delta_auc\":-0.0200},{\"family\":\"b\",\"auc\":0.55,\"delta_auc\":-0.0204},"
              "{\"family\":\"c\",\"auc\":0.55,\"delta_auc\":-0.0206}]}");
    verdict("ablate-family.json", j, v, sizeof v);
    CHECK(contains(v, "about equally"), "equal families: %s", v);
    cJSON_Delete(j);

    /* nothing matters */
    j = parse("{\"baseline_auc\":0.57,\"n\":100,\"mode\":\"mean\",\"results\":["
              "{\"family\":\"a\",\"auc\":0.57,\"delta_auc\":-0.002},{\"family\":\"b\",\"auc\":0.57,\"delta_auc\":0.001}]}");
    verdict("ablate-family.json", j, v, sizeof v);
    CHECK(contains(v, "No family matters"), "negligible families: %s", v);
    cJSON_Delete(j);

    /* a CI that crosses 0 is not "relies on" however large the ratio */
    j = parse("{\"baseline_auc\":0.6,\"n\":100,\"mode\":\"mean\",\"results\":["
              "{\"family\":\"a\",\"auc\":0.55,\"delta_auc\":-0.05,\"ci95\":[-0.12,0.02]},"
              "{\"family\":\"b\",\"auc\":0.6,\"delta_auc\":-0.001,\"ci95\":[-0.01,0.01]}]}");
    verdict("ablate-family.json", j, v, sizeof v);
    CHECK(contains(v, "not significant"), "CI across 0: %s", v);
    cJSON_Delete(j);

    j = parse("{\"baseline_auc\":0.6,\"n\":100,\"mode\":\"skip\",\"results\":["
              "{\"layer\":0,\"auc\":0.595,\"delta_auc\":-0.005},{\"layer\":1,\"auc\":0.592,\"delta_auc\":-0.008}]}");
    verdict("ablate-layer.json", j, v, sizeof v);
    CHECK(contains(v, "No layer matters") && contains(v, "layer 1"), "layers: %s", v);
    cJSON_Delete(j);
}

static void other_verdicts(void)
{
    char v[1024];
    cJSON *eval = parse("{\"n\":10,\"auc\":0.572,\"log_loss\":0.6,\"accuracy\":0.55}");
    sl_results r = results_with(NULL, "eval.json", eval);
    cJSON *base = parse("{\"bag_of_tokens\":{\"test_auc\":0.570},\"bag_of_families\":{\"test_auc\":0.52}}");
    verdict_on("baseline.json", base, &r, v, sizeof v);
    CHECK(contains(v, "already reaches AUC 0.570"), "bag of tokens matches: %s", v);
    cJSON_Delete(base);
    base = parse("{\"bag_of_tokens\":{\"test_auc\":0.52},\"bag_of_families\":{\"test_auc\":0.51}}");
    verdict_on("baseline.json", base, &r, v, sizeof v);
    CHECK(contains(v, "beats a bag of tokens by 0.052"), "model beats baseline: %s", v);
    cJSON_Delete(base);
    cJSON *manifest = parse("{\"data_summary\":{\"attributes\":{\"bayes_auc\":0.6}}}");
    r = results_with(manifest, NULL, NULL);
    verdict_on("eval.json", eval, &r, v, sizeof v);
    CHECK(contains(v, "0.600") && contains(v, "below it"), "Bayes ceiling: %s", v);
    cJSON_Delete(manifest);
    cJSON_Delete(eval);

    cJSON *probe = parse("{\"target\":\"label\",\"site\":\"pooled\",\"layers\":["
                         "{\"layer\":0,\"test_accuracy\":0.60,\"majority_baseline\":0.55,\"control_accuracy\":0.58,"
                         "\"selectivity\":0.02},"
                         "{\"layer\":1,\"test_accuracy\":0.80,\"majority_baseline\":0.55,\"control_accuracy\":0.6,"
                         "\"selectivity\":0.2}]}");
    verdict("probe.json", probe, v, sizeof v);
    CHECK(contains(v, "best at layer 1") && !contains(v, "low selectivity"), "probe: %s", v);
    cJSON_Delete(probe);
    probe = parse("{\"target\":\"label\",\"site\":\"pooled\",\"layers\":[{\"layer\":0,\"test_accuracy\":0.56,"
                  "\"majority_baseline\":0.55,\"control_accuracy\":0.5,\"selectivity\":0.06}]}");
    verdict("probe.json", probe, v, sizeof v);
    CHECK(contains(v, "No layer encodes"), "probe at the majority baseline: %s", v);
    cJSON_Delete(probe);

    cJSON *attr = parse("{\"method\":\"ig\",\"n\":5,\"families\":[{\"family\":\"sep\",\"attribution_share\":0.02,"
                        "\"token_share\":0.1,\"ratio\":0.2},{\"family\":\"key\",\"attribution_share\":0.5,"
                        "\"token_share\":0.1,\"ratio\":5}],\"completeness\":{\"mean_relative_error\":0.2}}");
    verdict("attribute.json", attr, v, sizeof v);
    CHECK(contains(v, "concentrates on 'key'") && contains(v, "raise --steps"), "attribution: %s", v);
    cJSON_Delete(attr);

    cJSON *pt = parse("{\"n_pairs\":50,\"results\":[{\"hook\":\"blocks.1.resid_post\",\"position\":-1,\"effect\":0.9,"
                      "\"n_used\":48},{\"hook\":\"embed\",\"position\":3,\"effect\":0.2,\"n_used\":48},"
                      "{\"hook\":\"embed\",\"position\":4,\"effect\":null,\"n_used\":0}]}");
    verdict("patch.json", pt, v, sizeof v);
    CHECK(contains(v, "blocks.1.resid_post at position -1 restores 90%") && contains(v, "1 of 2"), "patch: %s", v);
    cJSON_Delete(pt);
    pt = parse("{\"n_pairs\":50,\"results\":[{\"hook\":\"embed\",\"position\":3,\"effect\":0.05,\"n_used\":48}]}");
    verdict("patch.json", pt, v, sizeof v);
    CHECK(contains(v, "No single activation carries the answer"), "weak patch: %s", v);
    cJSON_Delete(pt);

    cJSON *in = parse("{\"arch\":\"mamba\",\"n\":5,\"layers\":[{\"layer\":0,\"families\":["
                      "{\"family\":\"sep\",\"mean_delta\":0.3,\"mean_gate\":0.5},"
                      "{\"family\":\"key\",\"mean_delta\":0.1,\"mean_gate\":0.2}]}]}");
    verdict("inspect.json", in, v, sizeof v);
    CHECK(contains(v, "'sep' at layer 0 (1.50x"), "mamba inspect: %s", v);
    cJSON_Delete(in);
}

static void loader_errors(void)
{
    sl_results r;
    sl_error err = {0};
    CHECK(system("rm -rf " DIR " && mkdir -p " DIR) == 0, "cannot make " DIR);
    CHECK(sl_results_load(&r, DIR, &err) == SL_OK && !sl_result(&r, "eval.json"), "an empty directory loads as nothing");
    sl_results_free(&r);

    write_text_in(DIR, "eval.json", "{\"n\": 3, \"auc\": ");
    err = (sl_error){0};
    CHECK(sl_results_load(&r, DIR, &err) == SL_EINPUT && contains(err.msg, "eval.json: not valid JSON"),
          "truncated JSON: %s", err.msg);
    write_text_in(DIR, "eval.json", "{\"n\": 3, \"auc\": \"high\", \"log_loss\": 0.5, \"accuracy\": 0.5}");
    err = (sl_error){0};
    CHECK(sl_results_load(&r, DIR, &err) == SL_EINPUT && contains(err.msg, "field 'auc' is not a number"),
          "wrong type: %s", err.msg);
    unlink(DIR "/eval.json");
    write_text_in(DIR, "ablate-family.json", "{\"baseline_auc\": 0.9, \"n\": 3, \"mode\": \"mean\", \"results\": [{\"auc\": 1}]}");
    err = (sl_error){0};
    CHECK(sl_results_load(&r, DIR, &err) == SL_EINPUT && contains(err.msg, "results[0] has no field 'family'"),
          "missing row field: %s", err.msg);
    unlink(DIR "/ablate-family.json");
}

static void base64_embedding(void)
{
    static const struct {
        const char *in, *out;
    } CASES[] = {{"M", "TQ=="}, {"Ma", "TWE="}, {"Man", "TWFu"}, {"Many hands", "TWFueSBoYW5kcw=="}};
    for (size_t i = 0; i < sizeof CASES / sizeof *CASES; i++) {
        write_text_in(DIR, "b64.bin", CASES[i].in);
        char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);
        sl_error err = {0};
        int rc = sl_html_png(f, DIR "/b64.bin", "a<b", &err);
        fclose(f);
        char want[128];
        snprintf(want, sizeof want, "<img alt=\"a&lt;b\" src=\"data:image/png;base64,%s\">", CASES[i].out);
        CHECK(rc == SL_OK && buf && !strcmp(buf, want), "base64 of '%s': %s", CASES[i].in, buf ? buf : "(null)");
        free(buf);
    }
    /* a file whose length is a multiple of the read block and then some */
    FILE *f = fopen(DIR "/big.bin", "wb");
    for (int i = 0; i < 3 * 1024 + 1; i++) fputc(i & 255, f);
    fclose(f);
    char *buf = NULL;
    size_t size = 0;
    FILE *m = open_memstream(&buf, &size);
    sl_error err = {0};
    sl_html_png(m, DIR "/big.bin", "", &err);
    fclose(m);
    const char *b = strstr(buf, "base64,") + 7;
    size_t len = strcspn(b, "\"");
    CHECK(len == 4 * ((3 * 1024 + 1 + 2) / 3) && !strncmp(b + len - 4, "AA==", 4), "3073 bytes: %zu chars", len);
    free(buf);
}

static void page_without_gnuplot(void)
{
    setenv("SEQLENS_GNUPLOT", "", 1);
    write_text_in(DIR, "eval.json", "{\"n\": 10, \"positives\": 5, \"auc\": 0.75, \"log_loss\": 0.6, \"accuracy\": 0.7}");
    sl_report_info info;
    sl_error err = {0};
    int rc = sl_report_build(DIR, &info, &err);
    CHECK(rc == SL_OK, "report without gnuplot: %s", err.msg);
    CHECK(info.gnuplot_missing && info.figures == 0 && contains(info.warning, "gnuplot not found"),
          "the missing gnuplot is one warning: %s", info.warning);
    FILE *f = fopen(DIR "/report.html", "r");
    char page[1 << 16] = "";
    if (f) {
        page[fread(page, 1, sizeof page - 1, f)] = 0;
        fclose(f);
    }
    CHECK(contains(page, "Figures were skipped") && !contains(page, "<img"), "the page says figures were skipped");
    CHECK(contains(page, "AUC 0.750 on 10 examples (accuracy 0.700)."), "the verdict is on the page");
    CHECK(contains(page, "<section id=\"performance\">") && !contains(page, "<section id=\"family\">"),
          "only the sections with results");
    struct stat st;
    CHECK(stat(DIR "/figures", &st) != 0, "no figures directory without gnuplot");
    unsetenv("SEQLENS_GNUPLOT");

    /* a gnuplot that fails: the page still comes, with the failure named */
    write_text_in(DIR, "fake-gnuplot", "#!/bin/sh\necho 'line 3: no such terminal' >&2\nexit 1\n");
    chmod(DIR "/fake-gnuplot", 0755);
    setenv("SEQLENS_GNUPLOT", DIR "/fake-gnuplot", 1);
    write_text_in(DIR, "ablate-layer.json", "{\"baseline_auc\": 0.75, \"n\": 10, \"mode\": \"skip\", \"results\": "
                                    "[{\"layer\": 0, \"auc\": 0.6, \"delta_auc\": -0.15, \"ci95\": [-0.2, -0.1]}]}");
    err = (sl_error){0};
    rc = sl_report_build(DIR, &info, &err);
    CHECK(rc == SL_OK && info.figure_failures == 1 && contains(info.warning, "no such terminal"),
          "a failing gnuplot is a warning naming its error: %s", info.warning);
    CHECK(access(DIR "/figures/ablate-layer.png", F_OK) != 0 && access(DIR "/figures/ablate-layer.png.tmp", F_OK) != 0,
          "no figure file from a failed gnuplot");
    unsetenv("SEQLENS_GNUPLOT");

    err = (sl_error){0};
    CHECK(sl_report_build(DIR "/nowhere", &info, &err) == SL_EINPUT && contains(err.msg, "not a directory"),
          "missing directory: %s", err.msg);
}

/* Mamba-2's family x head heatmap, as the inspect section writes its
 * script: one data line per (family, head) with a finite value, family
 * names reaching gnuplot only as reduced labels, and nothing drawn for a
 * field no row has (Mamba-1's rows have neither). A gnuplot that fails
 * leaves each script, written before it ran. */
static void heads_heatmap(void)
{
    CHECK(system("rm -rf " DIR "/heads && mkdir -p " DIR "/heads") == 0, "cannot make " DIR "/heads");
    write_text_in(DIR "/heads", "inspect.json",
                  "{\"arch\": \"mamba2\", \"n\": 5, \"layers\": [{\"layer\": 1, \"families\": ["
                  "{\"family\": \"a`rm x`$HOME@b\\\"c'd\\\\e\", \"mean_delta\": 1, \"mean_delta_per_head\": [0.5, 0.25, 0.125]},"
                  "{\"family\": \"plain\", \"mean_delta\": 2, \"mean_delta_per_head\": [1, null, 3]},"
                  "{\"family\": \"none\", \"mean_delta\": 2}]}]}");
    write_text_in(DIR "/heads", "fake-gnuplot", "#!/bin/sh\nexit 1\n");
    chmod(DIR "/heads/fake-gnuplot", 0755);
    setenv("SEQLENS_GNUPLOT", DIR "/heads/fake-gnuplot", 1);
    sl_report_info info;
    sl_error err = {0};
    CHECK(sl_report_build(DIR "/heads", &info, &err) == SL_OK, "report of a Mamba-2 inspect.json: %s", err.msg);
    unsetenv("SEQLENS_GNUPLOT");
    char buf[1 << 14] = "";
    FILE *f = fopen(DIR "/heads/figures/inspect-heads-delta-1.gp", "r");
    CHECK(f != NULL, "the heatmap by head was not drawn");
    if (f) {
        buf[fread(buf, 1, sizeof buf - 1, f)] = 0;
        fclose(f);
    }
    CHECK(contains(buf, "\"a_rm x__HOME_b_c_d_e\" 0"), "the family label is not reduced:\n%s", buf);
    CHECK(!contains(buf, "`") && !contains(buf, "@") && !contains(buf, "HOME@"), "an unsafe byte reached gnuplot");
    CHECK(contains(buf, "\n0 2 0.125\n") && contains(buf, "\n1 0 1\n") && contains(buf, "\n1 2 3\n") &&
              !contains(buf, "\n1 1 "),
          "the cells (family, head, value) are wrong:\n%s", buf);
    CHECK(contains(buf, "set yrange [-0.5:2.5]"), "three heads expected on the y axis");
    CHECK(!contains(buf, "\"none\""), "a row without the field made a column");
    CHECK(access(DIR "/heads/figures/inspect-heads-memory-1.gp", F_OK) != 0, "drawn from a field no row has");
}

int main(void)
{
    sl_h5_quiet();
    family_verdicts();
    other_verdicts();
    loader_errors();
    base64_embedding();
    heads_heatmap();
    page_without_gnuplot();
    return TEST_SUMMARY();
}
