/* Checkpoints as users save them (design.md sections 2.0-2.2): each model
 * in tests/fixtures/layouts/ (written by tests/reference/make_layout_fixtures.py
 * from real nn.TransformerEncoder modules and mamba_ssm / Hugging Face Mamba
 * state dicts) loads with no renaming and only the keys 2.1 requires, and
 * gives PyTorch's logits; the errors list every missing key, every missing
 * and unclaimed tensor with the fix, and an explicit key that disagrees. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "models/model.h"
#include "testing.h"

#define LAYOUTS "tests/fixtures/layouts"
#define SCRATCH "build/tests/cfg"

static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)len + 1);
    if (b && fread(b, 1, (size_t)len, f) != (size_t)len) len = 0;
    fclose(f);
    if (b) b[len] = 0;
    if (n) *n = (size_t)len;
    return b;
}

static void put(const char *path, const char *text, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(text, 1, n, f);
    fclose(f);
}

/* max relative error of the model's logits against expected.json's */
static double logit_error(const sl_model *m, const cJSON *exp)
{
    const cJSON *tokens = cJSON_GetObjectItem(exp, "tokens"), *lengths = cJSON_GetObjectItem(exp, "lengths"),
                *want = cJSON_GetObjectItem(exp, "logits");
    int n = cJSON_GetArraySize(want);
    float *got = calloc((size_t)n, sizeof *got), *ref = calloc((size_t)n, sizeof *ref);
    sl_error err = {0};
    sl_workspace *ws = sl_workspace_new(m, 64, &err);
    double e = 1e30;
    int ok = ws && got && ref;
    for (int i = 0; ok && i < n; i++) {
        const cJSON *row = cJSON_GetArrayItem(tokens, i);
        int32_t tok[64];
        int L = cJSON_GetArraySize(row);
        for (int k = 0; k < L && k < 64; k++) tok[k] = cJSON_GetArrayItem(row, k)->valueint;
        sl_example ex = {tok, cJSON_GetArrayItem(lengths, i)->valueint, i, 0, NULL};
        ref[i] = (float)cJSON_GetArrayItem(want, i)->valuedouble;
        ok = sl_forward(m, &ex, ws, NULL, &got[i], &err) == SL_OK;
    }
    if (ok) e = rel_err(got, ref, (size_t)n);
    sl_workspace_free(ws);
    free(got);
    free(ref);
    return e;
}

static cJSON *expected(const char *dir)
{
    char path[512];
    snprintf(path, sizeof path, "%s/expected.json", dir);
    char *t = slurp(path, NULL);
    cJSON *j = t ? cJSON_Parse(t) : NULL;
    free(t);
    return j;
}

/* Loads dir and compares its logits with PyTorch's; returns the load's rc. */
static int load_and_compare(const char *dir, const char *exp_dir, sl_error *err)
{
    sl_model m;
    cJSON *exp = expected(exp_dir);
    int rc = sl_model_load(&m, dir, err);
    const cJSON *pending = cJSON_GetObjectItem(exp, "pending");
    if (rc && cJSON_IsString(pending) && strstr(err->msg, pending->valuestring)) {
        /* LayerNorm Mamba and embed_scale reach the compute cores in a
         * parallel change (issue 17, helper "var"); until then their
         * fixtures must get exactly this refusal and nothing else. Once the
         * refusal is gone the logits below are checked. */
        CHECK(rc == SL_EINPUT, "%s: pending refusal has rc %d", dir, rc);
    } else {
        CHECK(rc == SL_OK, "%s does not load: %s", dir, err->msg);
        if (!rc) {
            double e = logit_error(&m, exp);
            CHECK(e <= 1e-5, "%s: logits differ from PyTorch's by %.2e relative", dir, e);
        }
    }
    sl_model_free(&m);
    cJSON_Delete(exp);
    return rc;
}

