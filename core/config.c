#include "core/config.h"

#include <math.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const ARCH_NAMES[] = {"mamba", "transformer", "mamba2", NULL};
static const char *const POOL_NAMES[] = {"mean", "last", "cls", NULL};
static const char *const ACT_NAMES[] = {"gelu", "relu", NULL};
static const char *const POS_NAMES[] = {"none", "learned", "sinusoidal", "rope", NULL};
static const char *const NORM_NAMES[] = {"rms", "layer", NULL};

const char *sl_arch_name(int a) { return ARCH_NAMES[a]; }
const char *sl_pooling_name(int p) { return POOL_NAMES[p]; }
const char *sl_positional_name(int p) { return POS_NAMES[p]; }
const char *sl_norm_name(int n) { return NORM_NAMES[n]; }

/* What a required key means, for the one message listing every missing
 * key; "weights" keys are missing only when there are no weights to tell. */
static const struct {
    const char *key, *meaning;
} MEANINGS[] = {
    {"arch", "\"mamba\", \"mamba2\" or \"transformer\"; the weights tell when they hold layers.<i>.mixer.* or layers.<i>.self_attn.*"},
    {"vocab_size", "rows of the embedding table (given by the weights)"},
    {"d_model", "width of the residual stream (given by the weights)"},
    {"n_layers", "number of blocks (given by the weights)"},
    {"d_state", "SSM state size (given by the weights)"},
    {"d_state or ngroups", "Mamba-2's state size per group or its number of groups of B and C: the weights give only their "
     "product (mamba_ssm's ssm_cfg and Hugging Face's config carry both)"},
    {"d_conv", "convolution width (given by the weights)"},
    {"expand", "d_inner / d_model (given by the weights)"},
    {"d_ff", "feed-forward width (given by the weights)"},
    {"n_heads", "attention heads per layer, nn.TransformerEncoderLayer's nhead"},
    {"norm_first", "true when each layer normalises its input first (norm_first=True), false when after the residual add"},
    {"activation", "\"relu\" or \"gelu\", the feed-forward activation"},
    {"pooling", "\"mean\", \"last\" or \"cls\": the positions the head reads"},
    {"positional", "\"none\" or \"rope\": the weights hold no positional table"},
};

typedef struct {
    const cJSON *root; /* config keys, then facts for keys the config lacks */
    const sl_config_doc *d;
    const cJSON *facts_from;
    sl_config *c;
    sl_error *err;
    char missing[1024];
    int n_missing;
} reader;

static void add_source(reader *r, const char *key, const char *from)
{
    sl_config *c = r->c;
    if (c->n_sources == SL_CONFIG_MAX_SOURCES) return;
    sl_config_source *s = &c->sources[c->n_sources++];
    snprintf(s->key, sizeof s->key, "%s", key);
    snprintf(s->from, sizeof s->from, "%s", from);
}

const char *sl_config_source_of(const sl_config *c, const char *key)
{
    for (int i = 0; i < c->n_sources; i++)
        if (!strcmp(c->sources[i].key, key)) return c->sources[i].from;
    return NULL;
}

/* The key's value, its source recorded; NULL when absent. */
static const cJSON *item(reader *r, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r->root, key);
    const cJSON *o = r->d ? cJSON_GetObjectItemCaseSensitive(r->d->origin, key) : NULL;
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(r->facts_from, key);
    char from[232];
    if (!v) snprintf(from, sizeof from, "default");
    else if (cJSON_IsString(f) && r->d->vocab_padded && !strcmp(key, "vocab_size") && v->valuedouble == r->d->vocab_padded)
        snprintf(from, sizeof from, "inferred from %s (config.json's vocab_size rounded up to pad_vocab_size_multiple, as "
                 "MambaLMHeadModel pads it)", f->valuestring);
    else if (cJSON_IsString(o) && cJSON_IsString(f)) snprintf(from, sizeof from, "%s; the weights agree (%s)", o->valuestring, f->valuestring);
    else if (cJSON_IsString(o)) snprintf(from, sizeof from, "%s", o->valuestring);
    else if (cJSON_IsString(f)) snprintf(from, sizeof from, "inferred from %s", f->valuestring);
    else snprintf(from, sizeof from, "config");
    add_source(r, key, from);
    return v;
}

