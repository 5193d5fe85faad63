/* inspect against the same statistics computed with numpy from the PyTorch
 * reference's activations (tests/reference/make_inspect_fixtures.py writes
 * inspect_expected.json beside each fixture). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attribution/inspect.h"
#include "tests/fixture_files.h"
#include "tests/testing.h"

#define TOL 1e-4

static void near(const char *what, const char *fix, int layer, const char *fam, double got, double want)
{
    double e = fabs(got - want) / fmax(fabs(want), 1e-6);
    CHECK(e <= TOL, "%s layer %d %s: %s %.9g vs reference %.9g (rel %.2g)", fix, layer, fam, what, got, want, e);
}

static void check(const char *name, const cJSON *want, int threads, int batch)
{
    char dir[512], data[600];
    snprintf(dir, sizeof dir, FIXTURES "/%s", name);
    snprintf(data, sizeof data, "%s/data.h5", dir);
    sl_model m;
    sl_dataset ds;
    sl_error err = {0};
    if (sl_model_load(&m, dir, &err) || sl_dataset_open(&ds, data, m.c.vocab_size, m.c.pad_token_id, &err)) {
        CHECK(0, "%s: %s", name, err.msg);
        return;
    }
    sl_run_opts o = {.count = ds.n, .batch = batch, .threads = threads};
    sl_inspect_result r;
    if (sl_inspect(&m, &ds, &o, &r, &err)) {
        CHECK(0, "%s: %s", name, err.msg);
        sl_dataset_close(&ds);
        sl_model_free(&m);
        return;
    }
    const cJSON *layer;
    cJSON_ArrayForEach(layer, cJSON_GetObjectItem(want, "layers"))
    {
        int i = cJSON_GetObjectItem(layer, "layer")->valueint, rows = 0;
        const cJSON *row;
        cJSON_ArrayForEach(row, cJSON_GetObjectItem(layer, "families"))
        {
            const char *fam = cJSON_GetObjectItem(row, "family")->valuestring;
            int f = 0;
            while (f < ds.n_families && strcmp(ds.family_names[f], fam)) f++;
            const sl_inspect_family *x = &r.fam[i * r.n_families + f];
            CHECK(f < ds.n_families && x->count > 0, "%s layer %d: family %s missing", name, i, fam);
            if (f == ds.n_families) continue;
            rows++;
#define NEAR(field) near(#field, name, i, fam, x->field, cJSON_GetObjectItem(row, #field)->valuedouble)
            if (sl_arch_is_mamba(m.c.arch)) {
                NEAR(mean_delta);
                NEAR(mean_gate);
                NEAR(mean_write);
                NEAR(mean_retention);
                NEAR(memory_length);
                /* Mamba-2: every per-head array, of nheads values */
                CHECK(r.ssm_heads == (m.c.arch == ARCH_MAMBA2 ? m.c.nheads : 0), "%s: %d heads of selectivity", name,
                      r.ssm_heads);
                for (int q = 0; q < SL_PH_COUNT && r.ssm_heads; q++) {
                    const cJSON *arr = cJSON_GetObjectItem(row, SL_INSPECT_PER_HEAD_NAMES[q]);
                    CHECK(cJSON_GetArraySize(arr) == r.ssm_heads, "%s layer %d %s: %s has %d values for %d heads", name,
                          i, fam, SL_INSPECT_PER_HEAD_NAMES[q], cJSON_GetArraySize(arr), r.ssm_heads);
                    for (int h = 0; h < r.ssm_heads && h < cJSON_GetArraySize(arr); h++)
                        near(SL_INSPECT_PER_HEAD_NAMES[q], name, i, fam, x->per_head[q][h],
                             cJSON_GetArrayItem(arr, h)->valuedouble);
                }
            } else {
                NEAR(attention_mass);
                NEAR(token_share);
                NEAR(ratio);
                for (int h = 0; h < r.n_heads; h++)
                    near("attention_mass_per_head", name, i, fam, x->attention_mass_per_head[h],
                         cJSON_GetArrayItem(cJSON_GetObjectItem(row, "attention_mass_per_head"), h)->valuedouble);
            }
        }
        int present = 0;
        for (int f = 0; f < r.n_families; f++) present += r.fam[i * r.n_families + f].count > 0;
        CHECK(present == rows, "%s layer %d: %d families with positions, the reference has %d", name, i, present, rows);
        const cJSON *head;
        cJSON_ArrayForEach(head, cJSON_GetObjectItem(layer, "heads"))
        {
            int h = cJSON_GetObjectItem(head, "head")->valueint;
            near("entropy", name, i, "-", r.head[i * r.n_heads + h].entropy, cJSON_GetObjectItem(head, "entropy")->valuedouble);
            near("mean_distance", name, i, "-", r.head[i * r.n_heads + h].mean_distance,
                 cJSON_GetObjectItem(head, "mean_distance")->valuedouble);
        }
    }
    sl_inspect_free(&r);
    sl_dataset_close(&ds);
    sl_model_free(&m);
}

/* on 1 thread in batches of 4, and on 2 threads one example at a time */
static void inspect_fixture(const char *name, const char *path, void *user)
{
    (void)user;
    cJSON *want = read_json(path);
    CHECK(want != NULL, "%s: not JSON", path);
    if (want) {
        check(name, want, 1, 4);
        check(name, want, 2, 1);
    }
    cJSON_Delete(want);
}

int main(void)
{
    sl_h5_quiet();
    int checked = for_each_fixture("inspect_expected.json", inspect_fixture, NULL);
    CHECK(checked >= 8, "only %d fixtures have inspect_expected.json", checked);
    return TEST_SUMMARY();
}
