#include <stdio.h>

#include "cli/commands.h"
#include "core/jsonout.h"
#include "probes/baseline.h"

static const char USAGE[] =
    "usage: seqlens baseline DATA [-o out.json] [--seed S] [--examples A:B]\n"
    "  Logistic regression (liblinear, L2, C by 5-fold cross-validation on the training split) on\n"
    "  the counts of each token and of each family in every sequence: the AUC a model that ignores\n"
    "  order can reach. The split is /split where DATA has one, else a seeded 70/30 one.\n"
    "  JSON: n_train, n_test, bag_of_tokens and bag_of_families {test_auc, test_accuracy, C}.\n";

static cJSON *result(const sl_logreg_result *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "test_auc", sl_json_number(r->test_auc));
    cJSON_AddItemToObject(o, "test_accuracy", sl_json_number(r->test_accuracy));
    cJSON_AddItemToObject(o, "C", sl_json_number(r->C));
    return o;
}

int cmd_baseline(int argc, char **argv)
{
    sl_args a;
    sl_error err = {0};
    if (sl_parse_args(&a, "baseline", argc, argv, "-o --seed --examples", &err)) return sl_report(&err);
    if (a.help || a.n_pos != 1) return sl_usage(USAGE, a.help);
    sl_dataset ds = {.file = -1, .tokens = -1, .of_position = -1};
    int vocab = 0;
    int rc = sl_dataset_vocab(a.pos[0], &vocab, &err);
    if (!rc) rc = sl_dataset_open(&ds, a.pos[0], vocab, 0, &err);
    long end = a.ex_end < 0 ? ds.n : a.ex_end;
    if (!rc && (a.ex_first >= ds.n || end > ds.n))
        rc = sl_fail(&err, SL_EINPUT, "%s: --examples %ld:%ld is outside the %ld examples", a.pos[0], a.ex_first, end, ds.n);
    sl_baseline_result r;
    if (!rc) rc = sl_baseline(&ds, a.ex_first, end - a.ex_first, a.seed, &r, &err);
    if (!rc) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddNumberToObject(j, "n_train", (double)r.n_train);
        cJSON_AddNumberToObject(j, "n_test", (double)r.n_test);
        cJSON_AddItemToObject(j, "bag_of_tokens", result(&r.tokens));
        cJSON_AddItemToObject(j, "bag_of_families", result(&r.families));
        rc = sl_json_write(j, a.out, &err);
        cJSON_Delete(j);
        if (!rc && a.out)
            printf("order-free test AUC: bag of tokens %.4f, bag of families %.4f (%ld train / %ld test) -> %s\n",
                   r.tokens.test_auc, r.families.test_auc, r.n_train, r.n_test, a.out);
    }
    sl_dataset_close(&ds);
    return rc ? sl_report(&err) : 0;
}