static void every_fixture(void)
{
    DIR *d = opendir(LAYOUTS);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        char dir[512];
        snprintf(dir, sizeof dir, LAYOUTS "/%s", e->d_name);
        sl_error err = {0};
        load_and_compare(dir, dir, &err);
        n++;
    }
    if (d) closedir(d);
    CHECK(n >= 6, "only %d layout fixtures", n);
}

/* A copy of fixture `from` as `name`, its config.json replaced by cfg (NULL:
 * kept) and every tensor name passed through rename (NULL: kept). */
static void variant(const char *name, const char *from, const char *cfg, void (*rename)(char *name, size_t n), char *dir,
                    size_t dn)
{
    char path[600], cmd[1400];
    snprintf(dir, dn, SCRATCH "/%s", name);
    snprintf(cmd, sizeof cmd, "rm -rf %s && mkdir -p %s && cp " LAYOUTS "/%s/config.json %s/", dir, dir, from, dir);
    if (system(cmd)) return;
    if (cfg) {
        snprintf(path, sizeof path, "%s/config.json", dir);
        put(path, cfg, strlen(cfg));
    }
    snprintf(path, sizeof path, LAYOUTS "/%s/model.safetensors", from);
    size_t n;
    char *b = slurp(path, &n);
    if (!b) return;
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = (hl << 8) | (unsigned char)b[i];
    char *h = malloc(hl + 1);
    memcpy(h, b + 8, hl);
    h[hl] = 0;
    cJSON *j = cJSON_Parse(h), *out = cJSON_CreateObject();
    for (cJSON *e = j ? j->child : NULL; e; e = e->next) {
        char nm[256];
        snprintf(nm, sizeof nm, "%s", e->string);
        if (rename && strcmp(nm, "__metadata__")) rename(nm, sizeof nm);
        cJSON_AddItemToObject(out, nm, cJSON_Duplicate(e, 1));
    }
    char *text = cJSON_PrintUnformatted(out);
    size_t tl = strlen(text), pad = (8 - tl % 8) % 8;
    FILE *f;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if ((f = fopen(path, "wb"))) {
        uint64_t nl = tl + pad;
        unsigned char len[8];
        for (int i = 0; i < 8; i++) len[i] = (unsigned char)(nl >> (8 * i));
        fwrite(len, 1, 8, f);
        fwrite(text, 1, tl, f);
        for (size_t i = 0; i < pad; i++) fputc(' ', f);
        fwrite(b + 8 + hl, 1, n - 8 - hl, f);
        fclose(f);
    }
    free(text);
    cJSON_Delete(out);
    cJSON_Delete(j);
    free(h);
    free(b);
}

static void replace_in(char *name, size_t n, const char *from, const char *to)
{
    char *p = strstr(name, from);
    if (!p) return;
    char rest[256];
    snprintf(rest, sizeof rest, "%s", p + strlen(from));
    snprintf(p, n - (size_t)(p - name), "%s%s", to, rest);
}

static void blocks(char *name, size_t n) { replace_in(name, n, "backbone.layers.", "backbone.blocks."); }
static void no_pos_name(char *name, size_t n) { replace_in(name, n, "pos_emb.", "where."); }

static int expect_error(const char *dir, const char *what, const char *const *needles, const char *const *absent)
{
    sl_model m;
    sl_error err = {0};
    int rc = sl_model_load(&m, dir, &err);
    sl_model_free(&m);
    CHECK(rc == SL_EINPUT, "%s: rc %d, want 2 (%s)", what, rc, err.msg);
    CHECK(!strchr(err.msg, '\n'), "%s: message has several lines: %s", what, err.msg);
    for (int i = 0; needles && needles[i]; i++)
        CHECK(strstr(err.msg, needles[i]) != NULL, "%s: '%s' lacks '%s'", what, err.msg, needles[i]);
    for (int i = 0; absent && absent[i]; i++)
        CHECK(strstr(err.msg, absent[i]) == NULL, "%s: '%s' has '%s'", what, err.msg, absent[i]);
    return rc;
}

