/* config.json in the formats users have (design.md section 2.0): seqlens's
 * own keys, mamba_ssm's MambaConfig as save_pretrained writes it (Mamba1 or
 * Mamba2 layers), and Hugging Face's MambaConfig and Mamba2Config; each is put into seqlens's keys, with where
 * each value came from. Keys seqlens needs that such a file lacks are added
 * to the same file by the user and read as seqlens's own. */
#include "core/config.h"
#include "core/textfile.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* seqlens's own keys, read verbatim in every format */
static const char *const OWN_KEYS[] = {
    "arch", "vocab_size", "d_model", "n_layers", "pad_token_id", "pooling", "prefix", "names", "d_state",
    "d_conv", "expand", "dt_rank", "norm", "norm_eps", "n_heads", "d_ff", "norm_first", "activation",
    "positional", "max_len", "rope_base", "final_norm", "layer_norm_eps", "causal", "embed_scale", "headdim", "ngroups",
    "dt_limit", "D_has_hdim", "norm_before_gate", "rmsnorm", "gated_norm_eps", NULL};

typedef struct {
    sl_config_doc *d;
    const cJSON *root;
    sl_error *err;
} src;

/* A key in seqlens's terms; a second value for the same key (the file's own
 * name and a translated one) must agree with the first. */
static int put(src *s, const char *key, cJSON *v, const char *origin)
{
    if (!v) return sl_fail(s->err, SL_ERUNTIME, "out of memory");
    const cJSON *had = cJSON_GetObjectItemCaseSensitive(s->d->keys, key);
    if (had) {
        int same = cJSON_Compare(had, v, 1);
        const cJSON *o = cJSON_GetObjectItemCaseSensitive(s->d->origin, key);
        char *a = cJSON_PrintUnformatted(had), *b = cJSON_PrintUnformatted(v);
        if (!same)
            sl_fail(s->err, SL_EINPUT, "%s: %s gives '%s' = %s but %s gives %s: they must agree", s->d->path,
                    o ? o->valuestring : "the file", key, a ? a : "?", origin, b ? b : "?");
        free(a);
        free(b);
        cJSON_Delete(v);
        return same ? SL_OK : SL_EINPUT;
    }
    cJSON_AddItemToObject(s->d->keys, key, v);
    cJSON_AddItemToObject(s->d->origin, key, cJSON_CreateString(origin));
    return SL_OK;
}

/* The file's key `from` (in object `in`) as seqlens's `key`, or `def` (a
 * library default, NULL for none) when the file omits it. */
static int translate(src *s, const cJSON *in, const char *in_name, const char *from, const char *key,
                     const cJSON *def, const char *lib)
{
    char origin[200];
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(in, from);
    if (v) snprintf(origin, sizeof origin, "config (%s%s)", in_name, from);
    else if (def) snprintf(origin, sizeof origin, "%s's default (config.json has no '%s%s')", lib, in_name, from);
    else return SL_OK;
    return put(s, key, cJSON_Duplicate(v ? v : def, 1), origin);
}

static int own_keys(src *s)
{
    for (int i = 0; OWN_KEYS[i]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(s->root, OWN_KEYS[i]);
        if (v && put(s, OWN_KEYS[i], cJSON_Duplicate(v, 1), "config")) return s->err->code;
    }
    return SL_OK;
}

/* dt_rank "auto" is ceil(d_model / 16) in both libraries */
static int dt_rank(src *s, const cJSON *in, const char *in_name, const char *from, const char *lib)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(in, from);
    if (v && !cJSON_IsString(v)) return translate(s, in, in_name, from, "dt_rank", NULL, lib);
    if (v && strcmp(v->valuestring, "auto"))
        return sl_fail(s->err, SL_EINPUT, "%s: '%s%s' must be an integer or \"auto\"", s->d->path, in_name, from);
    const cJSON *dm = cJSON_GetObjectItemCaseSensitive(s->d->keys, "d_model");
    if (!cJSON_IsNumber(dm) || !(dm->valuedouble >= 1 && dm->valuedouble <= 1 << 16)) return SL_OK; /* reported later */
    char origin[200];
    if (v) snprintf(origin, sizeof origin, "config (%s%s \"auto\" = ceil(d_model / 16))", in_name, from);
    else snprintf(origin, sizeof origin, "%s's default (\"auto\" = ceil(d_model / 16))", lib);
    return put(s, "dt_rank", cJSON_CreateNumber(ceil(dm->valuedouble / 16)), origin);
}

