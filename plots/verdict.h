/* What the analyses' verdicts share. Each analysis writes its own one
 * plain-language sentence in its own file (cli/cmd_*.c: its section's
 * verdict), with its own thresholds beside it; the README lists them. */
#ifndef SL_VERDICT_H
#define SL_VERDICT_H

#include <stddef.h>

#include <cjson/cJSON.h>

/* An AUC change smaller than this is "does not matter" (eval's ceiling,
 * the bag-of-tokens baseline, every ablation). */
#define SL_NEGLIGIBLE_AUC 0.01

/* A probe "decodes" when it beats the majority baseline by this much; its
 * selectivity below SL_LOW_SELECTIVITY is flagged. */
#define SL_PROBE_MARGIN 0.02
#define SL_LOW_SELECTIVITY 0.05

void sl_verdict_probe(const cJSON *probe, char *out, size_t size);

#endif