static void missing(reader *r, const char *key)
{
    const char *meaning = "";
    for (size_t i = 0; i < sizeof MEANINGS / sizeof *MEANINGS; i++)
        if (!strcmp(MEANINGS[i].key, key)) meaning = MEANINGS[i].meaning;
    size_t k = strlen(r->missing);
    snprintf(r->missing + k, sizeof r->missing - k, "%s'%s' (%s)", r->n_missing ? ", " : "", key, meaning);
    r->n_missing++;
}

/* Integer key in [lo, hi]; def < lo marks the key as required. */
static int get_int(reader *r, const char *key, int lo, int hi, int def, int *out)
{
    const cJSON *v = item(r, key);
    if (!v) {
        if (def < lo) { missing(r, key); def = lo; }
        *out = def;
        return SL_OK;
    }
    double x = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (!cJSON_IsNumber(v) || (fabs(x) < 1e15 && x != floor(x)))
        return sl_fail(r->err, SL_EINPUT, "%s: key '%s' must be an integer", r->d->path, key);
    /* compared as doubles: no conversion of a value beyond int's range
     * (found by tests/fuzz/fuzz_config.c) */
    if (!(x >= lo && x <= hi))
        return sl_fail(r->err, SL_EINPUT, "%s: key '%s' = %.6g is out of range [%d, %d]", r->d->path, key, x, lo, hi);
    *out = (int)v->valuedouble;
    return SL_OK;
}

static int get_float(reader *r, const char *key, double lo, double hi, double def, float *out)
{
    const cJSON *v = item(r, key);
    if (!v) { *out = (float)def; return SL_OK; }
    if (!cJSON_IsNumber(v))
        return sl_fail(r->err, SL_EINPUT, "%s: key '%s' must be a number", r->d->path, key);
    if (!(v->valuedouble > lo && v->valuedouble <= hi))
        return sl_fail(r->err, SL_EINPUT, "%s: key '%s' = %g is out of range (%g, %g]", r->d->path, key,
                       v->valuedouble, lo, hi);
    *out = (float)v->valuedouble;
    return SL_OK;
}

/* Boolean key; def < 0 marks it as required. */
static int get_bool(reader *r, const char *key, int def, int *out)
{
    const cJSON *v = item(r, key);
    if (!v) {
        if (def < 0) missing(r, key);
        *out = def > 0;
        return SL_OK;
    }
    if (!cJSON_IsBool(v))
        return sl_fail(r->err, SL_EINPUT, "%s: key '%s' must be true or false", r->d->path, key);
    *out = cJSON_IsTrue(v);
    return SL_OK;
}

/* String key from a closed set; def < 0 marks it as required. */
static int get_enum(reader *r, const char *key, const char *const *names, int def, int *out)
{
    const cJSON *v = item(r, key);
    if (!v) {
        if (def < 0) missing(r, key);
        *out = def < 0 ? 0 : def;
        return SL_OK;
    }
    if (cJSON_IsString(v))
        for (int i = 0; names[i]; i++)
            if (!strcmp(v->valuestring, names[i])) { *out = i; return SL_OK; }
    char allowed[256] = "";
    for (int i = 0; names[i]; i++)
        snprintf(allowed + strlen(allowed), sizeof allowed - strlen(allowed), "%s\"%s\"", i ? ", " : "", names[i]);
    return sl_fail(r->err, SL_EINPUT, "%s: key '%s' must be one of %s", r->d->path, key, allowed);
}

#define TRY(x) do { int rc_ = (x); if (rc_) return rc_; } while (0)
#define BIG 1 << 30

static int parse_mamba(reader *r, sl_config *c)
{
    TRY(get_int(r, "d_state", 1, 1024, 0, &c->d_state));
    TRY(get_int(r, "d_conv", 1, 64, 0, &c->d_conv));
    TRY(get_int(r, "expand", 1, 64, 0, &c->expand));
    int auto_rank = (c->d_model + 15) / 16; /* mamba_ssm's dt_rank="auto" */
    TRY(get_int(r, "dt_rank", 1, BIG, auto_rank, &c->dt_rank));
    TRY(get_enum(r, "norm", NORM_NAMES, NORM_RMS, &c->norm));
    TRY(get_float(r, "norm_eps", 0, 1, 1e-5, &c->norm_eps));
    c->d_inner = c->expand * c->d_model;
    return SL_OK;
}