static void missing_keys(void)
{
    char dir[512];
    variant("nokeys", "tf_encoder_sin", "{}", NULL, dir, sizeof dir);
    /* every key the shapes cannot tell, in one message; none they can */
    const char *want[] = {"missing keys", "'n_heads' (", "'norm_first' (", "'activation' (", "'pooling' (", NULL};
    const char *not[] = {"'positional'", "'d_ff'", "'vocab_size'", "'d_model'", NULL};
    expect_error(dir, "config {} for an nn.TransformerEncoder", want, not);
    variant("nopool", "mamba_ssm_rms", "{\"d_model\": 8, \"n_layer\": 2, \"vocab_size\": 12, \"ssm_cfg\": {\"d_state\": 4}}",
            NULL, dir, sizeof dir);
    const char *want2[] = {"missing key 'pooling' (", NULL};
    expect_error(dir, "mamba_ssm config without pooling", want2, NULL);
}

static void missing_and_unclaimed(void)
{
    char dir[512];
    variant("blocks", "mamba_ssm_rms", NULL, blocks, dir, sizeof dir);
    const char *want[] = {"missing tensor 'layers.0.norm.weight' [8] = [d_model] (+1 like it)",
                          "missing tensor 'layers.0.mixer.in_proj.weight' [32, 8] = [2*expand*d_model, d_model]",
                          "unexpected tensor 'backbone.blocks.0.mixer.A_log' [16, 4] (+1 like it)",
                          "\"names\": {\"layers\": \"backbone.blocks\"}", NULL};
    expect_error(dir, "layers renamed to blocks", want, NULL);
    /* the entry the message suggests is the fix */
    char cfg[600], path[600];
    snprintf(path, sizeof path, LAYOUTS "/mamba_ssm_rms/config.json");
    char *t = slurp(path, NULL);
    cJSON *j = cJSON_Parse(t), *names = cJSON_CreateObject();
    cJSON_AddStringToObject(names, "layers", "backbone.blocks");
    cJSON_AddItemToObject(j, "names", names);
    char *text = cJSON_Print(j);
    snprintf(cfg, sizeof cfg, "%s/config.json", dir);
    put(cfg, text, strlen(text));
    sl_error err = {0};
    CHECK(load_and_compare(dir, LAYOUTS "/mamba_ssm_rms", &err) == SL_OK, "with the suggested names: %s", err.msg);
    free(text);
    cJSON_Delete(j);
    free(t);
}

static void disagreements(void)
{
    char dir[512];
    variant("dstate", "mamba_ssm_rms",
            "{\"d_model\": 8, \"n_layer\": 2, \"vocab_size\": 12, \"ssm_cfg\": {\"d_state\": 8}, \"pooling\": \"mean\"}", NULL,
            dir, sizeof dir);
    const char *want[] = {"'d_state' is 8 (config (ssm_cfg.d_state))", "the weights give 4",
                          "'backbone.layers.0.mixer.A_log' [16, 4]", NULL};
    expect_error(dir, "ssm_cfg.d_state 8 against A_log [16, 4]", want, NULL);
    variant("layers3", "tf_encoder_sin",
            "{\"n_heads\": 2, \"norm_first\": true, \"activation\": \"gelu\", \"pooling\": \"mean\", \"n_layers\": 3}", NULL, dir,
            sizeof dir);
    const char *want2[] = {"'n_layers' is 3 (config)", "the weights give 2", NULL};
    expect_error(dir, "n_layers 3 against 2 layers", want2, NULL);
    variant("nofinal", "tf_encoder_sin",
            "{\"n_heads\": 2, \"norm_first\": true, \"activation\": \"gelu\", \"pooling\": \"mean\", \"final_norm\": false}", NULL,
            dir, sizeof dir);
    const char *want3[] = {"'final_norm' is false", "'encoder.norm.weight'", NULL};
    expect_error(dir, "final_norm false beside encoder.norm", want3, NULL);
}

