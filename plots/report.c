#include "plots/report.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "plots/figures.h"
#include "plots/gnuplot.h"
#include "plots/html.h"
#include "plots/page.h"
#include "plots/results.h"
#include "plots/verdict.h"

/* A table over an array of objects: each column a key and a kind: 's'
 * string, 'n' number, 'i' integer, 'c' a [lo, hi] interval. */
typedef struct {
    const char *heading, *key;
    char kind;
} column;

static void cell(FILE *f, const cJSON *row, const column *c)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(row, c->key);
    fputs(c->kind == 's' ? "<td>" : "<td class=\"num\">", f);
    if (c->kind == 's') sl_html_text(f, cJSON_IsString(v) ? v->valuestring : "");
    else if (c->kind == 'i' && cJSON_IsNumber(v)) fprintf(f, "%.0f", v->valuedouble);
    else if (c->kind == 'c' && cJSON_GetArraySize(v) == 2) {
        const cJSON *lo = cJSON_GetArrayItem(v, 0), *hi = cJSON_GetArrayItem(v, 1);
        fputc('[', f);
        sl_html_num(f, cJSON_IsNumber(lo) ? lo->valuedouble : NAN);
        fputs(", ", f);
        sl_html_num(f, cJSON_IsNumber(hi) ? hi->valuedouble : NAN);
        fputc(']', f);
    } else if (c->kind == 'n' || c->kind == 'i') sl_html_num(f, cJSON_IsNumber(v) ? v->valuedouble : NAN);
    else fputs("&ndash;", f);
    fputs("</td>", f);
}

static void table(FILE *f, const cJSON *const *rows, int n, const column *cols, int ncols)
{
    fputs("<table><tr>", f);
    for (int c = 0; c < ncols; c++) {
        fputs("<th>", f);
        sl_html_text(f, cols[c].heading);
        fputs("</th>", f);
    }
    fputs("</tr>\n", f);
    for (int i = 0; i < n; i++) {
        fputs("<tr>", f);
        for (int c = 0; c < ncols; c++) cell(f, rows[i], &cols[c]);
        fputs("</tr>\n", f);
    }
    fputs("</table>\n", f);
}

/* An array's elements, optionally sorted ascending by a number field. */
static const char *sort_key;
static int by_key(const void *a, const void *b)
{
    double x = sl_jnum(*(const cJSON *const *)a, sort_key), y = sl_jnum(*(const cJSON *const *)b, sort_key);
    if (!isfinite(x)) x = INFINITY;
    if (!isfinite(y)) y = INFINITY;
    return (x > y) - (x < y);
}

static int rows_of(const cJSON *arr, const char *key, const cJSON ***out)
{
    int n = cJSON_GetArraySize(arr), i = 0;
    const cJSON *row;
    *out = malloc((size_t)(n ? n : 1) * sizeof **out);
    if (!*out) return 0;
    cJSON_ArrayForEach(row, arr)(*out)[i++] = row;
    if (key) {
        sort_key = key;
        qsort(*out, (size_t)n, sizeof **out, by_key);
    }
    return n;
}

static void array_table(FILE *f, const cJSON *arr, const char *sort, const column *cols, int ncols)
{
    const cJSON **rows;
    int n = rows_of(arr, sort, &rows);
    if (rows) table(f, rows, n, cols, ncols);
    free(rows);
}

typedef struct {
    const char *dir;
    sl_results r;
    sl_page page;
    FILE *f;                     /* page.f */
    char verdicts[R_COUNT][1024]; /* one per result, "" where none */
} report;

static FILE *fig_open(report *rp) { return sl_page_figure(&rp->page); }
static int fig_close(report *rp, int drawn, const char *name, const char *caption, int w, int h, sl_error *err)
{
    return sl_page_figure_done(&rp->page, drawn, name, caption, w, h, err);
}
static void verdict(report *rp, const char *text) { sl_page_verdict(&rp->page, text); }
static void section(report *rp, const char *id, const char *heading, const char *what)
{
    sl_page_section(&rp->page, id, heading, what);
}

