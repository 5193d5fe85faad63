#include "plots/verdict.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "plots/results.h"

/* An ablation row's effect is real when its CI excludes 0, else when
 * DeLong's p < 0.05; with neither, when it is not negligible. */
static int significant(const cJSON *row)
{
    const cJSON *ci = cJSON_GetObjectItemCaseSensitive(row, "ci95");
    if (cJSON_GetArraySize(ci) == 2) {
        const cJSON *lo = cJSON_GetArrayItem(ci, 0), *hi = cJSON_GetArrayItem(ci, 1);
        if (cJSON_IsNumber(lo) && cJSON_IsNumber(hi)) return lo->valuedouble > 0 || hi->valuedouble < 0;
    }
    double p = sl_jnum(row, "p_value");
    if (isfinite(p)) return p < 0.05;
    return fabs(sl_jnum(row, "delta_auc")) >= SL_NEGLIGIBLE_AUC;
}

/* A family with no tokens in the data: its ablation changes nothing and
 * says nothing. */
static int absent(const cJSON *row) { return sl_jnum(row, "masked_fraction") == 0; }

const cJSON *sl_largest_drop(const cJSON *results, double *second)
{
    const cJSON *best = NULL, *row;
    cJSON_ArrayForEach(row, results)
    {
        double d = sl_jnum(row, "delta_auc");
        if (isfinite(d) && !absent(row) && (!best || d < sl_jnum(best, "delta_auc"))) best = row;
    }
    *second = 0;
    cJSON_ArrayForEach(row, results)
    {
        double d = fabs(sl_jnum(row, "delta_auc"));
        if (row != best && isfinite(d) && !absent(row) && d > *second) *second = d;
    }
    return best;
}

void sl_verdict_eval(const cJSON *eval, const cJSON *manifest, char *out, size_t size)
{
    out[0] = 0;
    if (!eval) return;
    double auc = sl_jnum(eval, "auc");
    int k = snprintf(out, size, "AUC %.3f on %.0f examples (accuracy %.3f).", auc, sl_jnum(eval, "n"),
                     sl_jnum(eval, "accuracy"));
    const cJSON *attrs = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(manifest, "data_summary"), "attributes");
    double bayes = sl_jnum(attrs, "bayes_auc");
    if (isfinite(bayes) && k > 0 && (size_t)k < size)
        snprintf(out + k, size - (size_t)k, " The data's attributes put the best achievable AUC at %.3f: the model is %s.",
                 bayes, auc >= bayes - SL_NEGLIGIBLE_AUC ? "at that ceiling" : "below it");
}

void sl_verdict_baseline(const cJSON *baseline, const cJSON *eval, char *out, size_t size)
{
    out[0] = 0;
    if (!baseline) return;
    double bag = sl_jnum(cJSON_GetObjectItemCaseSensitive(baseline, "bag_of_tokens"), "test_auc");
    double fam = sl_jnum(cJSON_GetObjectItemCaseSensitive(baseline, "bag_of_families"), "test_auc");
    double model = eval ? sl_jnum(eval, "auc") : NAN;
    if (!isfinite(model)) {
        snprintf(out, size, "A bag of tokens reaches AUC %.3f; a bag of families %.3f.", bag, fam);
    } else if (model - bag <= SL_NEGLIGIBLE_AUC) {
        snprintf(out, size,
                 "A bag of tokens already reaches AUC %.3f against the model's %.3f: token counts explain what the "
                 "model does.",
                 bag, model);
    } else {
        snprintf(out, size, "The model beats a bag of tokens by %.3f AUC (%.3f vs %.3f): it uses more than token counts.",
                 model - bag, model, bag);
    }
}

