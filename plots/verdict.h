/* One plain-language sentence per analysis, computed from its numbers. The
 * thresholds are the constants below; the README lists them. Each function
 * writes "" when its result holds nothing to judge. */
#ifndef SL_VERDICT_H
#define SL_VERDICT_H

#include <stddef.h>

#include <cjson/cJSON.h>

/* An AUC change smaller than this is "does not matter". */
#define SL_NEGLIGIBLE_AUC 0.01
/* One family "carries" the model when its drop is this many times the next. */
#define SL_DOMINANT_FACTOR 3.0
/* An attribution ratio at or above this is "concentrated". */
#define SL_CONCENTRATED_RATIO 1.5
/* A probe "decodes" when it beats the majority baseline by this much; its
 * selectivity below SL_LOW_SELECTIVITY is flagged. */
#define SL_PROBE_MARGIN 0.02
#define SL_LOW_SELECTIVITY 0.05

void sl_verdict_eval(const cJSON *eval, const cJSON *manifest, char *out, size_t size);
void sl_verdict_baseline(const cJSON *baseline, const cJSON *eval, char *out, size_t size);
void sl_verdict_family(const cJSON *family, char *out, size_t size);
void sl_verdict_layer(const cJSON *layer, char *out, size_t size);
void sl_verdict_component(const cJSON *component, char *out, size_t size);
void sl_verdict_inspect(const cJSON *inspect, char *out, size_t size);
void sl_verdict_attribute(const cJSON *attribute, char *out, size_t size);
void sl_verdict_probe(const cJSON *probe, char *out, size_t size);
void sl_verdict_compare(const cJSON *compare, char *out, size_t size);
/* The (hook, position) whose patch moves the logit furthest toward the
 * source, and how concentrated that is. */
void sl_verdict_patch(const cJSON *patch, char *out, size_t size);

/* The row of an ablation's results whose delta_auc is lowest (the largest
 * drop), or NULL; *second gets the next one's |delta| (0 if none). */
const cJSON *sl_largest_drop(const cJSON *results, double *second);

#endif