/* dt_limit as Python writes a (lo, hi) pair: numbers, hi possibly infinite
 * (bare Infinity, read as 1e999 by json_text below, or transformers 5's
 * {"__float__": "Infinity"}); put as seqlens's [lo, hi] with "inf". */
static int limit_pair(src *s, const cJSON *in, const char *in_name, const char *from)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(in, from);
    if (!v) return SL_OK;
    cJSON *pair = cJSON_CreateArray();
    if (!pair) return sl_fail(s->err, SL_ERUNTIME, "out of memory");
    int ok = cJSON_IsArray(v) && cJSON_GetArraySize(v) == 2;
    for (int k = 0; ok && k < 2; k++) {
        const cJSON *e = cJSON_GetArrayItem(v, k);
        const cJSON *f = cJSON_IsObject(e) ? cJSON_GetObjectItemCaseSensitive(e, "__float__") : NULL;
        if (cJSON_IsNumber(e) && isinf(e->valuedouble) && e->valuedouble > 0) cJSON_AddItemToArray(pair, cJSON_CreateString("inf"));
        else if (cJSON_IsNumber(e)) cJSON_AddItemToArray(pair, cJSON_CreateNumber(e->valuedouble));
        else if (cJSON_IsString(f) && (!strcmp(f->valuestring, "Infinity") || !strcmp(f->valuestring, "inf")))
            cJSON_AddItemToArray(pair, cJSON_CreateString("inf"));
        else ok = 0;
    }
    if (!ok) {
        cJSON_Delete(pair);
        return sl_fail(s->err, SL_EINPUT, "%s: '%s%s' must be a pair [lo, hi] of numbers (hi may be Infinity)", s->d->path,
                       in_name, from);
    }
    char origin[200];
    snprintf(origin, sizeof origin, "config (%s%s)", in_name, from);
    return put(s, "dt_limit", pair, origin);
}

/* A boolean the file must give as one; absent: the library's default. */
static int translate_bool(src *s, const cJSON *in, const char *in_name, const char *from, const char *key, int def,
                          const char *lib)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(in, from);
    if (v && !cJSON_IsBool(v)) return sl_fail(s->err, SL_EINPUT, "%s: '%s%s' must be true or false", s->d->path, in_name, from);
    cJSON *d = cJSON_CreateBool(def);
    int rc = d ? translate(s, in, in_name, from, key, def < 0 ? NULL : d, lib) : sl_fail(s->err, SL_ERUNTIME, "out of memory");
    cJSON_Delete(d);
    return rc;
}

static int refuse_if(src *s, int bad, const char *what)
{
    return bad ? sl_fail(s->err, SL_EINPUT, "%s: %s is not supported", s->d->path, what) : SL_OK;
}

#define TRY(x) do { int rc_ = (x); if (rc_) return rc_; } while (0)

static int mamba_ssm_norm(src *s);

/* ssm_cfg of a Mamba2 layer, with mamba_ssm/modules/mamba2.py's defaults
 * for what it omits. */