static const cJSON *get(const cJSON *o, const char *k) { return cJSON_GetObjectItemCaseSensitive(o, k); }

/* Each verdict is computed once: the glance list and the sections show it. */
static void compute_verdicts(report *rp)
{
    const cJSON *const *j = (const cJSON *const *)rp->r.json;
    char(*v)[1024] = rp->verdicts;
    sl_verdict_eval(j[R_EVAL], j[R_MANIFEST], v[R_EVAL], sizeof v[R_EVAL]);
    sl_verdict_baseline(j[R_BASELINE], j[R_EVAL], v[R_BASELINE], sizeof v[R_BASELINE]);
    sl_verdict_family(j[R_FAMILY], v[R_FAMILY], sizeof v[R_FAMILY]);
    sl_verdict_layer(j[R_LAYER], v[R_LAYER], sizeof v[R_LAYER]);
    sl_verdict_component(j[R_COMPONENT], v[R_COMPONENT], sizeof v[R_COMPONENT]);
    sl_verdict_reverse(j[R_REVERSE], v[R_REVERSE], sizeof v[R_REVERSE]);
    sl_verdict_inspect(j[R_INSPECT], v[R_INSPECT], sizeof v[R_INSPECT]);
    sl_verdict_attribute(j[R_ATTRIBUTE], v[R_ATTRIBUTE], sizeof v[R_ATTRIBUTE]);
    sl_verdict_probe(j[R_PROBE], v[R_PROBE], sizeof v[R_PROBE]);
    sl_verdict_patch(j[R_PATCH], v[R_PATCH], sizeof v[R_PATCH]);
    sl_verdict_compare(j[R_COMPARE], v[R_COMPARE], sizeof v[R_COMPARE]);
}

static void glance(report *rp)
{
    static const struct {
        int kind;
        const char *id, *label;
    } ITEMS[] = {
        {R_EVAL, "performance", "Performance"},   {R_BASELINE, "baselines", "Baselines"},
        {R_FAMILY, "family", "Families"},         {R_LAYER, "layer", "Layers"},
        {R_COMPONENT, "component", "Components"}, {R_REVERSE, "reversal", "Order"},
        {R_INSPECT, "inspect", "Inside"},         {R_ATTRIBUTE, "attribution", "Attribution"},
        {R_PROBE, "probes", "Probes"},            {R_PATCH, "patching", "Patching"},
        {R_COMPARE, "compare", "Comparison"},
    };
    fputs("<section id=\"glance\"><h2>At a glance</h2>\n<ul class=\"glance\">\n", rp->f);
    for (size_t i = 0; i < sizeof ITEMS / sizeof *ITEMS; i++) {
        const char *v = rp->verdicts[ITEMS[i].kind];
        if (!v[0]) continue;
        fprintf(rp->f, "<li><a href=\"#%s\">%s</a>: ", ITEMS[i].id, ITEMS[i].label);
        sl_html_text(rp->f, v);
        fputs("</li>\n", rp->f);
    }
    fputs("</ul></section>\n", rp->f);
}

static void model_and_data(report *rp)
{
    const cJSON *m = rp->r.json[R_MANIFEST];
    if (!m) return;
    if (get(m, "config")) {
        section(rp, "model", "Model", "The model's config.json as loaded, and where it came from.");
        fputs("<p>", rp->f);
        sl_html_printf(rp->f, "%s, %.0f parameters", sl_jstr(m, "model") ? sl_jstr(m, "model") : "",
                       sl_jnum(m, "parameters"));
        fputs("</p>\n", rp->f);
        sl_html_object(rp->f, get(m, "config"));
        fputs("</section>\n", rp->f);
    }
    if (get(m, "data_summary")) {
        section(rp, "data", "Data",
                "The dataset's size and label balance, its token families, and the attributes stored in the file (a "
                "gym file records its planted truth there).");
        sl_html_object(rp->f, get(m, "data_summary"));
        fputs("</section>\n", rp->f);
    }
}