/* dt_limit [lo, hi]: delta clamped to it; hi may be Infinity (the
 * libraries' default (0, inf), as Python's json writes it) or "inf". */
static int get_dt_limit(reader *r, sl_config *c)
{
    const cJSON *v = item(r, "dt_limit");
    c->dt_min = 0;
    c->dt_max = INFINITY;
    if (!v) return SL_OK;
    double b[2] = {0, 0};
    int ok = cJSON_IsArray(v) && cJSON_GetArraySize(v) == 2;
    for (int k = 0; ok && k < 2; k++) {
        const cJSON *e = cJSON_GetArrayItem(v, k);
        if (cJSON_IsNumber(e)) b[k] = e->valuedouble;
        else if (k == 1 && cJSON_IsString(e) && (!strcmp(e->valuestring, "inf") || !strcmp(e->valuestring, "Infinity")))
            b[k] = INFINITY;
        else ok = 0;
    }
    if (!ok || !(b[0] >= 0 && b[0] < b[1] && b[0] < 1e30))
        return sl_fail(r->err, SL_EINPUT, "%s: key 'dt_limit' must be [lo, hi] with 0 <= lo < hi (hi may be \"inf\")",
                       r->d->path);
    c->dt_min = (float)b[0];
    c->dt_max = b[1] > 3e38 ? INFINITY : (float)b[1];
    return SL_OK;
}

/* The weights give only ngroups * d_state (B and C's width): one of the two
 * from config.json, the other divided out of the product. Without weights
 * mamba_ssm's defaults (128, 1) apply. */
static int group_state(reader *r, sl_config *c)
{
    const cJSON *gs = cJSON_GetObjectItemCaseSensitive(r->root, SL_FACT_GROUP_STATE);
    const cJSON *gs_from = cJSON_GetObjectItemCaseSensitive(r->facts_from, SL_FACT_GROUP_STATE);
    int have_s = cJSON_GetObjectItemCaseSensitive(r->root, "d_state") != NULL;
    int have_g = cJSON_GetObjectItemCaseSensitive(r->root, "ngroups") != NULL;
    TRY(get_int(r, "d_state", 1, 1024, 128, &c->d_state));
    TRY(get_int(r, "ngroups", 1, 1 << 16, 1, &c->ngroups));
    if (!cJSON_IsNumber(gs)) return SL_OK;
    long product = (long)gs->valuedouble;
    const char *tensor = cJSON_IsString(gs_from) ? gs_from->valuestring : "the weights";
    if (!have_s && !have_g) {
        missing(r, "d_state or ngroups");
        return SL_OK;
    }
    if (have_s && have_g) {
        if ((long)c->d_state * c->ngroups != product)
            return sl_fail(r->err, SL_EINPUT, "%s: ngroups %d times d_state %d is %ld, but the weights give ngroups*d_state = %ld "
                           "(%s): correct one of the keys", r->d->path, c->ngroups, c->d_state,
                           (long)c->ngroups * c->d_state, product, tensor);
        return SL_OK;
    }
    int given = have_s ? c->d_state : c->ngroups;
    const char *key = have_s ? "ngroups" : "d_state";
    if (product % given || product / given > (have_s ? 1 << 16 : 1024))
        return sl_fail(r->err, SL_EINPUT, "%s: the weights give ngroups*d_state = %ld (%s), which %s %d does not divide "
                       "into a valid %s", r->d->path, product, tensor, have_s ? "d_state" : "ngroups", given, key);
    *(have_s ? &c->ngroups : &c->d_state) = (int)(product / given);
    char from[232];
    snprintf(from, sizeof from, "inferred from %s (ngroups*d_state = %ld) and %s", tensor, product,
             have_s ? "d_state" : "ngroups");
    for (int i = 0; i < c->n_sources; i++)
        if (!strcmp(c->sources[i].key, key)) snprintf(c->sources[i].from, sizeof c->sources[i].from, "%s", from);
    return SL_OK;
}

