/* The report's figures as gnuplot script bodies (data inline). Each
 * function writes to gp and returns 1, or writes nothing and returns 0 when
 * its result has nothing to draw. */
#ifndef SL_FIGURES_H
#define SL_FIGURES_H

#include <stdio.h>

#include <cjson/cJSON.h>

#include "plots/results.h"

/* Text from an input (a family, hook, run or mode name) as a double-quoted
 * gnuplot string (NULL as ""): every byte gnuplot could expand or that could
 * end the string (backtick, @, $, quotes, backslash, control characters)
 * becomes '_' (design.md section 1, Safety); past LABEL_MAX bytes it is cut. */
void sl_gp_label(FILE *gp, const char *s);
/* " %.9g", or " NaN" where not finite: a number in a figure's inline data. */
void sl_gp_num(FILE *gp, double v);
/* set title "T" (T made safe as sl_gp_label makes it) */
void sl_gp_title(FILE *gp, const char *t);

/* The figures' colours: bars and a second series. */
#define SL_GP_BAR_COLOUR "#4477aa"
#define SL_GP_ALT_COLOUR "#ee6677"

/* Ablation AUC changes as bars with 95% CIs, largest drop first; key names
 * the row label ("family", "layer"). */
int sl_fig_ablation(FILE *gp, const cJSON *abl, const char *key, const char *title);
/* layer x family heatmap of one inspect field. */
int sl_fig_inspect(FILE *gp, const cJSON *inspect, const char *field, const char *title);
/* family x head heatmap of one per-head array field of one inspect layer
 * (Mamba-2's mean_delta_per_head, ...). */
int sl_fig_inspect_heads(FILE *gp, const cJSON *layer, const char *field, const char *title);
/* Attribution share / token share per family against the 1.0 line. */
int sl_fig_attribution(FILE *gp, const cJSON *attr);
/* Attribution and token shares by distance from the sequence end. */
int sl_fig_profile(FILE *gp, const cJSON *attr);
/* Probe accuracy per layer with the majority baseline and control task. */
int sl_fig_probe(FILE *gp, const cJSON *probe);
/* The model's AUC beside the bag-of-tokens and bag-of-families AUCs (and
 * the data's Bayes-optimal AUC where its attributes give one). */
int sl_fig_baselines(FILE *gp, const cJSON *baseline, const cJSON *eval, const cJSON *manifest);
/* Layer x layer linear CKA of two models. */
int sl_fig_cka(FILE *gp, const cJSON *compare);
/* Patching effect per hook and position. */
int sl_fig_patch(FILE *gp, const cJSON *patch);

#endif
