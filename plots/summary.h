/* The cross-run summary: one row per analysed run as JSON, CSV and an
 * HTML page with figures, so that a sweep of checkpoints can be compared at
 * a glance. The row is the run's name, architecture and report, and each
 * analysis's part (its section's summary: AUC, the family and layer whose
 * ablation costs most, reverse r, the best probe layer, the family
 * attribution favours). */
#ifndef SL_SUMMARY_H
#define SL_SUMMARY_H

#include <stdio.h>

#include <cjson/cJSON.h>

#include "core/error.h"
#include "plots/report.h"

/* A part's values in a run's row: a number (null where not finite), a
 * string (null for NULL). */
void sl_summary_num(cJSON *row, const char *key, double v);
void sl_summary_str(cJSON *row, const char *key, const char *v);
/* A cell of one number: <td class="num">V</td>. */
void sl_summary_num_cell(FILE *f, const cJSON *row, const char *key);
/* A cell naming the run's top item and its number: <td>NAME (V`unit`)</td>,
 * NAME empty where the row has none. */
void sl_summary_named_cell(FILE *f, const cJSON *row, const char *name_key, const char *value_key, const char *unit);

/* Reads each of dirs (seqlens analyze output) and writes OUT/summary.json,
 * OUT/summary.csv, OUT/summary.html and OUT/figures/summary-*. */
int sl_summary_build(const char *const *dirs, int n, const char *out, sl_report_info *info, sl_error *err);

#endif
