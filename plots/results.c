#include "plots/results.h"

#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/dataset.h"
#include "core/textfile.h"

const char *const SL_RESULT_FILES[R_COUNT] = {
    "analyze.json", "eval.json",     "baseline.json",  "ablate-family.json", "ablate-layer.json", "ablate-component.json",
    "reverse.json", "inspect.json",  "attribute.json", "probe.json",         "compare.json",      "patch.json",
};

/* What the report reads from each file: fields of the top object, then of
 * each element of one array in it. */
static const struct {
    const char *top, *array, *row;
} SCHEMA[R_COUNT] = {
    [R_MANIFEST] = {"model?:s data?:s stages?:a config?:o data_summary?:o versions?:o verify?:o", NULL, NULL},
    [R_EVAL] = {"n:n auc:N log_loss:N accuracy:N", NULL, NULL},
    [R_BASELINE] = {"bag_of_tokens:o bag_of_families:o", NULL, NULL},
    [R_FAMILY] = {"baseline_auc:N n:n mode:s results:a", "results",
                  "family:s auc:N delta_auc:N ci95?:A p_value?:N masked_fraction?:N"},
    [R_LAYER] = {"baseline_auc:N n:n mode:s results:a", "results", "layer:n auc:N delta_auc:N ci95?:A p_value?:N"},
    [R_COMPONENT] = {"baseline_auc:N n:n results:a", "results", "component:s layer:n auc:N delta_auc:N ci95?:A"},
    [R_REVERSE] = {"n:n pearson_r:N spearman_rho:N auc_original:N auc_reversed:N shuffle_pearson_r:N", NULL, NULL},
    [R_INSPECT] = {"arch:s n:n sampled_from?:n layers:a", "layers", "layer:n families:a heads?:a"},
    [R_ATTRIBUTE] = {"method:s n:n sampled_from?:n families:a profile?:a completeness?:o", "families",
                     "family:s attribution_share:N token_share:N ratio:N attribution_share_ci95?:A ratio_ci95?:A"},
    [R_PROBE] = {"target:s site:s layers:a", "layers",
                 "layer:n test_accuracy:N test_auc:N majority_baseline:N control_accuracy:N selectivity:N C:N"},
    [R_COMPARE] = {"n:n auc_a:N auc_b:N pearson_r:N agreement:N error_overlap:N auc_ensemble:N cka:o", NULL, NULL},
    [R_PATCH] = {"n_pairs:n sampled_from?:n results:a", "results", "hook:s position:n effect:N ci95?:A n_used:n"},
};

static int type_ok(const cJSON *v, char t)
{
    switch (t) {
    case 'n': return cJSON_IsNumber(v);
    case 'N': return cJSON_IsNumber(v) || cJSON_IsNull(v);
    case 's': return cJSON_IsString(v);
    case 'a': return cJSON_IsArray(v);
    case 'A': return cJSON_IsArray(v) || cJSON_IsNull(v);
    case 'o': return cJSON_IsObject(v);
    }
    return 0;
}

static const char *type_name(char t)
{
    switch (t) {
    case 'n': return "a number";
    case 'N': return "a number or null";
    case 's': return "a string";
    case 'a': return "an array";
    case 'A': return "an array or null";
    }
    return "an object";
}

int sl_json_check(const cJSON *obj, const char *spec, const char *file, const char *where, sl_error *err)
{
    if (!cJSON_IsObject(obj)) return sl_fail(err, SL_EINPUT, "%s: %s is not a JSON object", file, where);
    for (const char *p = spec; *p;) {
        while (*p == ' ') p++;
        size_t n = strcspn(p, ":");
        if (!p[n]) break;
        char key[64];
        int optional = n && p[n - 1] == '?';
        snprintf(key, sizeof key, "%.*s", (int)(n - optional), p);
        char t = p[n + 1];
        p += n + 2;
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
        if (!v && optional) continue;
        if (!v) return sl_fail(err, SL_EINPUT, "%s: %s has no field '%s'", file, where, key);
        if (!type_ok(v, t)) return sl_fail(err, SL_EINPUT, "%s: %s field '%s' is not %s", file, where, key, type_name(t));
    }
    return SL_OK;
}

