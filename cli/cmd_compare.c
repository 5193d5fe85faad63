#include <math.h>
#include <stdio.h>

#include "cli/commands.h"
#include "cli/registry.h"
#include "core/jsonout.h"
#include "plots/figures.h"
#include "plots/html.h"
#include "plots/results.h"
#include "plots/section.h"
#include "probes/compare.h"

static const char USAGE[] =
    "usage: seqlens compare MODEL_A MODEL_B DATA [-o out.json] [--examples A:B] [--threads N] [--batch B]\n"
    "  JSON: auc_a, auc_b, pearson_r and spearman_rho of the logits, agreement (same predicted class,\n"
    "  logit > 0), error_overlap (examples both get wrong over examples either gets wrong),\n"
    "  auc_ensemble (AUC of the mean of the two sigmoid probabilities), and cka {pooled, layers\n"
    "  [[A-layer x B-layer linear CKA of resid_post averaged over valid positions]]}.\n";

/* DATA's tokens mean one thing to both models only when they share a
 * vocabulary: said up front, naming both, instead of DATA failing to open
 * for one of them. */
static int same_vocabulary(const char *dir_a, const char *dir_b, sl_error *err)
{
    sl_config ca, cb;
    char path[4200];
    sl_error alone = {0};
    /* a config.json that leaves keys to the weights (design.md 2.1) cannot
     * tell alone: loading the model says what is wrong, if anything */
    snprintf(path, sizeof path, "%s/config.json", dir_a);
    if (sl_config_load(&ca, path, &alone)) return SL_OK;
    snprintf(path, sizeof path, "%s/config.json", dir_b);
    if (sl_config_load(&cb, path, &alone)) return SL_OK;
    if (ca.vocab_size != cb.vocab_size)
        return sl_fail(err, SL_EINPUT,
                       "compare: model A (%s) has a vocabulary of %d tokens and model B (%s) one of %d: the two "
                       "models must read the same tokens",
                       dir_a, ca.vocab_size, dir_b, cb.vocab_size);
    return SL_OK;
}

static int cmd_compare(int argc, char **argv)
{
    sl_args a;
    sl_error err = {0};
    if (sl_parse_args(&a, "compare", argc, argv, "-o --examples --threads --batch --device", &err)) return sl_report(&err);
    if (a.help || a.n_pos != 3) return sl_usage(USAGE, a.help);
    sl_session sa, sb = {.data = {.file = -1, .tokens = -1, .of_position = -1}}; /* closable unopened */
    sl_compare_result r = {0};
    int rc = same_vocabulary(a.pos[0], a.pos[1], &err);
    if (!rc) rc = sl_session_open(&sa, &a, a.pos[0], a.pos[2], &err);
    else sa = (sl_session){.data = {.file = -1, .tokens = -1, .of_position = -1}};
    if (!rc) rc = sl_session_open(&sb, &a, a.pos[1], a.pos[2], &err);
    if (!rc) rc = sl_session_need_both_classes(&sa, &err);
    if (!rc) rc = sl_compare(&sa.model, &sa.data, &sb.model, &sb.data, &sa.run, &sb.run, &r, &err);
    if (!rc) {
        cJSON *j = cJSON_CreateObject(), *cka = cJSON_CreateObject(), *grid = cJSON_CreateArray();
        cJSON_AddNumberToObject(j, "n", (double)r.n);
        cJSON_AddItemToObject(j, "auc_a", sl_json_number(r.auc_a));
        cJSON_AddItemToObject(j, "auc_b", sl_json_number(r.auc_b));
        cJSON_AddItemToObject(j, "pearson_r", sl_json_number(r.pearson_r));
        cJSON_AddItemToObject(j, "spearman_rho", sl_json_number(r.spearman_rho));
        cJSON_AddItemToObject(j, "agreement", sl_json_number(r.agreement));
        cJSON_AddItemToObject(j, "error_overlap", sl_json_number(r.error_overlap));
        cJSON_AddItemToObject(j, "auc_ensemble", sl_json_number(r.auc_ensemble));
        cJSON_AddItemToObject(cka, "pooled", sl_json_number(r.cka_pooled));
        for (int i = 0; i < r.layers_a; i++) {
            cJSON *row = cJSON_CreateArray();
            for (int k = 0; k < r.layers_b; k++) cJSON_AddItemToArray(row, sl_json_number(r.cka_layers[i * r.layers_b + k]));
            cJSON_AddItemToArray(grid, row);
        }
        cJSON_AddItemToObject(cka, "layers", grid);
        cJSON_AddItemToObject(j, "cka", cka);
        rc = sl_json_write(j, a.out, &err);
        cJSON_Delete(j);
        if (!rc && a.out)
            printf("AUC %.4f vs %.4f, ensemble %.4f; logits r %.4f, agreement %.4f, error overlap %.4f, pooled CKA %.4f -> %s\n",
                   r.auc_a, r.auc_b, r.auc_ensemble, r.pearson_r, r.agreement, r.error_overlap, r.cka_pooled, a.out);
    }
    sl_compare_free(&r);
    sl_session_close(&sa);
    sl_session_close(&sb);
    return rc ? sl_report(&err) : 0;
}