/* Two [n, d] tables and neither named pos*: vocab_size decides */
static void two_tables(void)
{
    char dir[512];
    variant("tables", "tf_encoder_learned", NULL, no_pos_name, dir, sizeof dir);
    const char *want[] = {"could be the embedding", "'tok.weight' [12, 8]", "'where.weight' [16, 8]", "vocab_size", NULL};
    expect_error(dir, "two tables", want, NULL);
    variant("tables_vocab", "tf_encoder_learned",
            "{\"n_heads\": 2, \"norm_first\": false, \"activation\": \"relu\", \"pooling\": \"last\", \"vocab_size\": 12}",
            no_pos_name, dir, sizeof dir);
    sl_error err = {0};
    CHECK(load_and_compare(dir, LAYOUTS "/tf_encoder_learned", &err) == SL_OK, "two tables with vocab_size: %s", err.msg);
}

/* Sets element k of F32 tensor `name` in dir/model.safetensors to v. */
static void set_f32(const char *dir, const char *name, long k, float v)
{
    char path[600];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    size_t n;
    char *b = slurp(path, &n);
    uint64_t hl = 0;
    for (int i = 7; b && n >= 8 && i >= 0; i--) hl = (hl << 8) | (unsigned char)b[i];
    cJSON *h = b && hl < n ? cJSON_ParseWithLength(b + 8, hl) : NULL;
    const cJSON *off = cJSON_GetObjectItem(cJSON_GetObjectItem(h, name), "data_offsets");
    size_t at = 8 + hl + (size_t)cJSON_GetNumberValue(cJSON_GetArrayItem(off, 0)) + (size_t)k * 4;
    CHECK(off && at + 4 <= n, "%s: no F32 tensor '%s' with element %ld", path, name, k);
    if (off && at + 4 <= n) {
        memcpy(b + at, &v, 4);
        put(path, b, n);
    }
    cJSON_Delete(h);
    free(b);
}

/* The warnings a load left, as the binary prints them at its end. */
static void warnings_to(const char *path)
{
    fflush(stderr);
    int saved = dup(2), fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (saved >= 0 && fd >= 0 && dup2(fd, 2) >= 0) {
        sl_warnings_end(1);
        fflush(stderr);
        dup2(saved, 2);
    }
    if (fd >= 0) close(fd);
    if (saved >= 0) close(saved);
}

/* A registered buffer: its length is max_len; off the sinusoid by one
 * value it is a learned table, with a warning. */
static void positional_buffers(void)
{
    sl_model m;
    sl_error err = {0};
    char dir[512];
    if (sl_model_load(&m, LAYOUTS "/tf_encoder_sin", &err) == SL_OK) {
        const char *s = sl_config_source_of(&m.c, "max_len");
        CHECK(m.c.max_len == 64 && s && strstr(s, "'pos_encoder.pe' [64, 1, 8]"), "max_len %d from %s", m.c.max_len,
              s ? s : "?");
    } else
        CHECK(0, "tf_encoder_sin: %s", err.msg);
    sl_model_free(&m);
    variant("pe_off", "tf_encoder_sin", NULL, NULL, dir, sizeof dir);
    set_f32(dir, "pos_encoder.pe", 3 * 8, 0.5f); /* sin(3) = 0.141 */
    sl_warnings_end(0);
    if (sl_model_load(&m, dir, &err) == SL_OK) {
        const char *s = sl_config_source_of(&m.c, "positional");
        CHECK(m.c.positional == POS_LEARNED && m.c.max_len == 64 && s && strstr(s, "'pos_encoder.pe'"),
              "perturbed sinusoid: positional %d, max_len %d, from %s", m.c.positional, m.c.max_len, s ? s : "?");
        const sl_tensor_info *pe = NULL;
        for (int i = 0; i < m.n_tensors; i++)
            if (!strcmp(m.tensors[i].name, "pos_encoder.pe")) pe = &m.tensors[i];
        CHECK(pe && !strcmp(pe->role, "pos_embedding.weight"), "perturbed pe's role: %s", pe ? pe->role : "none");
    } else
        CHECK(0, "perturbed sinusoid: %s", err.msg);
    sl_model_free(&m);
    warnings_to(SCRATCH "/pe_off.warn");
    char *w = slurp(SCRATCH "/pe_off.warn", NULL);
    CHECK(w && strstr(w, "'pos_encoder.pe' is not the sinusoidal table") && strstr(w, "used as a learned positional table"),
          "perturbed sinusoid: warnings '%s'", w ? w : "");
    free(w);
}

