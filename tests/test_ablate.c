/* ablate --family and --layer against the PyTorch reference
 * (tests/reference/make_ablation_fixtures.py writes ablate_expected.json
 * beside each fixture): the logits of every mode (skip on Mamba models),
 * family and layer, and the masked fractions. Resampling is checked by its
 * properties. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ablation/layer.h"
#include "tests/fixture_files.h"
#include "tests/testing.h"

#define TOL 1e-5

/* max |got - want| over max |baseline|: the logits' own scale. */
static double rel(const float *got, const cJSON *want, double scale)
{
    double worst = 0;
    for (int i = 0; i < cJSON_GetArraySize(want); i++) {
        double e = fabs(got[i] - cJSON_GetArrayItem(want, i)->valuedouble);
        if (!(e <= worst)) worst = e;
    }
    return worst / scale;
}

static void check_fixture(const char *name, const cJSON *want)
{
    fixture f;
    if (open_fixture(&f, name, 2, 3)) return;
    long n = f.ds.n;
    int F = f.ds.n_families, nl = f.m.c.n_layers;
    const cJSON *base = cJSON_GetObjectItem(want, "baseline");
    double scale = 0;
    for (int i = 0; i < cJSON_GetArraySize(base); i++) scale = fmax(scale, fabs(cJSON_GetArrayItem(base, i)->valuedouble));
    int *all = malloc((size_t)(F + nl) * sizeof *all);
    for (int i = 0; i < F + nl; i++) all[i] = i;
    float *logits = malloc((size_t)(F + nl) * n * sizeof *logits);
    sl_error err = {0};
    sl_ablation_result r;
    const char *modes[] = {"mean", "zero", "pad", "resample", "skip"};
    /* skip where the reference has it (the Mamba fixtures); a Transformer refuses it */
    int has_skip = cJSON_GetObjectItem(cJSON_GetObjectItem(want, "family"), "skip") != NULL;
    CHECK(has_skip == sl_arch_is_mamba(f.m.c.arch), "%s: skip expected exactly for Mamba models", name);
    if (!has_skip) {
        sl_family_opts fo = {FAM_SKIP, 1, 0, NULL};
        int rc = sl_ablate_families(&f.m, &f.ds, &f.o, all, F, &fo, &r, logits, &err);
        CHECK(rc == SL_EINPUT && strstr(err.msg, "skip"), "%s: skip on a %s: rc %d (%s)", name,
              sl_arch_name(f.m.c.arch), rc, err.msg);
        sl_ablation_result_free(&r);
    }
    for (int mode = FAM_MEAN; mode <= FAM_SKIP; mode++) {
        if (mode == FAM_RESAMPLE || (mode == FAM_SKIP && !has_skip)) continue;
        sl_family_opts fo = {mode, 1, 0, NULL};
        int rc = sl_ablate_families(&f.m, &f.ds, &f.o, all, F, &fo, &r, logits, &err);
        CHECK(!rc, "%s: %s", name, err.msg);
        const cJSON *by_family = cJSON_GetObjectItem(cJSON_GetObjectItem(want, "family"), modes[mode]);
        for (int k = 0; !rc && k < F; k++) {
            const cJSON *w = cJSON_GetObjectItem(by_family, f.ds.family_names[k]);
            CHECK(w != NULL, "%s: no reference for %s %s", name, modes[mode], f.ds.family_names[k]);
            double e = w ? rel(logits + (long)k * n, w, scale) : INFINITY;
            CHECK(e <= TOL, "%s: family %s, mode %s: relative error %.3g", name, f.ds.family_names[k], modes[mode], e);
            double mf = cJSON_GetObjectItem(cJSON_GetObjectItem(want, "masked_fraction"), f.ds.family_names[k])->valuedouble;
            CHECK(fabs(r.rows[k].masked_fraction - mf) < 1e-12, "%s: masked_fraction of %s: %g vs %g", name,
                  f.ds.family_names[k], r.rows[k].masked_fraction, mf);
        }
        sl_ablation_result_free(&r);
    }
    const char *lmodes[] = {"skip", "mean"};
    for (int mode = LAYER_SKIP; mode <= LAYER_MEAN; mode++) {
        int rc = sl_ablate_layers(&f.m, &f.ds, &f.o, all, nl, mode, 0, 1, &r, logits, &err);
        CHECK(!rc, "%s: layers: %s", name, err.msg);
        const cJSON *per_layer = cJSON_GetObjectItem(cJSON_GetObjectItem(want, "layer"), lmodes[mode]);
        for (int i = 0; !rc && i < nl; i++) {
            double e = rel(logits + (long)i * n, cJSON_GetArrayItem(per_layer, i), scale);
            CHECK(e <= TOL, "%s: layer %d, mode %s: relative error %.3g", name, i, lmodes[mode], e);
        }
        sl_ablation_result_free(&r);
    }
    free(all);
    free(logits);
    close_fixture(&f);
}

/* resample: the same seed gives the same logits on any threads and batch
 * size; another seed other draws. */
static void resample_properties(void)
{
    fixture a, b;
    if (open_fixture(&a, "tf_long_dh8_learned", 1, 3) || open_fixture(&b, "tf_long_dh8_learned", 2, 1)) return;
    int F = a.ds.n_families, all[16];
    for (int i = 0; i < F; i++) all[i] = i;
    long n = a.ds.n;
    float *la = malloc((size_t)F * n * sizeof *la), *lb = malloc((size_t)F * n * sizeof *lb);
    float *lc = malloc((size_t)F * n * sizeof *lc);
    sl_error err = {0};
    sl_ablation_result r;
    sl_family_opts fo = {FAM_RESAMPLE, 42, 0, NULL};
    CHECK(!sl_ablate_families(&a.m, &a.ds, &a.o, all, F, &fo, &r, la, &err), "%s", err.msg);
    sl_ablation_result_free(&r);
    CHECK(!sl_ablate_families(&b.m, &b.ds, &b.o, all, F, &fo, &r, lb, &err), "%s", err.msg);
    sl_ablation_result_free(&r);
    fo.seed = 43;
    CHECK(!sl_ablate_families(&b.m, &b.ds, &b.o, all, F, &fo, &r, lc, &err), "%s", err.msg);
    sl_ablation_result_free(&r);
    CHECK(!memcmp(la, lb, (size_t)F * n * sizeof *la), "resample: threads or batch size changed the logits");
    CHECK(memcmp(la, lc, (size_t)F * n * sizeof *la) != 0, "resample: the seed changed nothing");
    free(la);
    free(lb);
    free(lc);
    close_fixture(&a);
    close_fixture(&b);
}

static void ablate_fixture(const char *name, const char *path, void *user)
{
    (void)user;
    cJSON *want = read_json(path);
    CHECK(want != NULL, "%s: not JSON", path);
    if (want) check_fixture(name, want);
    cJSON_Delete(want);
}

int main(void)
{
    sl_h5_quiet();
    int checked = for_each_fixture("ablate_expected.json", ablate_fixture, NULL);
    CHECK(checked >= 10, "only %d fixtures have ablate_expected.json", checked);
    resample_properties();
    return TEST_SUMMARY();
}