/* Agreement, logit correlation, the ensemble and pooled CKA: no threshold. */
static void verdict(const sl_results *r, const cJSON *cmp, char *out, size_t size)
{
    (void)r;
    snprintf(out, size,
             "The two models agree on %.1f%% of examples (logit r = %.3f); the ensemble reaches AUC %.3f against %.3f "
             "and %.3f; pooled representations have linear CKA %.3f.",
             100 * sl_jnum(cmp, "agreement"), sl_jnum(cmp, "pearson_r"), sl_jnum(cmp, "auc_ensemble"),
             sl_jnum(cmp, "auc_a"), sl_jnum(cmp, "auc_b"), sl_jnum(cJSON_GetObjectItemCaseSensitive(cmp, "cka"), "pooled"));
}

/* Layer x layer linear CKA of the two models. */
static int figure(FILE *gp, const cJSON *compare)
{
    const cJSON *layers = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(compare, "cka"), "layers");
    int na = cJSON_GetArraySize(layers), nb = na ? cJSON_GetArraySize(cJSON_GetArrayItem(layers, 0)) : 0;
    if (na == 0 || nb == 0) return 0;
    na = na > SL_FIG_MAX_ITEMS ? SL_FIG_MAX_ITEMS : na;
    nb = nb > SL_FIG_MAX_ITEMS ? SL_FIG_MAX_ITEMS : nb;
    sl_gp_title(gp, "Linear CKA of resid_post, model A layer x model B layer");
    fprintf(gp, "set xlabel 'model B layer'\nset ylabel 'model A layer'\nset xtics 1\nset ytics 1\n"
                "set xrange [-0.5:%d.5]\nset yrange [-0.5:%d.5]\nset cbrange [0:1]\n"
                "set palette defined (0 '#ffffff', 1 '#9ecae1', 2 '#3182bd')\n$c << EOD\n",
            nb - 1, na - 1);
    /* row by row, each walked once (cJSON_GetArrayItem walks from the start:
     * a 2000 x 2000 grid took 40 s) */
    const cJSON *row = layers->child;
    for (int i = 0; i < na; i++, row = row ? row->next : NULL) {
        const cJSON *v = row ? row->child : NULL;
        for (int j = 0; j < nb; j++, v = v ? v->next : NULL) {
            fprintf(gp, "%d %d", j, i);
            sl_gp_num(gp, cJSON_IsNumber(v) ? v->valuedouble : NAN);
            fputc('\n', gp);
        }
    }
    /* each cell's value written while they stay readable */
    fprintf(gp, "EOD\nplot $c using 1:2:(0.5):(0.5):3 with boxxyerror fc palette fs solid 1 notitle%s\n",
            na * nb <= 1024 ? ", \\\n     $c using 1:2:(sprintf('%.2f', $3)) with labels notitle" : "");
    return 1;
}

static int section(sl_report_ctx *rp, const cJSON *c, const char *sentence, sl_error *err)
{
    sl_page_section(&rp->page, "compare", "Two models compared",
            "Agreement of the two models' predictions, the examples both get wrong, the AUC of their averaged "
            "probabilities, and linear CKA between their layers.");
    sl_page_verdict(&rp->page, sentence);
    int rc = sl_page_figure_done(&rp->page, figure(sl_page_figure(&rp->page), c), "cka", "Linear CKA between every pair of layers.", 600, 500, err);
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

/* not one of analyze's stages: its result joins a report when put in DIR */
static const sl_section SECTIONS[] = {
    {.file = "compare.json", .file_order = 100,
     .top = "n:n auc_a:N auc_b:N pearson_r:N agreement:N error_overlap:N auc_ensemble:N cka:o", .order = 110,
     .id = "compare", .label = "Comparison", .verdict = verdict, .render = section},
};

static sl_command compare_command = {
    .name = "compare",
    .summary = "  compare MODEL_A MODEL_B DATA  agreement, error overlap, ensemble AUC, linear CKA\n",
    .order = 100,
    .flags = SL_CMD_SHARDED,
    .run = cmd_compare,
    .sections = SECTIONS,
    .n_sections = 1,
};
SL_REGISTER_COMMAND(compare_command)