/* Hugging Face's use_bias / use_conv_bias against the tensors */
static void hf_biases(void)
{
    char dir[512];
#define HF "{\"model_type\": \"mamba\", \"hidden_size\": 8, \"num_hidden_layers\": 2, \"state_size\": 4, " \
           "\"conv_kernel\": 3, \"time_step_rank\": 1, \"vocab_size\": 12, \"pooling\": \"last\", "
    variant("hf_convb", "hf_mamba", HF "\"use_bias\": false, \"use_conv_bias\": false}", NULL, dir, sizeof dir);
    const char *want[] = {"'use_conv_bias' is false (config (use_conv_bias))", "the weights give true",
                          "mixer.conv1d.bias' [16]", NULL};
    expect_error(dir, "use_conv_bias false beside conv1d.bias", want, NULL);
    variant("hf_bias", "hf_mamba", HF "\"use_bias\": true, \"use_conv_bias\": true}", NULL, dir, sizeof dir);
    const char *want2[] = {"'use_bias' is true (config (use_bias))", "the weights give false",
                           "(the absence of '", "mixer.in_proj.bias')", NULL};
    expect_error(dir, "use_bias true without in_proj.bias", want2, NULL);
    variant("hf_bias_num", "hf_mamba", HF "\"use_bias\": 0}", NULL, dir, sizeof dir);
    const char *want3[] = {"'use_bias' must be true or false", NULL};
    expect_error(dir, "use_bias 0", want3, NULL);
#undef HF
}

/* where each key came from (what `seqlens info` prints) */
static void sources(void)
{
    sl_model m;
    sl_error err = {0};
    if (sl_model_load(&m, LAYOUTS "/tf_encoder_sin", &err) == SL_OK) {
        const char *s = sl_config_source_of(&m.c, "d_ff");
        CHECK(s && strstr(s, "inferred from tensor 'encoder.layers.0.linear1.weight' [16, 8]"), "d_ff from: %s", s ? s : "?");
        s = sl_config_source_of(&m.c, "positional");
        CHECK(m.c.positional == POS_SINUSOIDAL && s && strstr(s, "'pos_encoder.pe' [64, 1, 8]"), "positional from: %s", s ? s : "?");
        s = sl_config_source_of(&m.c, "n_heads");
        CHECK(s && !strcmp(s, "config"), "n_heads from: %s", s ? s : "?");
        s = sl_config_source_of(&m.c, "causal");
        CHECK(s && !strcmp(s, "default"), "causal from: %s", s ? s : "?");
        int roles = 0;
        for (int i = 0; i < m.n_tensors; i++)
            roles += (!strcmp(m.tensors[i].name, "classifier.weight") && !strcmp(m.tensors[i].role, "head.weight")) +
                     (!strcmp(m.tensors[i].name, "encoder.norm.bias") && !strcmp(m.tensors[i].role, "norm.bias"));
        CHECK(roles == 2, "roles of classifier.weight and encoder.norm.bias not reported");
    }
    sl_model_free(&m);
    if (sl_model_load(&m, LAYOUTS "/mamba_ssm_rms", &err) == SL_OK) {
        const char *s = sl_config_source_of(&m.c, "d_conv");
        CHECK(m.c.d_conv == 4 && s && strstr(s, "mamba_ssm's default"), "d_conv from: %s", s ? s : "?");
        s = sl_config_source_of(&m.c, "vocab_size");
        CHECK(m.c.vocab_size == 16 && s && strstr(s, "pad_vocab_size_multiple"), "padded vocabulary: %d from %s", m.c.vocab_size,
              s ? s : "?");
    } else
        CHECK(0, "mamba_ssm_rms: %s", err.msg);
    sl_model_free(&m);
}