static int mamba2_ssm_cfg(src *s, const cJSON *ssm)
{
    const char *L = "mamba_ssm";
    static const struct {
        const char *key;
        double def;
    } INTS[] = {{"d_state", 128}, {"d_conv", 4}, {"expand", 2}, {"headdim", 64}, {"ngroups", 1}};
    for (size_t i = 0; i < sizeof INTS / sizeof *INTS; i++) {
        cJSON *def = cJSON_CreateNumber(INTS[i].def);
        int rc = def ? translate(s, ssm, "ssm_cfg.", INTS[i].key, INTS[i].key, def, L) : sl_fail(s->err, SL_ERUNTIME, "out of memory");
        cJSON_Delete(def);
        TRY(rc);
    }
    TRY(translate_bool(s, ssm, "ssm_cfg.", "D_has_hdim", "D_has_hdim", 0, L));
    TRY(translate_bool(s, ssm, "ssm_cfg.", "rmsnorm", "rmsnorm", 1, L));
    TRY(translate_bool(s, ssm, "ssm_cfg.", "norm_before_gate", "norm_before_gate", 0, L));
    /* checked against the tensors (models/layout.c) when given */
    TRY(translate_bool(s, ssm, "ssm_cfg.", "bias", "use_bias", -1, L));
    TRY(translate_bool(s, ssm, "ssm_cfg.", "conv_bias", "use_conv_bias", -1, L));
    TRY(limit_pair(s, ssm, "ssm_cfg.", "dt_limit"));
    TRY(put(s, "gated_norm_eps", cJSON_CreateNumber(1e-5), "mamba_ssm's Mamba2 (its RMSNormGated's eps is fixed at 1e-5)"));
    /* d_ssm < d_inner puts a gated MLP beside the SSM (d_mlp > 0) */
    const cJSON *dssm = cJSON_GetObjectItemCaseSensitive(ssm, "d_ssm");
    const cJSON *dm = cJSON_GetObjectItemCaseSensitive(s->d->keys, "d_model"), *ex = cJSON_GetObjectItemCaseSensitive(s->d->keys, "expand");
    if (dssm && !cJSON_IsNull(dssm) && !(cJSON_IsNumber(dssm) && cJSON_IsNumber(dm) && cJSON_IsNumber(ex) &&
                                         dssm->valuedouble == dm->valuedouble * ex->valuedouble))
        return sl_fail(s->err, SL_EINPUT,
                       "%s: ssm_cfg.d_ssm other than d_inner = expand * d_model (d_mlp > 0: a gated MLP beside the SSM) is not "
                       "supported", s->d->path);
    return SL_OK;
}

/* mamba_ssm/models/config_mamba.py MambaConfig (rms_norm True), and the
 * Mamba block's own defaults (mamba_ssm/modules/mamba_simple.py) for what
 * ssm_cfg omits. */