/* The family and layer verdicts share their reading of ablation rows. */
static void ablation_verdict(const cJSON *abl, const char *unit, char *out, size_t size)
{
    out[0] = 0;
    const cJSON *results = cJSON_GetObjectItemCaseSensitive(abl, "results");
    double second, lo = INFINITY, hi = -INFINITY;
    const cJSON *top = sl_largest_drop(results, &second), *row;
    if (!top) return;
    int n = 0;
    cJSON_ArrayForEach(row, results)
    {
        double a = fabs(sl_jnum(row, "delta_auc"));
        if (!isfinite(a) || absent(row)) continue;
        lo = fmin(lo, a);
        hi = fmax(hi, a);
        n++;
    }
    char name[96];
    const char *fam = sl_jstr(top, unit);
    if (fam) snprintf(name, sizeof name, "'%s'", fam);
    else snprintf(name, sizeof name, "%s %.0f", unit, sl_jnum(top, unit));
    double d = sl_jnum(top, "delta_auc");
    if (hi < SL_NEGLIGIBLE_AUC) {
        snprintf(out, size, "No %s matters on its own: every ablation moves AUC by less than %.2g (largest %.4f, %s).",
                 unit, SL_NEGLIGIBLE_AUC, d, name);
    } else if (n >= 3 && hi - lo <= fmax(0.001, 0.25 * hi)) {
        snprintf(out, size, "Uses every %s about equally: each ablation costs between %.4f and %.4f AUC.", unit, lo, hi);
    } else if (d < 0 && significant(top) && -d >= SL_DOMINANT_FACTOR * second) {
        snprintf(out, size, "Relies on one %s: %s (AUC change %.4f); no other %s moves AUC by more than %.4f.", unit,
                 name, d, unit, second);
    } else {
        snprintf(out, size, "Largest effect: %s (AUC change %.4f%s); the next largest moves AUC by %.4f.", name, d,
                 significant(top) ? "" : ", not significant", second);
    }
}

void sl_verdict_family(const cJSON *family, char *out, size_t size)
{
    if (!family) {
        out[0] = 0;
        return;
    }
    ablation_verdict(family, "family", out, size);
}

void sl_verdict_layer(const cJSON *layer, char *out, size_t size)
{
    if (!layer) {
        out[0] = 0;
        return;
    }
    ablation_verdict(layer, "layer", out, size);
}

void sl_verdict_component(const cJSON *component, char *out, size_t size)
{
    out[0] = 0;
    if (!component) return;
    double second;
    const cJSON *top = sl_largest_drop(cJSON_GetObjectItemCaseSensitive(component, "results"), &second);
    if (!top) return;
    double d = sl_jnum(top, "delta_auc");
    if (fabs(d) < SL_NEGLIGIBLE_AUC)
        snprintf(out, size, "No component matters on its own: every ablation moves AUC by less than %.2g.",
                 SL_NEGLIGIBLE_AUC);
    else
        snprintf(out, size, "Largest effect: %s of layer %.0f (AUC change %.4f); the next largest moves AUC by %.4f.",
                 sl_jstr(top, "component"), sl_jnum(top, "layer"), d, second);
}

/* Mamba: the family whose mean delta stands furthest above the layer's
 * family average, per layer. Transformer: the highest attention ratio. */
void sl_verdict_inspect(const cJSON *inspect, char *out, size_t size)
{
    out[0] = 0;
    if (!inspect) return;
    int mamba = !strncmp(sl_jstr(inspect, "arch"), "mamba", 5); /* mamba and mamba2 */
    const char *key = mamba ? "mean_delta" : "ratio";
    const cJSON *layer, *best_fam = NULL;
    double best = -INFINITY, best_layer = 0, best_rel = NAN;
    cJSON_ArrayForEach(layer, cJSON_GetObjectItemCaseSensitive(inspect, "layers"))
    {
        const cJSON *fam, *fams = cJSON_GetObjectItemCaseSensitive(layer, "families");
        double sum = 0;
        int n = 0;
        cJSON_ArrayForEach(fam, fams)
        {
            double v = sl_jnum(fam, key);
            if (isfinite(v)) sum += v, n++;
        }
        cJSON_ArrayForEach(fam, fams)
        {
            double v = sl_jnum(fam, key);
            double rel = mamba ? v / (sum / n) : v;
            if (isfinite(rel) && rel > best && sl_jstr(fam, "family")) {
                best = rel;
                best_fam = fam;
                best_layer = sl_jnum(layer, "layer");
                best_rel = rel;
            }
        }
    }
    if (!best_fam) return;
    if (mamba)
        snprintf(out, size,
                 "Mamba's step size delta is largest, relative to the other families, on '%s' at layer %.0f (%.2fx the "
                 "family average, mean gate %.3f): that is where the model writes most into its state.",
                 sl_jstr(best_fam, "family"), best_layer, best_rel, sl_jnum(best_fam, "mean_gate"));
    else
        snprintf(out, size, "Attention favours '%s' most at layer %.0f: %.2fx its share of the keys (%.3f of the mass).",
                 sl_jstr(best_fam, "family"), best_layer, best_rel, sl_jnum(best_fam, "attention_mass"));
}