static int performance(report *rp, sl_error *err)
{
    (void)err;
    const cJSON *e = rp->r.json[R_EVAL];
    if (!e) return SL_OK;
    section(rp, "performance", "Performance", "How well the model separates the two labels on this data (logit > 0 predicts 1).");
    verdict(rp, rp->verdicts[R_EVAL]);
    /* analyze --verify: said once, where the numbers it vouches for are */
    const cJSON *v = get(rp->r.json[R_MANIFEST], "verify");
    if (cJSON_IsObject(v) && sl_jnum(v, "n") >= 1) {
        fputs("<p class=\"verify\">", rp->f);
        sl_html_printf(rp->f, "seqlens's logits %s your PyTorch logits on %.0f examples to max relative error %.3g (tolerance %g).",
                       cJSON_IsTrue(get(v, "ok")) ? "match" : "do not match", sl_jnum(v, "n"),
                       sl_jnum(v, "max_rel_error"), sl_jnum(v, "tolerance"));
        fputs("</p>\n", rp->f);
    }
    sl_html_object(rp->f, e);
    fputs("</section>\n", rp->f);
    return SL_OK;
}

static int baselines(report *rp, sl_error *err)
{
    const cJSON *b = rp->r.json[R_BASELINE];
    if (!b) return SL_OK;
    section(rp, "baselines", "Order-free baselines",
            "Logistic regression on token counts (bag of tokens) and on family counts (bag of families): what a model "
            "that ignores order can reach on the same data.");
    verdict(rp, rp->verdicts[R_BASELINE]);
    int rc = fig_close(rp, sl_fig_baselines(fig_open(rp), b, rp->r.json[R_EVAL], rp->r.json[R_MANIFEST]), "baselines",
                       "Test AUC of the model and of the baselines; the dashed line is chance.", 720, 400, err);
    fputs("<table><tr><th>baseline</th><th>test AUC</th><th>test accuracy</th><th>C</th></tr>\n", rp->f);
    const char *names[2] = {"bag_of_tokens", "bag_of_families"};
    for (int i = 0; i < 2; i++) {
        const cJSON *o = get(b, names[i]);
        fprintf(rp->f, "<tr><td>%s</td><td class=\"num\">", names[i]);
        sl_html_num(rp->f, sl_jnum(o, "test_auc"));
        fputs("</td><td class=\"num\">", rp->f);
        sl_html_num(rp->f, sl_jnum(o, "test_accuracy"));
        fputs("</td><td class=\"num\">", rp->f);
        sl_html_num(rp->f, sl_jnum(o, "C"));
        fputs("</td></tr>\n", rp->f);
    }
    fputs("</table>\n</section>\n", rp->f);
    return rc;
}