static int mamba_ssm(src *s)
{
    const char *L = "mamba_ssm";
    const cJSON *ssm = cJSON_GetObjectItemCaseSensitive(s->root, "ssm_cfg");
    if (ssm && !cJSON_IsObject(ssm)) return sl_fail(s->err, SL_EINPUT, "%s: 'ssm_cfg' must be an object", s->d->path);
    const cJSON *layer = cJSON_GetObjectItemCaseSensitive(ssm, "layer");
    int m2 = cJSON_IsString(layer) && !strcmp(layer->valuestring, "Mamba2");
    if (layer && !m2 && !(cJSON_IsString(layer) && !strcmp(layer->valuestring, "Mamba1")))
        return sl_fail(s->err, SL_EINPUT, "%s: ssm_cfg.layer %s is not supported (seqlens reads \"Mamba1\" and \"Mamba2\")",
                       s->d->path, cJSON_IsString(layer) ? layer->valuestring : "(not a string)");
    const cJSON *dmlp = cJSON_GetObjectItemCaseSensitive(s->root, "d_intermediate");
    TRY(refuse_if(s, cJSON_IsNumber(dmlp) && dmlp->valuedouble != 0, "d_intermediate > 0 (an MLP after each block)"));
    const cJSON *attn = cJSON_GetObjectItemCaseSensitive(s->root, "attn_layer_idx");
    TRY(refuse_if(s, cJSON_GetArraySize(attn) > 0, "attn_layer_idx (attention layers in a Mamba stack)"));
    cJSON *mamba = cJSON_CreateString(m2 ? "mamba2" : "mamba"), *d16 = cJSON_CreateNumber(16), *d4 = cJSON_CreateNumber(4),
          *d2 = cJSON_CreateNumber(2);
    int rc = !mamba || !d16 || !d4 || !d2 ? sl_fail(s->err, SL_ERUNTIME, "out of memory") : SL_OK;
    if (!rc) rc = put(s, "arch", cJSON_Duplicate(mamba, 0), m2 ? "config (ssm_cfg.layer)" : "config (mamba_ssm's MambaConfig)");
    if (!rc) rc = translate(s, s->root, "", "n_layer", "n_layers", NULL, L);
    if (!rc && m2) {
        cJSON_Delete(mamba);
        cJSON_Delete(d16);
        cJSON_Delete(d4);
        cJSON_Delete(d2);
        TRY(mamba2_ssm_cfg(s, ssm));
        return mamba_ssm_norm(s);
    }
    if (!rc) rc = translate(s, ssm, "ssm_cfg.", "d_state", "d_state", d16, L);
    if (!rc) rc = translate(s, ssm, "ssm_cfg.", "d_conv", "d_conv", d4, L);
    if (!rc) rc = translate(s, ssm, "ssm_cfg.", "expand", "expand", d2, L);
    if (!rc) rc = dt_rank(s, ssm, "ssm_cfg.", "dt_rank", L);
    cJSON_Delete(mamba);
    cJSON_Delete(d16);
    cJSON_Delete(d4);
    cJSON_Delete(d2);
    if (rc) return rc;
    return mamba_ssm_norm(s);
}

/* MambaConfig's rms_norm (the block norms and norm_f) and vocabulary. */
static int mamba_ssm_norm(src *s)
{
    const cJSON *rms = cJSON_GetObjectItemCaseSensitive(s->root, "rms_norm");
    if (rms && !cJSON_IsBool(rms)) return sl_fail(s->err, SL_EINPUT, "%s: 'rms_norm' must be true or false", s->d->path);
    TRY(put(s, "norm", cJSON_CreateString(!rms || cJSON_IsTrue(rms) ? "rms" : "layer"),
            rms ? "config (rms_norm)" : "mamba_ssm's default (config.json has no 'rms_norm')"));
    /* MambaLMHeadModel pads the embedding to pad_vocab_size_multiple rows;
     * a MixerModel built directly does not: either matches. */
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(s->root, "vocab_size");
    const cJSON *mult = cJSON_GetObjectItemCaseSensitive(s->root, "pad_vocab_size_multiple");
    double m = cJSON_IsNumber(mult) ? mult->valuedouble : 8;
    if (cJSON_IsNumber(v) && m >= 1 && m <= 1 << 20 && v->valuedouble >= 1 && v->valuedouble <= 1 << 30)
        s->d->vocab_padded = (int)(ceil(v->valuedouble / floor(m)) * floor(m));
    return SL_OK;
}

/* The file's key as a number or the library's default. */
static int translate_num(src *s, const char *from, const char *key, double def, const char *lib)
{
    cJSON *d = cJSON_CreateNumber(def);
    int rc = d ? translate(s, s->root, "", from, key, d, lib) : sl_fail(s->err, SL_ERUNTIME, "out of memory");
    cJSON_Delete(d);
    return rc;
}

static int hf_biases(src *s)
{
    /* checked against the tensors (models/layout.c) when given */
    static const char *const BIASES[] = {"use_bias", "use_conv_bias"};
    for (int i = 0; i < 2; i++) {
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(s->root, BIASES[i]);
        if (b && !cJSON_IsBool(b)) return sl_fail(s->err, SL_EINPUT, "%s: '%s' must be true or false", s->d->path, BIASES[i]);
        TRY(translate(s, s->root, "", BIASES[i], BIASES[i], NULL, "Hugging Face"));
    }
    return SL_OK;
}