/* mamba_ssm's Mamba2 block (modules/mamba2.py) and its defaults. */
static int parse_mamba2(reader *r, sl_config *c)
{
    const char *path = r->d->path;
    TRY(group_state(r, c));
    TRY(get_int(r, "d_conv", 1, 64, 4, &c->d_conv));
    TRY(get_int(r, "expand", 1, 64, 2, &c->expand));
    TRY(get_int(r, "headdim", 1, 1 << 22, 64, &c->headdim));
    TRY(get_enum(r, "norm", NORM_NAMES, NORM_RMS, &c->norm));
    TRY(get_float(r, "norm_eps", 0, 1, 1e-5, &c->norm_eps));
    TRY(get_dt_limit(r, c));
    TRY(get_bool(r, "D_has_hdim", 0, &c->D_has_hdim));
    TRY(get_bool(r, "norm_before_gate", 0, &c->norm_before_gate));
    TRY(get_bool(r, "rmsnorm", 1, &c->rmsnorm));
    TRY(get_float(r, "gated_norm_eps", 0, 1, 1e-5, &c->gated_norm_eps));
    if (r->n_missing) return SL_OK; /* the checks below need them */
    c->d_inner = c->expand * c->d_model;
    if (c->d_inner % c->headdim)
        return sl_fail(r->err, SL_EINPUT, "%s: headdim %d does not divide d_inner = expand %d * d_model %d = %d", path,
                       c->headdim, c->expand, c->d_model, c->d_inner);
    c->nheads = c->d_inner / c->headdim;
    if (c->nheads % c->ngroups)
        return sl_fail(r->err, SL_EINPUT, "%s: ngroups %d does not divide nheads = d_inner %d / headdim %d = %d", path,
                       c->ngroups, c->d_inner, c->headdim, c->nheads);
    if ((long)c->ngroups * c->d_state > 1L << 22)
        return sl_fail(r->err, SL_EINPUT, "%s: ngroups %d times d_state %d is too large", path, c->ngroups, c->d_state);
    return SL_OK;
}

static int parse_transformer(reader *r, sl_config *c)
{
    const char *path = r->d->path;
    TRY(get_int(r, "n_heads", 1, BIG, 0, &c->n_heads));
    TRY(get_int(r, "d_ff", 1, BIG, 0, &c->d_ff));
    TRY(get_bool(r, "norm_first", -1, &c->norm_first));
    TRY(get_enum(r, "activation", ACT_NAMES, -1, &c->activation));
    TRY(get_enum(r, "positional", POS_NAMES, -1, &c->positional));
    TRY(get_int(r, "max_len", 1, BIG, 1 << 20, &c->max_len));
    TRY(get_float(r, "rope_base", 0, 1e12, 10000, &c->rope_base));
    TRY(get_bool(r, "final_norm", 0, &c->final_norm));
    TRY(get_float(r, "layer_norm_eps", 0, 1, 1e-5, &c->layer_norm_eps));
    TRY(get_bool(r, "causal", 0, &c->causal));
    TRY(get_float(r, "embed_scale", 0, 1e6, 1, &c->embed_scale));
    if (r->n_missing) return SL_OK; /* the checks below need them */
    if (c->d_model % c->n_heads)
        return sl_fail(r->err, SL_EINPUT, "%s: d_model %d is not divisible by n_heads %d", path, c->d_model, c->n_heads);
    c->d_head = c->d_model / c->n_heads;
    if (c->positional == POS_ROPE && c->d_head % 2)
        return sl_fail(r->err, SL_EINPUT, "%s: positional \"rope\" needs an even head dimension (d_model %d / n_heads %d = %d)",
                       path, c->d_model, c->n_heads, c->d_head);
    if (c->positional == POS_LEARNED && !cJSON_GetObjectItemCaseSensitive(r->root, "max_len"))
        return sl_fail(r->err, SL_EINPUT, "%s: positional \"learned\" needs key 'max_len'", path);
    return SL_OK;
}

static int json_equal(const cJSON *a, const cJSON *b)
{
    if (cJSON_IsNumber(a) && cJSON_IsNumber(b)) return a->valuedouble == b->valuedouble;
    return cJSON_Compare(a, b, 1);
}