static int ablations(report *rp, sl_error *err)
{
    char t[200];
    int rc = SL_OK;
    const cJSON *fam = rp->r.json[R_FAMILY], *lay = rp->r.json[R_LAYER], *comp = rp->r.json[R_COMPONENT];
    if (fam) {
        section(rp, "family", "Family ablation",
                "Each token family's embeddings replaced (see the mode) at every position of that family, and the "
                "change in AUC. Bars below zero are AUC the model loses without the family.");
        verdict(rp, rp->verdicts[R_FAMILY]);
        snprintf(t, sizeof t, "Family ablation, mode '%s': AUC change from %.4f", sl_jstr(fam, "mode"),
                 sl_jnum(fam, "baseline_auc"));
        rc = fig_close(rp, sl_fig_ablation(fig_open(rp), fam, "family", t), "ablate-family",
                       "AUC change per ablated family, largest drop first, with paired-bootstrap 95% intervals.", 800,
                       450, err);
        static const column COLS[] = {{"family", "family", 's'},       {"AUC", "auc", 'n'},
                                      {"AUC change", "delta_auc", 'n'}, {"95% CI", "ci95", 'c'},
                                      {"p (DeLong)", "p_value", 'n'},   {"fraction of tokens", "masked_fraction", 'n'}};
        array_table(rp->f, get(fam, "results"), "delta_auc", COLS, 6);
        fputs("</section>\n", rp->f);
    }
    if (lay && !rc) {
        section(rp, "layer", "Layer ablation",
                "Each block's write to the residual stream removed (skip) or replaced by its mean (mean), and the change "
                "in AUC.");
        verdict(rp, rp->verdicts[R_LAYER]);
        snprintf(t, sizeof t, "Layer ablation, mode '%s': AUC change from %.4f", sl_jstr(lay, "mode"),
                 sl_jnum(lay, "baseline_auc"));
        rc = fig_close(rp, sl_fig_ablation(fig_open(rp), lay, "layer", t), "ablate-layer",
                       "AUC change per ablated layer, largest drop first, with paired-bootstrap 95% intervals.", 720, 400,
                       err);
        static const column COLS[] = {{"layer", "layer", 'i'},       {"AUC", "auc", 'n'},   {"AUC change", "delta_auc", 'n'},
                                      {"95% CI", "ci95", 'c'},       {"p (DeLong)", "p_value", 'n'}};
        array_table(rp->f, get(lay, "results"), NULL, COLS, 5);
        fputs("</section>\n", rp->f);
    }
    if (comp && !rc) {
        section(rp, "component", "Component ablation",
                "One component of one layer removed: Mamba's convolution, SSM path or gate; a Transformer's attention "
                "or MLP output.");
        verdict(rp, rp->verdicts[R_COMPONENT]);
        rc = fig_close(rp, sl_fig_ablation(fig_open(rp), comp, "component", "Component ablation: AUC change"),
                       "ablate-component", "AUC change per ablated component.", 800, 450, err);
        static const column COLS[] = {{"component", "component", 's'}, {"layer", "layer", 'i'}, {"AUC", "auc", 'n'},
                                      {"AUC change", "delta_auc", 'n'}, {"95% CI", "ci95", 'c'}};
        array_table(rp->f, get(comp, "results"), NULL, COLS, 5);
        fputs("</section>\n", rp->f);
    }
    return rc;
}

static int reversal(report *rp, sl_error *err)
{
    const cJSON *r = rp->r.json[R_REVERSE];
    if (!r) return SL_OK;
    section(rp, "reversal", "Order: reversal test",
            "Every sequence's valid part reversed, and (as a control) shuffled with a fixed seed. A model that reads a "
            "bag of tokens gives the same logit either way (r = 1).");
    verdict(rp, rp->verdicts[R_REVERSE]);
    int rc = fig_close(rp, sl_fig_reverse(fig_open(rp), &rp->r), "reverse",
                       "Each point is one example: its logit as given (x) and reversed or shuffled (y).", 620, 560, err);
    sl_html_object(rp->f, r);
    fputs("</section>\n", rp->f);
    return rc;
}

/* A result computed on a sample (--sample) says so above its table. */
static void sample_note(report *rp, const cJSON *result, const char *more)
{
    double of = sl_jnum(result, "sampled_from");
    if (of > 0) fprintf(rp->f, "<p>On a seeded sample of %.0f of the %.0f examples%s.</p>\n", sl_jnum(result, "n"), of, more);
}