/* transformers' models/mamba2/configuration_mamba2.py (5.x) and the
 * Mamba2Mixer: the gated norm always there, the gate before it, grouped
 * as mamba_ssm's with n_groups > 1; layer_norm_epsilon for both norms. */
static int hugging_face_mamba2(src *s)
{
    const char *L = "Hugging Face";
    TRY(put(s, "arch", cJSON_CreateString("mamba2"), "config (model_type)"));
    TRY(translate(s, s->root, "", "hidden_size", "d_model", NULL, L));
    TRY(translate(s, s->root, "", "num_hidden_layers", "n_layers", NULL, L));
    TRY(translate_num(s, "state_size", "d_state", 128, L));
    TRY(translate_num(s, "conv_kernel", "d_conv", 4, L));
    TRY(translate_num(s, "expand", "expand", 2, L));
    TRY(translate_num(s, "head_dim", "headdim", 64, L));
    TRY(translate_num(s, "n_groups", "ngroups", 8, L));
    TRY(translate_num(s, "layer_norm_epsilon", "norm_eps", 1e-5, L));
    TRY(translate_num(s, "layer_norm_epsilon", "gated_norm_eps", 1e-5, L));
    TRY(translate_num(s, "pad_token_id", "pad_token_id", 1, L));
    TRY(limit_pair(s, s->root, "", "time_step_limit"));
    TRY(hf_biases(s));
    TRY(put(s, "norm", cJSON_CreateString("rms"), "Hugging Face's Mamba2RMSNorm"));
    TRY(put(s, "rmsnorm", cJSON_CreateBool(1), "Hugging Face's Mamba2Mixer (its gated norm is always there)"));
    TRY(put(s, "norm_before_gate", cJSON_CreateBool(0), "Hugging Face's MambaRMSNormGated (the gate before the norm)"));
    /* num_heads is d_inner / head_dim in a working model */
    const cJSON *nh = cJSON_GetObjectItemCaseSensitive(s->root, "num_heads");
    const cJSON *hd = cJSON_GetObjectItemCaseSensitive(s->d->keys, "headdim"), *ex = cJSON_GetObjectItemCaseSensitive(s->d->keys, "expand");
    const cJSON *dm = cJSON_GetObjectItemCaseSensitive(s->d->keys, "d_model");
    if (nh && cJSON_IsNumber(hd) && cJSON_IsNumber(ex) && cJSON_IsNumber(dm) &&
        !(cJSON_IsNumber(nh) && nh->valuedouble * hd->valuedouble == ex->valuedouble * dm->valuedouble))
        return sl_fail(s->err, SL_EINPUT, "%s: num_heads times head_dim must be expand * hidden_size (%g * %g)", s->d->path,
                       ex->valuedouble, dm->valuedouble);
    /* transformers 4's Mamba2 normalised the gated norm over all of d_inner
     * whatever n_groups (mamba_ssm and transformers 5 normalise per group) */
    const cJSON *ng = cJSON_GetObjectItemCaseSensitive(s->d->keys, "ngroups");
    const char *ver = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(s->root, "transformers_version"));
    if (cJSON_IsNumber(ng) && ng->valuedouble > 1 && ver && atoi(ver) < 5)
        sl_warn("%s: written by transformers %s, whose Mamba2 may normalise the gated norm over all channels; seqlens normalises "
                "each of the n_groups %g groups, as mamba_ssm and transformers 5 do: check the logits with seqlens verify",
                s->d->path, ver, ng->valuedouble);
    return SL_OK;
}

