#include "cli/args.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/outputs.h"
#include "models/backend.h"
#include "models/run.h"

static int allowed_opt(const char *allowed, const char *opt)
{
    size_t n = strlen(opt);
    for (const char *p = allowed; (p = strstr(p, opt)); p += n)
        if ((p == allowed || p[-1] == ' ') && (p[n] == ' ' || !p[n])) return 1;
    return 0;
}

int sl_parse_int(const char *s, long lo, long hi, long *out, const char **end)
{
    /* strtol alone would take leading spaces, a '+', and a '-' that wraps
     * an unsigned value: only digits (and '-' where lo allows it) pass */
    const char *d = s + (*s == '-' && lo < 0);
    if (*d < '0' || *d > '9') return -1;
    char *stop;
    errno = 0;
    long v = strtol(s, &stop, 10);
    if (errno || v < lo || v > hi || (end ? 0 : *stop != 0)) return -1;
    if (end) *end = stop;
    *out = v;
    return 0;
}

static int parse_long(const char *s, long lo, long hi, long *out) { return sl_parse_int(s, lo, hi, out, NULL); }

/* An integer option's value in [lo, hi]; the error names both. */
static int int_option(const char *cmd, const char *o, const char *v, long lo, long hi, long *out, sl_error *err)
{
    if (!parse_long(v, lo, hi, out)) return SL_OK;
    return sl_fail(err, SL_EINPUT, "seqlens %s: %s '%.*s%s': expected an integer in [%ld, %ld]", cmd, o, SL_CLIP(v), lo,
                   hi);
}

static int parse_examples(sl_args *a, const char *v, sl_error *err)
{
    const char *colon = strchr(v, ':');
    char lo[32] = "", hi[32] = "";
    if (!colon || colon - v >= (long)sizeof lo || strlen(colon + 1) >= sizeof hi)
        return sl_fail(err, SL_EINPUT, "seqlens %s: --examples '%.*s%s': expected A:B (0-based, B exclusive)", a->cmd,
                       SL_CLIP(v));
    memcpy(lo, v, (size_t)(colon - v));
    strcpy(hi, colon + 1);
    long A = 0, B = -1;
    if ((lo[0] && parse_long(lo, 0, 1L << 40, &A)) || (hi[0] && parse_long(hi, 1, 1L << 40, &B)) || (hi[0] && B <= A))
        return sl_fail(err, SL_EINPUT, "seqlens %s: --examples '%.*s%s': expected A:B with 0 <= A < B", a->cmd,
                       SL_CLIP(v));
    a->ex_first = A;
    a->ex_end = B;
    return SL_OK;
}

static int add_hooks(sl_args *a, const char *v, sl_error *err)
{
    /* a comma-separated list is as good as several arguments */
    for (const char *p = v; *p;) {
        size_t n = strcspn(p, ",");
        if (n) {
            if (a->n_hooks == SL_MAX_HOOK_PATTERNS)
                return sl_fail(err, SL_EINPUT, "seqlens %s: more than %d --hook patterns", a->cmd, SL_MAX_HOOK_PATTERNS);
            if (n >= sizeof a->hooks[0])
                return sl_fail(err, SL_EINPUT, "seqlens %s: --hook pattern '%.40s...' is longer than %zu characters",
                               a->cmd, p, sizeof a->hooks[0] - 1);
            memcpy(a->hooks[a->n_hooks], p, n);
            a->hooks[a->n_hooks++][n] = 0;
        }
        p += n + (p[n] == ',');
    }
    return SL_OK;
}