static int inspection(report *rp, sl_error *err)
{
    const cJSON *in = rp->r.json[R_INSPECT], *layer;
    if (!in) return SL_OK;
    int mamba = !strcmp(sl_jstr(in, "arch"), "mamba"), rc;
    section(rp, "inspect", mamba ? "Inside Mamba: step size and gate per token family" : "Inside attention: where it looks",
            mamba ? "Means over every valid position of each family: delta (how far a token moves the state), the SiLU "
                    "gate, the write |delta x| times the norm of B, and the retention exp(delta A) with its memory length."
                  : "The fraction of attention valid queries put on each family's keys, against the family's share of "
                    "keys: a ratio above 1 means attention seeks the family out.");
    verdict(rp, rp->verdicts[R_INSPECT]);
    sample_note(rp, in, "");
    if (mamba) {
        rc = fig_close(rp, sl_fig_inspect(fig_open(rp), in, "mean_delta", "Mean step size delta per layer and family"),
                       "inspect-delta", "Mean delta (over channels) per layer and family.", 760, 360, err);
        if (!rc)
            rc = fig_close(rp, sl_fig_inspect(fig_open(rp), in, "mean_gate", "Mean gate SiLU(z) per layer and family"),
                           "inspect-gate", "Mean gate (over channels) per layer and family.", 760, 360, err);
    } else {
        rc = fig_close(rp,
                       sl_fig_inspect(fig_open(rp), in, "attention_mass", "Attention mass per layer and family"),
                       "inspect-attention-mass",
                       "The fraction of all attention that lands on each family's keys, per layer.", 760, 360, err);
        if (!rc)
            rc = fig_close(rp,
                           sl_fig_inspect(fig_open(rp), in, "ratio", "Attention mass / token share per layer and family"),
                           "inspect-attention", "Attention ratio per layer and family; 1 means attention in proportion.",
                           760, 360, err);
    }
    cJSON_ArrayForEach(layer, get(in, "layers"))
    {
        fprintf(rp->f, "<h3>Layer %.0f</h3>\n", sl_jnum(layer, "layer"));
        static const column MAMBA[] = {{"family", "family", 's'},         {"positions", "positions", 'i'},
                                       {"mean delta", "mean_delta", 'n'},   {"mean gate", "mean_gate", 'n'},
                                       {"mean write", "mean_write", 'n'},   {"retention", "mean_retention", 'n'},
                                       {"memory (tokens)", "memory_length", 'n'}};
        static const column ATTN[] = {{"family", "family", 's'},
                                      {"attention mass", "attention_mass", 'n'},
                                      {"token share", "token_share", 'n'},
                                      {"ratio", "ratio", 'n'}};
        static const column HEADS[] = {{"head", "head", 'i'},
                                       {"entropy (nats)", "entropy", 'n'},
                                       {"mean distance", "mean_distance", 'n'}};
        if (mamba) array_table(rp->f, get(layer, "families"), NULL, MAMBA, 7);
        else {
            array_table(rp->f, get(layer, "families"), NULL, ATTN, 4);
            if (get(layer, "heads")) array_table(rp->f, get(layer, "heads"), NULL, HEADS, 3);
        }
    }
    fputs("</section>\n", rp->f);
    return rc;
}

static int attribution(report *rp, sl_error *err)
{
    const cJSON *a = rp->r.json[R_ATTRIBUTE];
    if (!a) return SL_OK;
    section(rp, "attribution", "Attribution",
            "How much of the logit each token accounts for (gradient x input, or integrated gradients from a baseline "
            "input), summed per family and compared with the family's share of tokens.");
    verdict(rp, rp->verdicts[R_ATTRIBUTE]);
    int rc = fig_close(rp, sl_fig_attribution(fig_open(rp), a), "attribution",
                       "Attribution share over token share per family; above the dashed line the model leans on it.",
                       760, 400, err);
    if (!rc)
        rc = fig_close(rp, sl_fig_profile(fig_open(rp), a), "attribution-profile",
                       "Where in the sequence the attribution lies, by distance from the last valid token.", 760, 400,
                       err);
    static const column COLS[] = {{"family", "family", 's'},
                                  {"attribution share", "attribution_share", 'n'},
                                  {"95% CI", "attribution_share_ci95", 'c'},
                                  {"token share", "token_share", 'n'},
                                  {"ratio", "ratio", 'n'},
                                  {"95% CI", "ratio_ci95", 'c'}};
    sample_note(rp, a, "; the intervals (bootstrap over examples) show the sample's error");
    array_table(rp->f, get(a, "families"), NULL, COLS, 6);
    if (get(a, "completeness")) {
        fputs("<h3>Completeness (integrated gradients)</h3>\n", rp->f);
        sl_html_object(rp->f, get(a, "completeness"));
    }
    fputs("</section>\n", rp->f);
    return rc;
}

