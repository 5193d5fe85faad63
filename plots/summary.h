/* The cross-run summary: one row per analysed run (AUC, the family and
 * layer whose ablation costs most, reverse r, the best probe layer, the
 * family attribution favours) as JSON, CSV and an HTML page with figures,
 * so that a sweep of checkpoints can be compared at a glance. */
#ifndef SL_SUMMARY_H
#define SL_SUMMARY_H

#include "core/error.h"
#include "plots/report.h"

/* Reads each of dirs (seqlens analyze output) and writes OUT/summary.json,
 * OUT/summary.csv, OUT/summary.html and OUT/figures/summary-*. */
int sl_summary_build(const char *const *dirs, int n, const char *out, sl_report_info *info, sl_error *err);

#endif