int sl_parse_args(sl_args *a, const char *cmd, int argc, char **argv, const char *allowed, sl_error *err)
{
    memset(a, 0, sizeof *a);
    a->cmd = cmd;
    a->ex_end = -1;
    a->threads = sl_default_threads();
    a->seed = 0;
    a->device = NULL;
    a->bootstrap = 1000;
    a->tolerance = 1e-4;
    for (int i = 0; i < argc; i++) {
        const char *o = argv[i];
        if (!strcmp(o, "--help") || !strcmp(o, "-h")) { a->help = 1; continue; }
        if (o[0] != '-' || !o[1] || (o[1] >= '0' && o[1] <= '9')) {
            if (a->n_pos == SL_MAX_POSITIONAL)
                return sl_fail(err, SL_EINPUT, "seqlens %s: unexpected argument '%.*s%s'", cmd, SL_CLIP(o));
            a->pos[a->n_pos++] = o;
            continue;
        }
        if (!allowed_opt(allowed, o))
            return sl_fail(err, SL_EINPUT, "seqlens %s: unknown option %s (see seqlens %s --help)", cmd, o, cmd);
        if (!strcmp(o, "--force")) { a->force = 1; continue; }
        if (i + 1 >= argc) return sl_fail(err, SL_EINPUT, "seqlens %s: option %s needs a value", cmd, o);
        const char *v = argv[++i];
        long n = 0;
        int rc = SL_OK;
        if (!strcmp(o, "-o")) {
            a->out = v;
        } else if (!strcmp(o, "--examples")) {
            rc = parse_examples(a, v, err);
        } else if (!strcmp(o, "--sample")) {
            rc = int_option(cmd, o, v, 1, 1L << 40, &a->sample, err);
        } else if (!strcmp(o, "--threads")) {
            rc = int_option(cmd, o, v, 1, 1024, &n, err);
            a->threads = (int)n;
        } else if (!strcmp(o, "--batch")) {
            rc = int_option(cmd, o, v, 1, 1 << 20, &n, err);
            a->batch = (int)n;
        } else if (!strcmp(o, "--seed")) {
            char *end = (char *)v;
            errno = 0;
            a->seed = v[0] >= '0' && v[0] <= '9' ? strtoull(v, &end, 10) : 0;
            /* at most 2^53: the JSON results record the seed as a number, exact only up to there */
            if (v[0] < '0' || v[0] > '9' || errno || *end || a->seed > (1ull << 53))
                rc = sl_fail(err, SL_EINPUT, "seqlens %s: --seed '%.*s%s': expected an integer in [0, 2^53]", cmd,
                             SL_CLIP(v));
        } else if (!strcmp(o, "--device")) {
            const sl_backend_kind *k = sl_backend_kind_find(v);
            sl_error why = {0};
            if (!strcmp(v, "cpu")) a->device = "cpu";
            else if (k && k->accept(&why)) rc = sl_fail(err, SL_EINPUT, "seqlens %s: --device %s: %s", cmd, k->name, why.msg);
            else if (k) a->device = k->name;
            else rc = sl_fail(err, SL_EINPUT, "seqlens %s: --device '%.*s%s': expected cpu or %s", cmd, SL_CLIP(v),
                              sl_backend_names());
        } else if (!strcmp(o, "--reduce")) {
            if (!strcmp(v, "none")) a->reduce = REDUCE_NONE;
            else if (!strcmp(v, "mean")) a->reduce = REDUCE_MEAN;
            else if (!strcmp(v, "last")) a->reduce = REDUCE_LAST;
            else rc = sl_fail(err, SL_EINPUT, "seqlens %s: --reduce '%.*s%s': expected none, mean or last", cmd,
                              SL_CLIP(v));
        } else if (!strcmp(o, "--dtype")) {
            if (!strcmp(v, "f32")) a->dtype_f16 = 0;
            else if (!strcmp(v, "f16")) a->dtype_f16 = 1;
            else rc = sl_fail(err, SL_EINPUT, "seqlens %s: --dtype '%.*s%s': expected f32 or f16", cmd, SL_CLIP(v));
        } else if (!strcmp(o, "--family")) {
            a->family = v;
        } else if (!strcmp(o, "--component")) {
            a->component = v;
        } else if (!strcmp(o, "--layer")) {
            a->layer = v;
        } else if (!strcmp(o, "--mode")) {
            a->mode = v;
        } else if (!strcmp(o, "--bootstrap")) {
            rc = int_option(cmd, o, v, 0, 1000000, &n, err);
            a->bootstrap = (int)n;
        } else if (!strcmp(o, "--positions")) {
            a->positions = v;
        } else if (!strcmp(o, "--pairs")) {
            a->pairs_file = v;
        } else if (!strcmp(o, "--pairing")) {
            a->pairing = v;
        } else if (!strcmp(o, "--n-pairs")) {
            rc = int_option(cmd, o, v, 1, 1L << 30, &a->n_pairs, err);
        } else if (!strcmp(o, "--scores")) {
            a->scores_out = v;
        } else if (!strcmp(o, "--tokens")) {
            a->tokens_out = v;
        } else if (!strcmp(o, "--method")) {
            a->method = v;
        } else if (!strcmp(o, "--baseline")) {
            a->baseline = v;
        } else if (!strcmp(o, "--steps")) {
            rc = int_option(cmd, o, v, 1, 100000, &n, err);
            a->steps = (int)n;
        } else if (!strcmp(o, "--target")) {
            a->target = v;
        } else if (!strcmp(o, "--site")) {
            a->site = v;
        } else if (!strcmp(o, "--task")) {
            a->task = v;
        } else if (!strcmp(o, "--n")) {
            rc = int_option(cmd, o, v, 1, 1L << 40, &a->n_examples, err);
        } else if (!strcmp(o, "--len")) {
            rc = int_option(cmd, o, v, 1, 1 << 24, &n, err);
            a->len = (int)n;
        } else if (!strcmp(o, "--noise")) {
            char *end = (char *)v;
            /* digits first: no leading space or sign; NaN and inf fail the range */
            if ((v[0] >= '0' && v[0] <= '9') || v[0] == '.') a->noise = strtod(v, &end);
            if (end == v || *end || !(a->noise >= 0 && a->noise <= 0.5))
                rc = sl_fail(err, SL_EINPUT, "seqlens %s: --noise '%.*s%s': expected a probability in [0, 0.5]", cmd,
                             SL_CLIP(v));
        } else if (!strcmp(o, "--logits") || !strcmp(o, "--verify")) {
            a->logits_file = v;
        } else if (!strcmp(o, "--tolerance")) {
            char *end = (char *)v;
            a->tolerance_given = 1;
            /* digits first, as --noise; NaN and inf fail the range */
            if ((v[0] >= '0' && v[0] <= '9') || v[0] == '.') a->tolerance = strtod(v, &end);
            if (end == v || *end || !(a->tolerance >= 0 && a->tolerance <= 1e6))
                rc = sl_fail(err, SL_EINPUT, "seqlens %s: --tolerance '%.*s%s': expected a number in [0, 1e6]", cmd,
                             SL_CLIP(v));
        } else if (!strcmp(o, "--hook")) {
            rc = add_hooks(a, v, err);
            /* MODEL DATA --hook A B C: once the positionals are in, further
             * patterns run up to the next option */
            while (!rc && a->n_pos >= 2 && i + 1 < argc && argv[i + 1][0] != '-') rc = add_hooks(a, argv[++i], err);
        }
        if (rc) return rc;
    }
    /* outputs are checked before any work: see cli/outputs.h */
    return a->help ? SL_OK : sl_args_check_outputs(a, err);
}