static int probes(report *rp, sl_error *err)
{
    const cJSON *p = rp->r.json[R_PROBE];
    if (!p) return SL_OK;
    section(rp, "probes", "Linear probes",
            "L2 logistic regression (liblinear) on each layer's residual stream, C chosen by cross-validation on the "
            "train split. The control task gives each token type a random label: a probe that is good at it too reads "
            "token identity, not the target (selectivity = accuracy - control accuracy).");
    verdict(rp, rp->verdicts[R_PROBE]);
    int rc = fig_close(rp, sl_fig_probe(fig_open(rp), p), "probe", "Probe test accuracy per layer.", 720, 400, err);
    static const column COLS[] = {{"layer", "layer", 'i'},
                                  {"test accuracy", "test_accuracy", 'n'},
                                  {"balanced accuracy", "balanced_accuracy", 'n'},
                                  {"test AUC", "test_auc", 'n'},
                                  {"majority baseline", "majority_baseline", 'n'},
                                  {"control accuracy", "control_accuracy", 'n'},
                                  {"selectivity", "selectivity", 'n'},
                                  {"C", "C", 'n'}};
    array_table(rp->f, get(p, "layers"), NULL, COLS, 8);
    fputs("</section>\n", rp->f);
    return rc;
}

static int patching(report *rp, sl_error *err)
{
    const cJSON *p = rp->r.json[R_PATCH];
    if (!p) return SL_OK;
    section(rp, "patching", "Activation patching",
            "Interchange interventions: the base example run with one hook's activation at one position taken from a "
            "source example. The effect is the fraction of the logit difference restored, (patched - base) / (source - "
            "base): 1 means that activation carries the whole difference.");
    verdict(rp, rp->verdicts[R_PATCH]);
    sample_note(rp, p, " (the pairs are drawn from it)");
    int rc = fig_close(rp, sl_fig_patch(fig_open(rp), p), "patch", "Patching effect per hook and position.", 860, 480,
                       err);
    static const column COLS[] = {{"hook", "hook", 's'},     {"position", "position", 'i'}, {"effect", "effect", 'n'},
                                  {"95% CI", "ci95", 'c'},   {"pairs used", "n_used", 'i'}, {"skipped", "n_skipped", 'i'}};
    array_table(rp->f, get(p, "results"), NULL, COLS, 6);
    fputs("</section>\n", rp->f);
    return rc;
}

static int comparison(report *rp, sl_error *err)
{
    const cJSON *c = rp->r.json[R_COMPARE];
    if (!c) return SL_OK;
    section(rp, "compare", "Two models compared",
            "Agreement of the two models' predictions, the examples both get wrong, the AUC of their averaged "
            "probabilities, and linear CKA between their layers.");
    verdict(rp, rp->verdicts[R_COMPARE]);
    int rc = fig_close(rp, sl_fig_cka(fig_open(rp), c), "cka", "Linear CKA between every pair of layers.", 600, 500, err);
    fputs("<table>", rp->f);
    static const char *const KEYS[] = {"n", "auc_a", "auc_b", "pearson_r", "spearman_rho", "agreement", "error_overlap",
                                       "auc_ensemble"};
    for (size_t i = 0; i < sizeof KEYS / sizeof *KEYS; i++) {
        fprintf(rp->f, "<tr><th>%s</th><td class=\"num\">", KEYS[i]);
        sl_html_num(rp->f, sl_jnum(c, KEYS[i]));
        fputs("</td></tr>\n", rp->f);
    }
    fputs("</table>\n</section>\n", rp->f);
    return rc;
}

/* Stages analyze did not run on this data (a dataset without /families):
 * said in a sentence, so that a missing section is not taken for a
 * failure or an oversight. */
static void skipped(report *rp)
{
    const cJSON *st;
    int n = 0;
    cJSON_ArrayForEach(st, get(rp->r.json[R_MANIFEST], "stages"))
    {
        const char *status = sl_jstr(st, "status");
        if (!status || strcmp(status, "skipped")) continue;
        if (!n++) section(rp, "skipped", "Not run on this data", "Analyses analyze skipped, and why.");
        fputs("<p>", rp->f);
        sl_html_printf(rp->f, "%s was skipped: %s.", sl_jstr(st, "name") ? sl_jstr(st, "name") : "?",
                       sl_jstr(st, "reason") ? sl_jstr(st, "reason") : "no reason recorded");
        fputs("</p>\n", rp->f);
    }
    if (n) fputs("</section>\n", rp->f);
}