/* transformers' models/mamba/configuration_mamba.py */
static int hugging_face(src *s)
{
    const char *L = "Hugging Face";
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(s->root, "model_type");
    if (cJSON_IsString(type) && !strcmp(type->valuestring, "mamba2")) return hugging_face_mamba2(s);
    if (!cJSON_IsString(type) || strcmp(type->valuestring, "mamba"))
        return sl_fail(s->err, SL_EINPUT, "%s: model_type %s is not supported (seqlens reads \"mamba\" and \"mamba2\")",
                       s->d->path, cJSON_IsString(type) ? type->valuestring : "(not a string)");
    cJSON *d16 = cJSON_CreateNumber(16), *d4 = cJSON_CreateNumber(4), *d2 = cJSON_CreateNumber(2),
          *eps = cJSON_CreateNumber(1e-5), *pad = cJSON_CreateNumber(0);
    int rc = !d16 || !d4 || !d2 || !eps || !pad ? sl_fail(s->err, SL_ERUNTIME, "out of memory") : SL_OK;
    if (!rc) rc = put(s, "arch", cJSON_CreateString("mamba"), "config (model_type)");
    if (!rc) rc = translate(s, s->root, "", "hidden_size", "d_model", NULL, L);
    if (!rc) rc = translate(s, s->root, "", "num_hidden_layers", "n_layers", NULL, L);
    if (!rc) rc = translate(s, s->root, "", "state_size", "d_state", d16, L);
    if (!rc) rc = translate(s, s->root, "", "conv_kernel", "d_conv", d4, L);
    if (!rc) rc = translate(s, s->root, "", "expand", "expand", d2, L);
    if (!rc) rc = translate(s, s->root, "", "layer_norm_epsilon", "norm_eps", eps, L);
    if (!rc) rc = translate(s, s->root, "", "pad_token_id", "pad_token_id", pad, L);
    if (!rc) rc = dt_rank(s, s->root, "", "time_step_rank", L);
    if (!rc) rc = hf_biases(s);
    /* MambaRMSNorm is the only norm Hugging Face's Mamba has */
    if (!rc) rc = put(s, "norm", cJSON_CreateString("rms"), "Hugging Face's MambaRMSNorm");
    cJSON_Delete(d16);
    cJSON_Delete(d4);
    cJSON_Delete(d2);
    cJSON_Delete(eps);
    cJSON_Delete(pad);
    return rc;
}

/* Python's json writes float('inf') as a bare Infinity (mamba_ssm's
 * save_pretrained of a dt_limit, older transformers' time_step_limit), which
 * is not JSON: outside strings it is read as 1e999 (strtod's infinity).
 * One pass over the text; NULL when out of memory. */
static char *json_text(const char *text)
{
    size_t n = strlen(text);
    char *out = malloc(n + 1), *o = out;
    if (!out) return NULL;
    int in_string = 0;
    for (const char *p = text; *p;) {
        if (in_string) {
            if (*p == '\\' && p[1]) *o++ = *p++;
            else if (*p == '"') in_string = 0;
            *o++ = *p++;
        } else if (*p == '"') {
            in_string = 1;
            *o++ = *p++;
        } else if (!strncmp(p, "Infinity", 8) && (p == text || !(isalnum((unsigned char)p[-1]) || p[-1] == '_'))) {
            memcpy(o, "1e999", 5);
            o += 5;
            p += 8;
        } else
            *o++ = *p++;
    }
    *o = 0;
    return out;
}

static int by_key(const void *a, const void *b)
{
    return strcmp((*(const cJSON *const *)a)->string, (*(const cJSON *const *)b)->string);
}

/* A key that appears twice in one object of v, found by sorting each
 * object's keys (n log n: a config may hold many); NULL if none. cJSON
 * bounds the nesting (CJSON_NESTING_LIMIT), and so this recursion. */
static const char *repeated_key(const cJSON *v, int *oom)
{
    int n = 0;
    const cJSON *c;
    for (c = v->child; c; c = c->next) n++;
    const cJSON **keys = cJSON_IsObject(v) && n > 1 ? malloc((size_t)n * sizeof *keys) : NULL;
    if (cJSON_IsObject(v) && n > 1 && !keys) {
        *oom = 1;
        return NULL;
    }
    const char *twice = NULL;
    if (keys) {
        int k = 0;
        for (c = v->child; c; c = c->next) keys[k++] = c;
        qsort(keys, (size_t)n, sizeof *keys, by_key);
        for (k = 1; k < n && !twice; k++)
            if (!strcmp(keys[k - 1]->string, keys[k]->string)) twice = keys[k]->string;
        free(keys);
    }
    for (c = v->child; c && !twice && !*oom; c = c->next) twice = repeated_key(c, oom);
    return twice;
}