double sl_jnum(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

const char *sl_jstr(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int load_one(cJSON **out, const char *path, int kind, sl_error *err)
{
    if (access(path, F_OK)) return SL_OK; /* that analysis was not run */
    char *text;
    int rc = sl_read_text(path, 256u << 20, "a seqlens result", &text, err);
    if (rc) return rc;
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithOpts(text, &end, 1);
    if (!j) {
        long at = end ? (long)(end - text) : 0;
        free(text);
        return sl_fail(err, SL_EINPUT, "%s: not valid JSON (near byte %ld)", path, at);
    }
    free(text);
    rc = sl_json_check(j, SCHEMA[kind].top, path, "the top-level object", err);
    const cJSON *arr = SCHEMA[kind].array ? cJSON_GetObjectItemCaseSensitive(j, SCHEMA[kind].array) : NULL;
    int i = 0;
    for (const cJSON *row = arr ? arr->child : NULL; row && !rc; row = row->next, i++) {
        char where[96];
        snprintf(where, sizeof where, "%s[%d]", SCHEMA[kind].array, i);
        rc = sl_json_check(row, SCHEMA[kind].row, path, where, err);
    }
    if (rc) {
        cJSON_Delete(j);
        return rc;
    }
    *out = j;
    return SL_OK;
}

/* The reversal scatter's logits; a damaged file is an input error. */
static int load_reverse_scores(sl_results *r, const char *path, sl_error *err)
{
    if (access(path, F_OK) != 0) return SL_OK; /* optional */
    static const char *const NAMES[3] = {"/original", "/reversed", "/shuffled"};
    /* the dataset files' checks: a regular file (a FIFO would block HDF5's
     * open), nothing from other files, no size declared beyond what is stored */
    hid_t file;
    int rc = sl_h5_open_input(path, &file, err);
    if (rc) return rc;
    for (int k = 0; k < 3 && !rc; k++) {
        hid_t d;
        rc = sl_h5_open_checked(file, path, NAMES[k], &d, err);
        if (rc) break;
        hid_t sp = d < 0 ? -1 : H5Dget_space(d);
        hsize_t n = 0;
        if (sp < 0 || H5Sget_simple_extent_ndims(sp) != 1 || H5Sget_simple_extent_dims(sp, &n, NULL) < 0 ||
            (k && (long)n != r->rev_n) || n == 0)
            rc = sl_fail(err, SL_EINPUT, "%s: %s missing or not a vector of the same length", path, NAMES[k]);
        if (!rc && !k) {
            r->rev_n = (long)n;
            if (!(r->rev_logits = malloc(3 * n * sizeof *r->rev_logits))) rc = sl_fail(err, SL_ERUNTIME, "out of memory");
        }
        if (!rc && H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, r->rev_logits + (size_t)k * n) < 0)
            rc = sl_fail(err, SL_EINPUT, "%s: cannot read %s", path, NAMES[k]);
        if (sp >= 0) H5Sclose(sp);
        if (d >= 0) H5Dclose(d);
    }
    if (H5Fclose(file) < 0 && !rc) rc = sl_fail(err, SL_ERUNTIME, "%s: cannot close", path);
    return rc;
}

int sl_results_load(sl_results *r, const char *dir, sl_error *err)
{
    memset(r, 0, sizeof *r);
    int rc = SL_OK;
    char path[4096];
    for (int k = 0; k < R_COUNT && !rc; k++) {
        snprintf(path, sizeof path, "%s/%s", dir, SL_RESULT_FILES[k]);
        rc = load_one(&r->json[k], path, k, err);
    }
    if (!rc) {
        snprintf(path, sizeof path, "%s/reverse-scores.h5", dir);
        rc = load_reverse_scores(r, path, err);
    }
    if (rc) sl_results_free(r);
    return rc;
}

void sl_results_free(sl_results *r)
{
    for (int k = 0; k < R_COUNT; k++) cJSON_Delete(r->json[k]);
    free(r->rev_logits);
    memset(r, 0, sizeof *r);
}