static void provenance(report *rp)
{
    const cJSON *m = rp->r.json[R_MANIFEST], *st;
    fputs("<section id=\"provenance\"><h2>How this report was made</h2>\n", rp->f);
    if (get(m, "stages")) {
        fputs("<table><tr><th>stage</th><th>command</th><th>seconds</th><th>result</th></tr>\n", rp->f);
        cJSON_ArrayForEach(st, get(m, "stages"))
        {
            fputs("<tr><td>", rp->f);
            sl_html_text(rp->f, sl_jstr(st, "name"));
            fputs("</td><td><code>", rp->f);
            sl_html_text(rp->f, sl_jstr(st, "command"));
            fputs("</code></td><td class=\"num\">", rp->f);
            sl_html_num(rp->f, sl_jnum(st, "seconds"));
            fputs("</td><td>", rp->f);
            sl_html_text(rp->f, sl_jstr(st, "status"));
            fputs("</td></tr>\n", rp->f);
        }
        fputs("</table>\n", rp->f);
    }
    if (get(m, "versions")) {
        fputs("<h3>Versions</h3>\n", rp->f);
        sl_html_object(rp->f, get(m, "versions"));
    }
    fputs("<h3>Result files</h3>\n<ul>\n", rp->f);
    for (int k = 0; k < R_COUNT; k++) {
        fprintf(rp->f, "<li><code>%s</code>%s</li>\n", SL_RESULT_FILES[k], rp->r.json[k] ? "" : " &mdash; not present");
    }
    fputs("</ul></section>\n", rp->f);
}

static int write_page(report *rp, sl_error *err)
{
    compute_verdicts(rp);
    glance(rp);
    model_and_data(rp);
    int rc = performance(rp, err);
    if (!rc) rc = baselines(rp, err);
    if (!rc) rc = ablations(rp, err);
    if (!rc) rc = reversal(rp, err);
    if (!rc) rc = inspection(rp, err);
    if (!rc) rc = attribution(rp, err);
    if (!rc) rc = probes(rp, err);
    if (!rc) rc = patching(rp, err);
    if (!rc) rc = comparison(rp, err);
    skipped(rp);
    provenance(rp);
    return rc;
}

int sl_report_build(const char *dir, sl_report_info *info, sl_error *err)
{
    report rp = {.dir = dir};
    memset(info, 0, sizeof *info);
    struct stat st;
    if (stat(dir, &st) || !S_ISDIR(st.st_mode))
        return sl_fail(err, SL_EINPUT, "%s: not a directory of seqlens results", dir);
    int rc = sl_results_load(&rp.r, dir, err);
    if (rc) return rc;
    int any = 0;
    for (int k = 0; k < R_COUNT; k++) any |= rp.r.json[k] != NULL;
    if (!any) {
        sl_results_free(&rp.r);
        return sl_fail(err, SL_EINPUT, "%s: no seqlens results here (expected eval.json, ablate-family.json, ...; see "
                                       "seqlens report --help)",
                       dir);
    }
    const cJSON *m = rp.r.json[R_MANIFEST];
    char sub[1024];
    if (m)
        snprintf(sub, sizeof sub, "%s on %s", sl_jstr(m, "model") ? sl_jstr(m, "model") : "?",
                 sl_jstr(m, "data") ? sl_jstr(m, "data") : "?");
    else snprintf(sub, sizeof sub, "results in %s", dir);
    rc = sl_page_open(&rp.page, dir, "report.html", "seqlens report", sub, info, err);
    if (!rc) {
        rp.f = rp.page.f;
        rc = sl_page_close(&rp.page, write_page(&rp, err), err);
    }
    sl_results_free(&rp.r);
    return rc;
}
