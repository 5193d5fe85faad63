/* seqlens verify: the user's own PyTorch logits against seqlens's on the
 * same examples (design.md section 2.3). A checkpoint that loads with a
 * wrong config key (a missing embedding scale, another head count) runs
 * and gives plausible numbers; only a comparison with the framework that
 * trained it shows the load is right. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/commands.h"
#include "cli/registry.h"
#include "core/jsonout.h"
#include "core/logits_file.h"

static const char USAGE[] =
    "usage: seqlens verify MODEL DATA --logits FILE [--tolerance T] [-o out.json] [--examples A:B] [--threads N]\n"
    "                      [--batch B] [--device cpu|cuda]\n"
    "  Compares seqlens's logits with FILE, the logits PyTorch gave for the first n examples of DATA (or\n"
    "  those --examples selects): .npy ([n], [n, 1] or [n, 2], where the logit is z1 - z0; float32 or\n"
    "  float64), .h5/.hdf5 (dataset /logits, same shapes) or text (one number a line). DATA needs only\n"
    "  /tokens. JSON: n, max_abs_error, max_rel_error (max |a - b| / max |b|), worst (the 5 largest\n"
    "  differences: example, seqlens, file), ok. Exit 0 when max_rel_error <= T (default 1e-4), else 1.\n";

#define N_WORST 5

/* The selected examples: --examples A:B must cover exactly the file's n;
 * without it the first n of DATA. */
static int pick_range(const sl_session *s, const sl_args *a, long n, sl_run_opts *o, sl_error *err)
{
    *o = s->run;
    if (a->ex_first || a->ex_end >= 0) {
        if (s->run.count != n)
            return sl_fail(err, SL_EINPUT, "%s: holds %ld logits, but --examples %ld:%ld selects %ld examples",
                           a->logits_file, n, s->run.first, s->run.first + s->run.count, s->run.count);
        return SL_OK;
    }
    if (n > s->data.n)
        return sl_fail(err, SL_EINPUT, "%s: holds %ld logits, more than the %ld examples of %s", a->logits_file, n,
                       s->data.n, s->data.path);
    o->first = 0;
    o->count = n;
    if (!o->backend && o->batch > n) o->batch = (int)n; /* CPU batch buffers are sized from it */
    return SL_OK;
}

static cJSON *result_json(const float *ours, const double *theirs, long first, long n, double tol, int *ok)
{
    double max_abs = 0, max_ref = 0;
    long worst[N_WORST];
    int nw = 0;
    for (long i = 0; i < n; i++) {
        double e = fabs((double)ours[i] - theirs[i]);
        max_abs = fmax(max_abs, e);
        max_ref = fmax(max_ref, fabs(theirs[i]));
        /* the N_WORST largest differences, largest first */
        int k = nw < N_WORST ? nw++ : N_WORST;
        while (k > 0 && e > fabs((double)ours[worst[k - 1]] - theirs[worst[k - 1]])) {
            if (k < N_WORST) worst[k] = worst[k - 1];
            k--;
        }
        if (k < N_WORST) worst[k] = i;
    }
    double rel = max_ref > 0 ? max_abs / max_ref : max_abs > 0 ? INFINITY : 0;
    *ok = rel <= tol;
    cJSON *j = cJSON_CreateObject(), *w = cJSON_CreateArray();
    cJSON_AddNumberToObject(j, "n", (double)n);
    cJSON_AddItemToObject(j, "max_abs_error", sl_json_number(max_abs));
    cJSON_AddItemToObject(j, "max_rel_error", sl_json_number(rel));
    cJSON_AddNumberToObject(j, "tolerance", tol);
    for (int k = 0; k < nw; k++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "example", (double)(first + worst[k]));
        cJSON_AddItemToObject(o, "seqlens", sl_json_number(ours[worst[k]]));
        cJSON_AddItemToObject(o, "file", sl_json_number(theirs[worst[k]]));
        cJSON_AddItemToArray(w, o);
    }
    cJSON_AddItemToObject(j, "worst", w);
    cJSON_AddBoolToObject(j, "ok", *ok);
    return j;
}

int sl_verify(sl_session *s, const sl_args *a, cJSON **out, int *ok, sl_error *err)
{
    *out = NULL;
    *ok = 0;
    sl_logits_file f = {0};
    sl_run_opts o;
    int rc = sl_logits_file_read(a->logits_file, &f, err);
    if (!rc) rc = pick_range(s, a, f.n, &o, err);
    float *logits = NULL;
    if (!rc && !(logits = malloc((size_t)f.n * sizeof *logits)))
        rc = sl_fail(err, SL_ERUNTIME, "out of memory for %ld logits", f.n);
    if (!rc) rc = sl_run(&s->model, &s->data, &o, NULL, NULL, NULL, NULL, logits, err);
    if (!rc) *out = result_json(logits, f.z, o.first, f.n, a->tolerance, ok);
    free(logits);
    sl_logits_file_free(&f);
    return rc;
}

int sl_verify_mismatch(const cJSON *j, const sl_args *a, sl_error *err)
{
    const cJSON *w = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "worst"), 0);
    const cJSON *rel = cJSON_GetObjectItemCaseSensitive(j, "max_rel_error");
    double ex = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(w, "example"));
    double ours = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(w, "seqlens"));
    double theirs = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(w, "file"));
    return sl_fail(err, SL_ERUNTIME,
                   "%s does not match %s: max relative error %.3g > tolerance %.3g (example %.0f: seqlens %.6g, file "
                   "%.6g); the config keys that most often cause a silent mismatch are embed_scale, n_heads, "
                   "positional, norm_first and pooling",
                   a->pos[0], a->logits_file, cJSON_IsNumber(rel) ? rel->valuedouble : INFINITY, a->tolerance, ex,
                   ours, theirs);
}

static int cmd_verify(int argc, char **argv)
{
    sl_args a;
    sl_error err = {0};
    if (sl_parse_args(&a, "verify", argc, argv, "-o --logits --tolerance --examples --threads --batch --device", &err))
        return sl_report(&err);
    if (a.help || a.n_pos != 2) return sl_usage(USAGE, a.help);
    if (!a.logits_file) return sl_report(&(sl_error){SL_EINPUT, "seqlens verify: --logits FILE is required"});
    sl_session s;
    cJSON *j = NULL;
    int ok = 0, rc = sl_session_open(&s, &a, a.pos[0], a.pos[1], &err);
    if (!rc) rc = sl_verify(&s, &a, &j, &ok, &err);
    if (!rc) rc = sl_json_write(j, a.out, &err);
    if (!rc && !ok) rc = sl_verify_mismatch(j, &a, &err);
    cJSON_Delete(j);
    sl_session_close(&s);
    return rc ? sl_report(&err) : 0;
}

static sl_command verify_command = {
    .name = "verify",
    .summary = "  verify MODEL DATA --logits FILE   seqlens's logits against PyTorch's: proves the load\n",
    .order = 20,
    .flags = SL_CMD_SHARDED | SL_CMD_TOKENS_ONLY,
    .run = cmd_verify,
};
SL_REGISTER_COMMAND(verify_command)