cJSON *sl_config_json(const char *path, const char *text, sl_error *err)
{
    size_t nul = sl_json_escaped_nul_at(text, strlen(text));
    if (text[nul]) {
        sl_fail(err, SL_EINPUT, "%s: byte %zu escapes a NUL character (\\u0000)", path, nul);
        return NULL;
    }
    char *clean = json_text(text);
    if (!clean) {
        sl_fail(err, SL_ERUNTIME, "out of memory");
        return NULL;
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(clean, &end, 0);
    while (root && end && isspace((unsigned char)*end)) end++;
    int after = root && end && *end;
    free(clean);
    if (!root || !cJSON_IsObject(root) || after) {
        cJSON_Delete(root);
        if (after) sl_fail(err, SL_EINPUT, "%s: text after the JSON object", path);
        else sl_fail(err, SL_EINPUT, "%s: not a JSON object", path);
        return NULL;
    }
    int oom = 0;
    const char *twice = repeated_key(root, &oom);
    if (oom || twice) {
        if (oom) sl_fail(err, SL_ERUNTIME, "out of memory");
        else sl_fail(err, SL_EINPUT, "%s: key '%.60s' appears twice in one object", path, twice);
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

int sl_config_doc_parse(sl_config_doc *d, const char *path, const char *text, sl_error *err)
{
    memset(d, 0, sizeof *d);
    snprintf(d->path, sizeof d->path, "%s", path);
    cJSON *root = sl_config_json(path, text, err);
    if (!root) return err->code;
    d->keys = cJSON_CreateObject();
    d->origin = cJSON_CreateObject();
    src s = {d, root, err};
    int rc = !d->keys || !d->origin ? sl_fail(err, SL_ERUNTIME, "out of memory") : SL_OK;
    int hf = cJSON_GetObjectItemCaseSensitive(root, "model_type") != NULL;
    int ms = !hf && (cJSON_GetObjectItemCaseSensitive(root, "ssm_cfg") || cJSON_GetObjectItemCaseSensitive(root, "n_layer"));
    d->format = hf ? "Hugging Face" : ms ? "mamba_ssm" : "seqlens";
    if (!rc) rc = own_keys(&s);
    if (!rc && hf) rc = hugging_face(&s);
    if (!rc && ms) rc = mamba_ssm(&s);
    if (!rc) {
        d->names = cJSON_GetObjectItemCaseSensitive(d->keys, "names");
        const cJSON *e;
        if (d->names && !cJSON_IsObject(d->names))
            rc = sl_fail(err, SL_EINPUT, "%s: key 'names' must be an object {seqlens name: the file's name}", path);
        else if (d->names)
            cJSON_ArrayForEach(e, d->names) if (!rc && (!cJSON_IsString(e) || !e->valuestring[0] || !e->string[0]))
                rc = sl_fail(err, SL_EINPUT, "%s: names: '%s' must map to a non-empty string (a tensor name or prefix in the file)",
                             path, e->string);
    }
    cJSON_Delete(root);
    if (rc) sl_config_doc_free(d);
    return rc;
}

int sl_config_doc_load(sl_config_doc *d, const char *path, sl_error *err)
{
    char *text;
    memset(d, 0, sizeof *d);
    int rc = sl_read_text(path, 16u << 20, "a model config", &text, err);
    if (rc) return rc;
    rc = sl_config_doc_parse(d, path, text, err);
    free(text);
    return rc;
}

void sl_config_doc_free(sl_config_doc *d)
{
    cJSON_Delete(d->keys);
    cJSON_Delete(d->origin);
    d->keys = d->origin = NULL;
    d->names = NULL;
}
