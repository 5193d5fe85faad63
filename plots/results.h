/* The JSON results a report is drawn from: analyze.json and one file per
 * section, with the names `seqlens analyze` writes (README: "The report
 * directory"; each section names its file). Each is checked against the
 * fields the report reads before anything is drawn. */
#ifndef SL_RESULTS_H
#define SL_RESULTS_H

#include <cjson/cJSON.h>

#include "core/error.h"
#include "plots/section.h"

struct sl_results {
    cJSON *manifest; /* analyze.json: inputs, config, data summary, commands, versions */
    /* each section's result, in the order of sl_sections_by_file; NULL
     * where the file is absent */
    int n;
    const sl_section *const *sections;
    cJSON *json[SL_MAX_SECTIONS];
    void *extra[SL_MAX_SECTIONS]; /* what a section's load read, or NULL */
};

/* The result in file (a section's, "eval.json"), or NULL. */
const cJSON *sl_result(const sl_results *r, const char *file);
/* What the section of file loaded besides it, or NULL. */
const void *sl_result_extra(const sl_results *r, const char *file);
/* 1 when any result file, analyze.json included, is there. */
int sl_results_any(const sl_results *r);

/* Reads every result file present in dir. A file that is not JSON or lacks
 * a field the report needs is an input error naming the file and field. */
int sl_results_load(sl_results *r, const char *dir, sl_error *err);
void sl_results_free(sl_results *r);

/* Checks obj against spec, space-separated "key:type" with types n
 * (number), N (number or null), s (string), a (array), A (array or null),
 * o (object); a key written "key?:type" may be absent. */
int sl_json_check(const cJSON *obj, const char *spec, const char *file, const char *where, sl_error *err);
/* A number field; NaN when null or absent (checked beforehand). */
double sl_jnum(const cJSON *obj, const char *key);
const char *sl_jstr(const cJSON *obj, const char *key);

#endif