void sl_verdict_attribute(const cJSON *attr, char *out, size_t size)
{
    out[0] = 0;
    if (!attr) return;
    const cJSON *fam, *top = NULL;
    cJSON_ArrayForEach(fam, cJSON_GetObjectItemCaseSensitive(attr, "families"))
    {
        double r = sl_jnum(fam, "ratio");
        if (isfinite(r) && (!top || r > sl_jnum(top, "ratio"))) top = fam;
    }
    if (!top) return;
    double r = sl_jnum(top, "ratio");
    int k;
    if (r >= SL_CONCENTRATED_RATIO)
        k = snprintf(out, size, "Attribution concentrates on '%s': %.2fx its share of tokens (%.1f%% of attribution).",
                     sl_jstr(top, "family"), r, 100 * sl_jnum(top, "attribution_share"));
    else
        k = snprintf(out, size, "Attribution is spread: no family gets more than %.2fx its share of tokens (highest '%s').",
                     r, sl_jstr(top, "family"));
    double rel = sl_jnum(cJSON_GetObjectItemCaseSensitive(attr, "completeness"), "mean_relative_error");
    if (isfinite(rel) && k > 0 && (size_t)k < size)
        snprintf(out + k, size - (size_t)k, " Integrated gradients' completeness error is %.1f%%%s.", 100 * rel,
                 rel > 0.1 ? ": raise --steps before trusting small differences" : "");
}

void sl_verdict_probe(const cJSON *probe, char *out, size_t size)
{
    out[0] = 0;
    if (!probe) return;
    const cJSON *row, *best = NULL;
    cJSON_ArrayForEach(row, cJSON_GetObjectItemCaseSensitive(probe, "layers"))
    {
        double a = sl_jnum(row, "test_accuracy");
        if (isfinite(a) && (!best || a > sl_jnum(best, "test_accuracy"))) best = row;
    }
    if (!best) return;
    double acc = sl_jnum(best, "test_accuracy"), maj = sl_jnum(best, "majority_baseline");
    double sel = sl_jnum(best, "selectivity");
    const char *target = sl_jstr(probe, "target");
    if (acc < maj + SL_PROBE_MARGIN) {
        snprintf(out, size,
                 "No layer encodes '%s' linearly beyond the majority baseline (best: layer %.0f, accuracy %.3f vs %.3f).",
                 target, sl_jnum(best, "layer"), acc, maj);
        return;
    }
    snprintf(out, size, "'%s' is linearly decodable; best at layer %.0f: accuracy %.3f vs majority %.3f (control %.3f, "
                        "selectivity %.3f)%s.",
             target, sl_jnum(best, "layer"), acc, maj, sl_jnum(best, "control_accuracy"), sel,
             sel < SL_LOW_SELECTIVITY ? ": low selectivity, so the probe may be reading token identity rather than the "
                                        "target"
                                      : "");
}

void sl_verdict_compare(const cJSON *cmp, char *out, size_t size)
{
    out[0] = 0;
    if (!cmp) return;
    snprintf(out, size,
             "The two models agree on %.1f%% of examples (logit r = %.3f); the ensemble reaches AUC %.3f against %.3f "
             "and %.3f; pooled representations have linear CKA %.3f.",
             100 * sl_jnum(cmp, "agreement"), sl_jnum(cmp, "pearson_r"), sl_jnum(cmp, "auc_ensemble"),
             sl_jnum(cmp, "auc_a"), sl_jnum(cmp, "auc_b"), sl_jnum(cJSON_GetObjectItemCaseSensitive(cmp, "cka"), "pooled"));
}

void sl_verdict_patch(const cJSON *patch, char *out, size_t size)
{
    out[0] = 0;
    if (!patch) return;
    const cJSON *row, *best = NULL;
    int cells = 0, half = 0;
    cJSON_ArrayForEach(row, cJSON_GetObjectItemCaseSensitive(patch, "results"))
    {
        double e = sl_jnum(row, "effect");
        if (!isfinite(e)) continue;
        cells++;
        half += e >= 0.5;
        if (!best || e > sl_jnum(best, "effect")) best = row;
    }
    if (!best) return;
    double e = sl_jnum(best, "effect");
    if (e < 0.1) {
        snprintf(out, size, "No single activation carries the answer: the largest patching effect is %.3f (%s, position %.0f).",
                 e, sl_jstr(best, "hook"), sl_jnum(best, "position"));
        return;
    }
    snprintf(out, size, "Patching %s at position %.0f restores %.0f%% of the logit difference over %.0f pairs; %d of %d "
                        "(hook, position) cells restore half or more.",
             sl_jstr(best, "hook"), sl_jnum(best, "position"), 100 * e, sl_jnum(best, "n_used"), half, cells);
}
