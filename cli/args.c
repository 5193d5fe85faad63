#include "cli/args.h"

#include <errno.h>
#include <stddef.h>
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

/* ---- the options: one table, a parser for each kind of value ---- */

typedef struct opt opt;
/* v is the option's value; rc SL_OK or the error (which names cmd and o). */
typedef int (*opt_parse)(sl_args *a, const opt *o, const char *v, sl_error *err);

struct opt {
    const char *name;
    opt_parse parse; /* NULL: a flag, which takes no value */
    size_t field;    /* where in sl_args the value goes */
    long lo, hi;     /* an integer's range */
};

#define FIELD(a, o, type) ((type *)((char *)(a) + (o)->field))

static int set_text(sl_args *a, const opt *o, const char *v, sl_error *err)
{
    (void)err;
    *FIELD(a, o, const char *) = v;
    return SL_OK;
}

static int set_int(sl_args *a, const opt *o, const char *v, sl_error *err)
{
    long n = 0;
    int rc = int_option(a->cmd, o->name, v, o->lo, o->hi, &n, err);
    *FIELD(a, o, int) = (int)n;
    return rc;
}

static int set_long(sl_args *a, const opt *o, const char *v, sl_error *err)
{
    return int_option(a->cmd, o->name, v, o->lo, o->hi, FIELD(a, o, long), err);
}

static int set_examples(sl_args *a, const opt *o, const char *v, sl_error *err)
{
    (void)o;
    return parse_examples(a, v, err);
}

static int set_seed(sl_args *a, const opt *o, const char *v, sl_error *err)
{
    (void)o;
    char *end = (char *)v;
    errno = 0;
    a->seed = v[0] >= '0' && v[0] <= '9' ? strtoull(v, &end, 10) : 0;
    /* at most 2^53: the JSON results record the seed as a number, exact only up to there */
    if (v[0] < '0' || v[0] > '9' || errno || *end || a->seed > (1ull << 53))
        return sl_fail(err, SL_EINPUT, "seqlens %s: --seed '%.*s%s': expected an integer in [0, 2^53]", a->cmd,
                       SL_CLIP(v));
    return SL_OK;
}

/* "cpu", or a backend registered by that name (models/backend.h) */
static int set_device(sl_args *a, const opt *o, const char *v, sl_error *err)
{
    (void)o;
    const sl_backend_kind *k = sl_backend_kind_find(v);
    sl_error why = {0};
    if (!strcmp(v, "cpu")) a->device = "cpu";
    else if (k && k->accept(&why)) return sl_fail(err, SL_EINPUT, "seqlens %s: --device %s: %s", a->cmd, k->name, why.msg);
    else if (k) a->device = k->name;
    else return sl_fail(err, SL_EINPUT, "seqlens %s: --device '%.*s%s': expected cpu or %s", a->cmd, SL_CLIP(v),
                        sl_backend_names());
    return SL_OK;
}

static int set_reduce(sl_args *a, const opt *o, const char *v, sl_error *err)
{
    (void)o;
    if (!strcmp(v, "none")) a->reduce = REDUCE_NONE;
    else if (!strcmp(v, "mean")) a->reduce = REDUCE_MEAN;
    else if (!strcmp(v, "last")) a->reduce = REDUCE_LAST;
    else return sl_fail(err, SL_EINPUT, "seqlens %s: --reduce '%.*s%s': expected none, mean or last", a->cmd, SL_CLIP(v));
    return SL_OK;
}

static int set_dtype(sl_args *a, const opt *o, const char *v, sl_error *err)
{
    (void)o;
    if (!strcmp(v, "f32")) a->dtype_f16 = 0;
    else if (!strcmp(v, "f16")) a->dtype_f16 = 1;
    else return sl_fail(err, SL_EINPUT, "seqlens %s: --dtype '%.*s%s': expected f32 or f16", a->cmd, SL_CLIP(v));
    return SL_OK;
}

/* A number in [lo, hi] written with digits first: no leading space or
 * sign; NaN and inf fail the range, and so does a value strtod had to
 * round to 0 or infinity (ERANGE: 1e-400 is not 0). */
static int number(const char *v, double lo, double hi, double *out)
{
    char *end = (char *)v;
    errno = 0;
    if ((v[0] >= '0' && v[0] <= '9') || v[0] == '.') *out = strtod(v, &end);
    return end != v && !*end && !errno && *out >= lo && *out <= hi;
}

static int set_noise(sl_args *a, const opt *o, const char *v, sl_error *err)
{
    (void)o;
    if (!number(v, 0, 0.5, &a->noise))
        return sl_fail(err, SL_EINPUT, "seqlens %s: --noise '%.*s%s': expected a probability in [0, 0.5]", a->cmd,
                       SL_CLIP(v));
    return SL_OK;
}

