/* config.json in the formats users have (design.md section 2.0): seqlens's
 * own keys, mamba_ssm's MambaConfig as save_pretrained writes it, and
 * Hugging Face's MambaConfig; each is put into seqlens's keys, with where
 * each value came from. Keys seqlens needs that such a file lacks are added
 * to the same file by the user and read as seqlens's own. */
#include "core/config.h"
#include "core/textfile.h"

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

static int refuse_if(src *s, int bad, const char *what)
{
    return bad ? sl_fail(s->err, SL_EINPUT, "%s: %s is not supported", s->d->path, what) : SL_OK;
}

#define TRY(x) do { int rc_ = (x); if (rc_) return rc_; } while (0)

/* mamba_ssm/models/config_mamba.py MambaConfig (rms_norm True), and the
 * Mamba block's own defaults (mamba_ssm/modules/mamba_simple.py) for what
 * ssm_cfg omits. */
static int mamba_ssm(src *s)
{
    const char *L = "mamba_ssm";
    const cJSON *ssm = cJSON_GetObjectItemCaseSensitive(s->root, "ssm_cfg");
    if (ssm && !cJSON_IsObject(ssm)) return sl_fail(s->err, SL_EINPUT, "%s: 'ssm_cfg' must be an object", s->d->path);
    const cJSON *layer = cJSON_GetObjectItemCaseSensitive(ssm, "layer");
    if (layer && !(cJSON_IsString(layer) && !strcmp(layer->valuestring, "Mamba1")))
        return sl_fail(s->err, SL_EINPUT, "%s: ssm_cfg.layer %s is not supported (seqlens reads \"Mamba1\")", s->d->path,
                       cJSON_IsString(layer) ? layer->valuestring : "(not a string)");
    const cJSON *dmlp = cJSON_GetObjectItemCaseSensitive(s->root, "d_intermediate");
    TRY(refuse_if(s, cJSON_IsNumber(dmlp) && dmlp->valuedouble != 0, "d_intermediate > 0 (an MLP after each block)"));
    const cJSON *attn = cJSON_GetObjectItemCaseSensitive(s->root, "attn_layer_idx");
    TRY(refuse_if(s, cJSON_GetArraySize(attn) > 0, "attn_layer_idx (attention layers in a Mamba stack)"));
    cJSON *mamba = cJSON_CreateString("mamba"), *d16 = cJSON_CreateNumber(16), *d4 = cJSON_CreateNumber(4),
          *d2 = cJSON_CreateNumber(2);
    int rc = !mamba || !d16 || !d4 || !d2 ? sl_fail(s->err, SL_ERUNTIME, "out of memory") : SL_OK;
    if (!rc) rc = put(s, "arch", cJSON_Duplicate(mamba, 0), "config (mamba_ssm's MambaConfig)");
    if (!rc) rc = translate(s, s->root, "", "n_layer", "n_layers", NULL, L);
    if (!rc) rc = translate(s, ssm, "ssm_cfg.", "d_state", "d_state", d16, L);
    if (!rc) rc = translate(s, ssm, "ssm_cfg.", "d_conv", "d_conv", d4, L);
    if (!rc) rc = translate(s, ssm, "ssm_cfg.", "expand", "expand", d2, L);
    if (!rc) rc = dt_rank(s, ssm, "ssm_cfg.", "dt_rank", L);
    cJSON_Delete(mamba);
    cJSON_Delete(d16);
    cJSON_Delete(d4);
    cJSON_Delete(d2);
    if (rc) return rc;
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

/* transformers' models/mamba/configuration_mamba.py */
static int hugging_face(src *s)
{
    const char *L = "Hugging Face";
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(s->root, "model_type");
    if (!cJSON_IsString(type) || strcmp(type->valuestring, "mamba"))
        return sl_fail(s->err, SL_EINPUT, "%s: model_type %s is not supported (seqlens reads \"mamba\")", s->d->path,
                       cJSON_IsString(type) ? type->valuestring : "(not a string)");
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
    /* checked against the tensors (models/layout.c) when given */
    static const char *const BIASES[] = {"use_bias", "use_conv_bias"};
    for (int i = 0; !rc && i < 2; i++) {
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(s->root, BIASES[i]);
        if (b && !cJSON_IsBool(b)) rc = sl_fail(s->err, SL_EINPUT, "%s: '%s' must be true or false", s->d->path, BIASES[i]);
        else rc = translate(s, s->root, "", BIASES[i], BIASES[i], NULL, L);
    }
    /* MambaRMSNorm is the only norm Hugging Face's Mamba has */
    if (!rc) rc = put(s, "norm", cJSON_CreateString("rms"), "Hugging Face's MambaRMSNorm");
    cJSON_Delete(d16);
    cJSON_Delete(d4);
    cJSON_Delete(d2);
    cJSON_Delete(eps);
    cJSON_Delete(pad);
    return rc;
}

int sl_config_doc_parse(sl_config_doc *d, const char *path, const char *text, sl_error *err)
{
    memset(d, 0, sizeof *d);
    snprintf(d->path, sizeof d->path, "%s", path);
    cJSON *root = cJSON_Parse(text);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return sl_fail(err, SL_EINPUT, "%s: not a JSON object", path);
    }
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
