#include "plots/results.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/textfile.h"

/* What the report reads from analyze.json (the sections say theirs). */
#define MANIFEST_FILE "analyze.json"
#define MANIFEST_SPEC "model?:s data?:s stages?:a config?:o data_summary?:o versions?:o verify?:o"

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

static int load_one(cJSON **out, const char *path, const char *top, const char *array, const char *row_spec,
                    sl_error *err)
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
    rc = sl_json_check(j, top, path, "the top-level object", err);
    const cJSON *arr = array ? cJSON_GetObjectItemCaseSensitive(j, array) : NULL;
    int i = 0;
    for (const cJSON *row = arr ? arr->child : NULL; row && !rc; row = row->next, i++) {
        char where[96];
        snprintf(where, sizeof where, "%s[%d]", array, i);
        rc = sl_json_check(row, row_spec, path, where, err);
    }
    if (rc) {
        cJSON_Delete(j);
        return rc;
    }
    *out = j;
    return SL_OK;
}

int sl_results_load(sl_results *r, const char *dir, sl_error *err)
{
    memset(r, 0, sizeof *r);
    r->n = sl_sections_by_file(&r->sections);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, MANIFEST_FILE);
    int rc = load_one(&r->manifest, path, MANIFEST_SPEC, NULL, NULL, err);
    for (int k = 0; k < r->n && !rc; k++) {
        const sl_section *s = r->sections[k];
        snprintf(path, sizeof path, "%s/%s", dir, s->file);
        rc = load_one(&r->json[k], path, s->top, s->array, s->row, err);
    }
    for (int k = 0; k < r->n && !rc; k++)
        if (r->sections[k]->load) rc = r->sections[k]->load(&r->extra[k], dir, err);
    if (rc) sl_results_free(r);
    return rc;
}

void sl_results_free(sl_results *r)
{
    cJSON_Delete(r->manifest);
    for (int k = 0; k < r->n; k++) {
        cJSON_Delete(r->json[k]);
        if (r->extra[k]) r->sections[k]->free_extra(r->extra[k]);
    }
    memset(r, 0, sizeof *r);
}

static int find(const sl_results *r, const char *file)
{
    for (int k = 0; k < r->n; k++)
        if (!strcmp(r->sections[k]->file, file)) return k;
    return -1;
}

const cJSON *sl_result(const sl_results *r, const char *file)
{
    int k = find(r, file);
    return k < 0 ? NULL : r->json[k];
}

const void *sl_result_extra(const sl_results *r, const char *file)
{
    int k = find(r, file);
    return k < 0 ? NULL : r->extra[k];
}

int sl_results_any(const sl_results *r)
{
    int any = r->manifest != NULL;
    for (int k = 0; k < r->n; k++) any |= r->json[k] != NULL;
    return any;
}
