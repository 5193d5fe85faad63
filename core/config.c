#include "core/config.h"
#include "core/textfile.h"

#include <math.h>

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const ARCH_NAMES[] = {"mamba", "transformer", NULL};
static const char *const POOL_NAMES[] = {"mean", "last", "cls", NULL};
static const char *const ACT_NAMES[] = {"gelu", "relu", NULL};
static const char *const POS_NAMES[] = {"none", "learned", "sinusoidal", "rope", NULL};
static const char *const NORM_NAMES[] = {"rms", "layer", NULL};

const char *sl_arch_name(int a) { return ARCH_NAMES[a]; }
const char *sl_pooling_name(int p) { return POOL_NAMES[p]; }
const char *sl_positional_name(int p) { return POS_NAMES[p]; }
const char *sl_norm_name(int n) { return NORM_NAMES[n]; }

typedef struct {
    const cJSON *root;
    const char *path;
    sl_error *err;
} reader;

/* Integer key in [lo, hi]; def < lo marks the key as required. */
static int get_int(reader *r, const char *key, int lo, int hi, int def, int *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r->root, key);
    if (!v) {
        if (def < lo) return sl_fail(r->err, SL_EINPUT, "%s: missing key '%s'", r->path, key);
        *out = def;
        return SL_OK;
    }
    double x = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (!cJSON_IsNumber(v) || (fabs(x) < 1e15 && x != floor(x)))
        return sl_fail(r->err, SL_EINPUT, "%s: key '%s' must be an integer", r->path, key);
    /* compared as doubles: no conversion of a value beyond int's range
     * (found by tests/fuzz/fuzz_config.c) */
    if (!(x >= lo && x <= hi))
        return sl_fail(r->err, SL_EINPUT, "%s: key '%s' = %.6g is out of range [%d, %d]", r->path, key, x, lo, hi);
    *out = (int)v->valuedouble;
    return SL_OK;
}

static int get_float(reader *r, const char *key, double lo, double hi, double def, float *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r->root, key);
    if (!v) { *out = (float)def; return SL_OK; }
    if (!cJSON_IsNumber(v))
        return sl_fail(r->err, SL_EINPUT, "%s: key '%s' must be a number", r->path, key);
    if (!(v->valuedouble > lo && v->valuedouble <= hi))
        return sl_fail(r->err, SL_EINPUT, "%s: key '%s' = %g is out of range (%g, %g]", r->path, key,
                       v->valuedouble, lo, hi);
    *out = (float)v->valuedouble;
    return SL_OK;
}

static int get_bool(reader *r, const char *key, int def, int *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r->root, key);
    if (!v) { *out = def; return SL_OK; }
    if (!cJSON_IsBool(v))
        return sl_fail(r->err, SL_EINPUT, "%s: key '%s' must be true or false", r->path, key);
    *out = cJSON_IsTrue(v);
    return SL_OK;
}

/* String key from a closed set; def < 0 marks it as required. */
static int get_enum(reader *r, const char *key, const char *const *names, int def, int *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r->root, key);
    if (!v) {
        if (def < 0) return sl_fail(r->err, SL_EINPUT, "%s: missing key '%s'", r->path, key);
        *out = def;
        return SL_OK;
    }
    if (cJSON_IsString(v))
        for (int i = 0; names[i]; i++)
            if (!strcmp(v->valuestring, names[i])) { *out = i; return SL_OK; }
    char allowed[256] = "";
    for (int i = 0; names[i]; i++)
        snprintf(allowed + strlen(allowed), sizeof allowed - strlen(allowed), "%s\"%s\"", i ? ", " : "", names[i]);
    return sl_fail(r->err, SL_EINPUT, "%s: key '%s' must be one of %s", r->path, key, allowed);
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

static int parse_transformer(reader *r, sl_config *c)
{
    TRY(get_int(r, "n_heads", 1, BIG, 0, &c->n_heads));
    TRY(get_int(r, "d_ff", 1, BIG, 0, &c->d_ff));
    TRY(get_bool(r, "norm_first", 0, &c->norm_first));
    TRY(get_enum(r, "activation", ACT_NAMES, ACT_RELU, &c->activation));
    TRY(get_enum(r, "positional", POS_NAMES, POS_NONE, &c->positional));
    TRY(get_int(r, "max_len", 1, BIG, 1 << 20, &c->max_len));
    TRY(get_float(r, "rope_base", 0, 1e12, 10000, &c->rope_base));
    TRY(get_bool(r, "final_norm", 0, &c->final_norm));
    TRY(get_float(r, "layer_norm_eps", 0, 1, 1e-5, &c->layer_norm_eps));
    TRY(get_bool(r, "causal", 0, &c->causal));
    TRY(get_float(r, "embed_scale", 0, 1e6, 1, &c->embed_scale));
    if (c->d_model % c->n_heads)
        return sl_fail(r->err, SL_EINPUT, "%s: d_model %d is not divisible by n_heads %d", r->path, c->d_model,
                       c->n_heads);
    c->d_head = c->d_model / c->n_heads;
    if (c->positional == POS_ROPE && c->d_head % 2)
        return sl_fail(r->err, SL_EINPUT, "%s: positional \"rope\" needs an even head dimension (d_model %d / n_heads %d = %d)",
                       r->path, c->d_model, c->n_heads, c->d_head);
    if (c->positional == POS_LEARNED && !cJSON_GetObjectItemCaseSensitive(r->root, "max_len"))
        return sl_fail(r->err, SL_EINPUT, "%s: positional \"learned\" needs key 'max_len'", r->path);
    return SL_OK;
}

int sl_config_parse(sl_config *c, const char *path, const char *text, sl_error *err)
{
    memset(c, 0, sizeof *c);
    cJSON *root = cJSON_Parse(text);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return sl_fail(err, SL_EINPUT, "%s: not a JSON object", path);
    }
    reader r = {root, path, err};
    int rc = get_enum(&r, "arch", ARCH_NAMES, -1, &c->arch);
    if (!rc) rc = get_int(&r, "vocab_size", 1, BIG, 0, &c->vocab_size);
    if (!rc) rc = get_int(&r, "d_model", 1, 1 << 16, 0, &c->d_model);
    if (!rc) rc = get_int(&r, "n_layers", 1, 4096, 0, &c->n_layers);
    if (!rc) rc = get_int(&r, "pad_token_id", 0, BIG, 0, &c->pad_token_id);
    if (!rc) rc = get_enum(&r, "pooling", POOL_NAMES, POOL_MEAN, &c->pooling);
    if (!rc && c->pad_token_id >= c->vocab_size)
        rc = sl_fail(err, SL_EINPUT, "%s: pad_token_id %d is not below vocab_size %d", path, c->pad_token_id,
                     c->vocab_size);
    if (!rc) {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "prefix");
        if (p && (!cJSON_IsString(p) || strlen(p->valuestring) >= sizeof c->prefix))
            rc = sl_fail(err, SL_EINPUT, "%s: key 'prefix' must be a string of under %zu characters", path,
                         sizeof c->prefix);
        else if (p)
            strcpy(c->prefix, p->valuestring);
    }
    if (!rc) rc = c->arch == ARCH_MAMBA ? parse_mamba(&r, c) : parse_transformer(&r, c);
    cJSON_Delete(root);
    return rc;
}

int sl_config_load(sl_config *c, const char *path, sl_error *err)
{
    char *text;
    int rc = sl_read_text(path, 16u << 20, "a model config", &text, err);
    if (rc) return rc;
    rc = sl_config_parse(c, path, text, err);
    free(text);
    return rc;
}
