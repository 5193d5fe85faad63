/* The JSON results a report is drawn from: one file per analysis, with the
 * names `seqlens analyze` writes (README: "The report directory"). Each is
 * checked against the fields the report reads before anything is drawn. */
#ifndef SL_RESULTS_H
#define SL_RESULTS_H

#include <cjson/cJSON.h>

#include "core/error.h"

enum {
    R_MANIFEST, /* analyze.json: inputs, config, data summary, commands, versions */
    R_EVAL,
    R_BASELINE,
    R_FAMILY,
    R_LAYER,
    R_COMPONENT,
    R_REVERSE,
    R_INSPECT,
    R_ATTRIBUTE,
    R_PROBE,
    R_COMPARE,
    R_PATCH,
    R_COUNT
};

extern const char *const SL_RESULT_FILES[R_COUNT];

typedef struct {
    cJSON *json[R_COUNT]; /* NULL where the file is absent */
    /* reverse-scores.h5, when present: original, reversed, shuffled logits */
    float *rev_logits;
    long rev_n;
} sl_results;

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