/* configs alone, in each library's format */
static void formats(void)
{
    sl_config c;
    sl_error err = {0};
    int rc = sl_config_parse(&c, "config.json",
                             "{\"model_type\": \"mamba\", \"hidden_size\": 32, \"num_hidden_layers\": 3, \"vocab_size\": 20,"
                             "\"time_step_rank\": \"auto\", \"pooling\": \"last\"}",
                             &err);
    CHECK(rc == SL_OK && c.arch == ARCH_MAMBA && c.d_model == 32 && c.n_layers == 3 && c.d_state == 16 && c.d_conv == 4 &&
              c.expand == 2 && c.dt_rank == 2 && c.norm == NORM_RMS,
          "Hugging Face config: %s", err.msg);
    rc = sl_config_parse(&c, "config.json",
                         "{\"d_model\": 64, \"n_layer\": 2, \"vocab_size\": 20, \"rms_norm\": false, \"pooling\": \"mean\","
                         "\"ssm_cfg\": {\"d_conv\": 3}}",
                         &err);
    CHECK(rc == SL_OK && c.n_layers == 2 && c.d_state == 16 && c.d_conv == 3 && c.dt_rank == 4 && c.norm == NORM_LAYER,
          "mamba_ssm config: %s", err.msg);
    err = (sl_error){0};
    /* Mamba2 layers (issue 20): mamba_ssm's Mamba2 defaults for what ssm_cfg omits, Python's bare Infinity */
    rc = sl_config_parse(&c, "config.json",
                         "{\"d_model\": 64, \"n_layer\": 2, \"vocab_size\": 10, \"pooling\": \"last\", \"ssm_cfg\": "
                         "{\"layer\": \"Mamba2\", \"ngroups\": 2, \"dt_limit\": [0.001, Infinity], \"chunk_size\": 8}}",
                         &err);
    CHECK(rc == SL_OK && c.arch == ARCH_MAMBA2 && c.d_state == 128 && c.ngroups == 2 && c.headdim == 64 && c.nheads == 2 &&
              c.d_conv == 4 && c.expand == 2 && c.norm == NORM_RMS && c.dt_min == 0.001f && isinf(c.dt_max) && c.rmsnorm &&
              !c.norm_before_gate && !c.D_has_hdim && c.gated_norm_eps == 1e-5f,
          "Mamba-2: %s", err.msg);
    err = (sl_error){0};
    rc = sl_config_parse(&c, "config.json", "{\"d_model\": 64, \"n_layer\": 2, \"ssm_cfg\": {\"layer\": \"Mamba3\"}}", &err);
    CHECK(rc == SL_EINPUT && strstr(err.msg, "Mamba3") && strstr(err.msg, "not supported"), "Mamba-3: %s", err.msg);
    err = (sl_error){0};
    rc = sl_config_parse(&c, "config.json",
                         "{\"d_model\": 64, \"n_layer\": 2, \"ssm_cfg\": {\"layer\": \"Mamba2\", \"d_ssm\": 64}}", &err);
    CHECK(rc == SL_EINPUT && strstr(err.msg, "d_ssm") && strstr(err.msg, "d_mlp > 0"), "d_ssm: %s", err.msg);
    err = (sl_error){0};
    rc = sl_config_parse(&c, "config.json", "{\"n_layers\": 2, \"n_layer\": 3, \"ssm_cfg\": {}}", &err);
    CHECK(rc == SL_EINPUT && strstr(err.msg, "'n_layers'") && strstr(err.msg, "must agree"), "n_layers vs n_layer: %s", err.msg);
}

int main(void)
{
    system("mkdir -p " SCRATCH);
    every_fixture();
    missing_keys();
    missing_and_unclaimed();
    disagreements();
    two_tables();
    sources();
    positional_buffers();
    hf_biases();
    formats();
    return TEST_SUMMARY();
}