static int set_tolerance(sl_args *a, const opt *o, const char *v, sl_error *err)
{
    (void)o;
    a->tolerance_given = 1;
    if (!number(v, 0, 1e6, &a->tolerance))
        return sl_fail(err, SL_EINPUT, "seqlens %s: --tolerance '%.*s%s': expected a number in [0, 1e6]", a->cmd,
                       SL_CLIP(v));
    return SL_OK;
}

static int set_hook(sl_args *a, const opt *o, const char *v, sl_error *err)
{
    (void)o;
    return add_hooks(a, v, err);
}

#define AT(f) offsetof(sl_args, f)

static const opt OPTIONS[] = {
    {"-o", set_text, AT(out), 0, 0},
    {"--examples", set_examples, 0, 0, 0},
    {"--sample", set_long, AT(sample), 1, 1L << 40},
    {"--threads", set_int, AT(threads), 1, 1024},
    {"--batch", set_int, AT(batch), 1, 1 << 20},
    {"--seed", set_seed, 0, 0, 0},
    {"--device", set_device, 0, 0, 0},
    {"--reduce", set_reduce, 0, 0, 0},
    {"--dtype", set_dtype, 0, 0, 0},
    {"--family", set_text, AT(family), 0, 0},
    {"--component", set_text, AT(component), 0, 0},
    {"--layer", set_text, AT(layer), 0, 0},
    {"--mode", set_text, AT(mode), 0, 0},
    {"--bootstrap", set_int, AT(bootstrap), 0, 1000000},
    {"--positions", set_text, AT(positions), 0, 0},
    {"--pairs", set_text, AT(pairs_file), 0, 0},
    {"--pairing", set_text, AT(pairing), 0, 0},
    {"--n-pairs", set_long, AT(n_pairs), 1, 1L << 30},
    {"--scores", set_text, AT(scores_out), 0, 0},
    {"--base-logits", set_text, AT(base_logits), 0, 0},
    {"--tokens", set_text, AT(tokens_out), 0, 0},
    {"--method", set_text, AT(method), 0, 0},
    {"--baseline", set_text, AT(baseline), 0, 0},
    {"--steps", set_int, AT(steps), 1, 100000},
    {"--target", set_text, AT(target), 0, 0},
    {"--site", set_text, AT(site), 0, 0},
    {"--task", set_text, AT(task), 0, 0},
    {"--n", set_long, AT(n_examples), 1, 1L << 40},
    {"--len", set_int, AT(len), 1, 1 << 24},
    {"--noise", set_noise, 0, 0, 0},
    {"--logits", set_text, AT(logits_file), 0, 0},
    {"--verify", set_text, AT(logits_file), 0, 0},
    {"--tolerance", set_tolerance, 0, 0, 0},
    {"--hook", set_hook, 0, 0, 0},
    {"--force", NULL, AT(force), 0, 0},
};

static const opt *find_option(const char *name)
{
    for (size_t k = 0; k < sizeof OPTIONS / sizeof *OPTIONS; k++)
        if (!strcmp(OPTIONS[k].name, name)) return &OPTIONS[k];
    return NULL;
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
        const char *name = argv[i];
        if (!strcmp(name, "--help") || !strcmp(name, "-h")) { a->help = 1; continue; }
        if (name[0] != '-' || !name[1] || (name[1] >= '0' && name[1] <= '9')) {
            if (a->n_pos == SL_MAX_POSITIONAL)
                return sl_fail(err, SL_EINPUT, "seqlens %s: unexpected argument '%.*s%s'", cmd, SL_CLIP(name));
            a->pos[a->n_pos++] = name;
            continue;
        }
        const opt *o = allowed_opt(allowed, name) ? find_option(name) : NULL;
        if (!o) return sl_fail(err, SL_EINPUT, "seqlens %s: unknown option %s (see seqlens %s --help)", cmd, name, cmd);
        if (!o->parse) {
            *FIELD(a, o, int) = 1;
            continue;
        }
        if (i + 1 >= argc) return sl_fail(err, SL_EINPUT, "seqlens %s: option %s needs a value", cmd, name);
        int rc = o->parse(a, o, argv[++i], err);
        /* MODEL DATA --hook A B C: once the positionals are in, further
         * patterns run up to the next option */
        while (!rc && o->parse == set_hook && a->n_pos >= 2 && i + 1 < argc && argv[i + 1][0] != '-')
            rc = add_hooks(a, argv[++i], err);
        if (rc) return rc;
    }
    /* outputs are checked before any work: see cli/outputs.h */
    return a->help ? SL_OK : sl_args_check_outputs(a, err);
}