/* Each fact joins the config's keys; one the config gives too must agree. */
static int merge_facts(cJSON *root, const sl_config_doc *d, const cJSON *facts, const cJSON *facts_from, sl_error *err)
{
    const cJSON *f;
    cJSON_ArrayForEach(f, facts) {
        const cJSON *had = cJSON_GetObjectItemCaseSensitive(root, f->string);
        if (had) {
            if (json_equal(had, f)) continue;
            /* mamba_ssm: vocab_size as written, or padded as MambaLMHeadModel pads it */
            if (!strcmp(f->string, "vocab_size") && cJSON_IsNumber(f) && d->vocab_padded == f->valuedouble) {
                cJSON_ReplaceItemInObjectCaseSensitive(root, f->string, cJSON_Duplicate(f, 1));
                continue;
            }
            const cJSON *o = cJSON_GetObjectItemCaseSensitive(d->origin, f->string);
            const cJSON *t = cJSON_GetObjectItemCaseSensitive(facts_from, f->string);
            char *a = cJSON_PrintUnformatted(had), *b = cJSON_PrintUnformatted(f);
            sl_fail(err, SL_EINPUT, "%s: '%s' is %s (%s) but the weights give %s (%s): correct or remove the key",
                    d->path, f->string, a ? a : "?", cJSON_IsString(o) ? o->valuestring : "config", b ? b : "?",
                    cJSON_IsString(t) ? t->valuestring : "the tensors");
            free(a);
            free(b);
            return SL_EINPUT;
        }
        cJSON *copy = cJSON_Duplicate(f, 1);
        if (!copy || !cJSON_AddItemToObject(root, f->string, copy)) {
            cJSON_Delete(copy);
            return sl_fail(err, SL_ERUNTIME, "out of memory");
        }
    }
    return SL_OK;
}

int sl_config_resolve(sl_config *c, const sl_config_doc *d, const cJSON *facts, const cJSON *facts_from, sl_error *err)
{
    memset(c, 0, sizeof *c);
    cJSON *root = cJSON_Duplicate(d->keys, 1);
    if (!root) return sl_fail(err, SL_ERUNTIME, "out of memory");
    int rc = merge_facts(root, d, facts, facts_from, err);
    reader r = {root, d, facts_from, c, err, "", 0};
    if (!rc) rc = get_enum(&r, "arch", ARCH_NAMES, -1, &c->arch);
    int arch_known = !r.n_missing;
    if (!rc) rc = get_int(&r, "vocab_size", 1, BIG, 0, &c->vocab_size);
    if (!rc) rc = get_int(&r, "d_model", 1, 1 << 16, 0, &c->d_model);
    if (!rc) rc = get_int(&r, "n_layers", 1, 4096, 0, &c->n_layers);
    if (!rc) rc = get_int(&r, "pad_token_id", 0, BIG, 0, &c->pad_token_id);
    if (!rc) rc = get_enum(&r, "pooling", POOL_NAMES, -1, &c->pooling);
    if (!rc) {
        const cJSON *p = item(&r, "prefix");
        if (p && (!cJSON_IsString(p) || strlen(p->valuestring) >= sizeof c->prefix))
            rc = sl_fail(err, SL_EINPUT, "%s: key 'prefix' must be a string of under %zu characters", d->path,
                         sizeof c->prefix);
        else if (p)
            strcpy(c->prefix, p->valuestring);
    }
    if (!rc && arch_known)
        rc = c->arch == ARCH_MAMBA ? parse_mamba(&r, c) : c->arch == ARCH_MAMBA2 ? parse_mamba2(&r, c) : parse_transformer(&r, c);
    if (!rc && r.n_missing)
        rc = sl_fail(err, SL_EINPUT, "%s: %s %s; add %s to config.json", d->path,
                     r.n_missing == 1 ? "missing key" : "missing keys", r.missing, r.n_missing == 1 ? "it" : "them");
    if (!rc && c->pad_token_id >= c->vocab_size)
        rc = sl_fail(err, SL_EINPUT, "%s: pad_token_id %d is not below vocab_size %d", d->path, c->pad_token_id,
                     c->vocab_size);
    cJSON_Delete(root);
    return rc;
}

int sl_config_parse(sl_config *c, const char *path, const char *text, sl_error *err)
{
    sl_config_doc d;
    memset(c, 0, sizeof *c);
    int rc = sl_config_doc_parse(&d, path, text, err);
    if (rc) return rc;
    rc = sl_config_resolve(c, &d, NULL, NULL, err);
    sl_config_doc_free(&d);
    return rc;
}

int sl_config_load(sl_config *c, const char *path, sl_error *err)
{
    sl_config_doc d;
    memset(c, 0, sizeof *c);
    int rc = sl_config_doc_load(&d, path, err);
    if (rc) return rc;
    rc = sl_config_resolve(c, &d, NULL, NULL, err);
    sl_config_doc_free(&d);
    return rc;
}
