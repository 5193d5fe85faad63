/* Loading Mamba-2 (design.md 2.1, 2.2, 2.4, section 4), before any forward
 * pass: every tests/fixtures/mamba2_* model loads with the config its
 * config.json says, A = -exp(A_log), and exactly the hook points whose
 * datasets expected.h5 holds, with their widths; a checkpoint built here
 * loads from the few keys the tensors cannot tell, with the others inferred
 * and their sources named; a malformed one (d_mlp > 0, a tensor missing or
 * misnamed, a wrong shape, keys that disagree with the tensors, headdim or
 * ngroups that do not divide) is one exit-2 error naming what is wrong. */
#include <hdf5.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "core/safetensors.h"
#include "models/model.h"
#include "tests/fixture_files.h"
#include "testing.h"

#define SCRATCH "build/tests/mamba2_load"

/* ---- the fixtures ---- */

static double num(const cJSON *cfg, const char *key, double def)
{
    const cJSON *v = cJSON_GetObjectItem(cfg, key);
    return cJSON_IsNumber(v) ? v->valuedouble : def;
}

static int flag(const cJSON *cfg, const char *key, int def)
{
    const cJSON *v = cJSON_GetObjectItem(cfg, key);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : def;
}

/* The dataset's shape; 0 dims when absent. */
static int dataset_shape(hid_t f, const char *name, hsize_t *dims)
{
    if (H5Lexists(f, name, H5P_DEFAULT) <= 0) return 0;
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    if (d < 0) return 0;
    hid_t s = H5Dget_space(d);
    int nd = s >= 0 ? H5Sget_simple_extent_ndims(s) : -1;
    if (nd > 0 && nd <= 3) H5Sget_simple_extent_dims(s, dims, NULL);
    if (s >= 0) H5Sclose(s);
    H5Dclose(d);
    return nd > 3 ? 0 : nd;
}

static herr_t count_dataset(hid_t g, const char *name, const H5L_info_t *info, void *user)
{
    (void)g, (void)info;
    const sl_model *m = user;
    /* labels and lengths travel with the hooks, as capture writes them */
    if (strcmp(name, "labels") && strcmp(name, "lengths"))
        CHECK(sl_model_find_point(m, name) >= 0, "expected.h5 has '%s', which is no hook point of the model", name);
    return 0;
}

/* A = -exp(A_log) from the file's own A_log (whatever its dtype). */
static void check_A(const sl_model *m, const char *dir, const char *name)
{
    char path[600];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    st_file f;
    sl_error err = {0};
    if (st_open(&f, path, &err)) {
        CHECK(0, "%s: %s", name, err.msg);
        return;
    }
    for (int i = 0; i < m->c.n_layers; i++) {
        char role[64];
        snprintf(role, sizeof role, "layers.%d.mixer.A_log", i);
        const sl_tensor_info *ti = NULL;
        for (int k = 0; k < m->n_tensors; k++)
            if (!strcmp(m->tensors[k].role, role)) ti = &m->tensors[k];
        const st_tensor *t = ti ? st_find(&f, ti->name) : NULL;
        CHECK(t && st_numel(t) == m->c.nheads, "%s: no A_log of %d values for layer %d", name, m->c.nheads, i);
        if (!t || st_numel(t) != m->c.nheads) continue;
        float A_log[1024];
        st_to_f32(&f, t, A_log);
        double worst = 0;
        for (int h = 0; h < m->c.nheads; h++)
            worst = fmax(worst, fabs(m->mamba2[i].A[h] + expf(A_log[h])) / expf(A_log[h]));
        CHECK(worst == 0, "%s: layer %d: A differs from -exp(A_log) by %.2e relative", name, i, worst);
    }
    st_close(&f);
}

static void mamba2_fixture(const char *name, const char *path, void *user)
{
    (void)path;
    int *seen = user;
    if (strncmp(name, "mamba2_", 7)) return;
    ++*seen;
    char dir[512], cfg_path[600], exp_path[600];
    snprintf(dir, sizeof dir, FIXTURES "/%s", name);
    snprintf(cfg_path, sizeof cfg_path, "%s/config.json", dir);
    snprintf(exp_path, sizeof exp_path, "%s/expected.h5", dir);
    cJSON *cfg = read_json(cfg_path);
    sl_model m;
    sl_error err = {0};
    int rc = sl_model_load(&m, dir, &err);
    CHECK(rc == SL_OK && cfg, "%s: %s", name, rc ? err.msg : "config.json unreadable");
    if (rc || !cfg) {
        sl_model_free(&m);
        cJSON_Delete(cfg);
        return;
    }
    const sl_config *c = &m.c;
    const char *norm = cJSON_GetStringValue(cJSON_GetObjectItem(cfg, "norm"));
    const char *pool = cJSON_GetStringValue(cJSON_GetObjectItem(cfg, "pooling"));
    const cJSON *lim = cJSON_GetObjectItem(cfg, "dt_limit");
    double lo = lim ? cJSON_GetArrayItem(lim, 0)->valuedouble : 0, hi = lim ? cJSON_GetArrayItem(lim, 1)->valuedouble : INFINITY;
    CHECK(c->arch == ARCH_MAMBA2, "%s: arch %d", name, c->arch);
    CHECK(c->d_model == num(cfg, "d_model", -1) && c->n_layers == num(cfg, "n_layers", -1) &&
              c->vocab_size == num(cfg, "vocab_size", -1),
          "%s: d_model %d n_layers %d vocab %d", name, c->d_model, c->n_layers, c->vocab_size);
    CHECK(c->d_state == num(cfg, "d_state", 128) && c->ngroups == num(cfg, "ngroups", 1) &&
              c->headdim == num(cfg, "headdim", 64) && c->expand == num(cfg, "expand", 2) && c->d_conv == num(cfg, "d_conv", 4),
          "%s: d_state %d ngroups %d headdim %d expand %d d_conv %d", name, c->d_state, c->ngroups, c->headdim, c->expand,
          c->d_conv);
    CHECK(c->d_inner == c->expand * c->d_model && c->nheads * c->headdim == c->d_inner && c->nheads % c->ngroups == 0,
          "%s: d_inner %d nheads %d", name, c->d_inner, c->nheads);
    CHECK(c->D_has_hdim == flag(cfg, "D_has_hdim", 0) && c->rmsnorm == flag(cfg, "rmsnorm", 1) &&
              c->norm_before_gate == flag(cfg, "norm_before_gate", 0),
          "%s: D_has_hdim %d rmsnorm %d norm_before_gate %d", name, c->D_has_hdim, c->rmsnorm, c->norm_before_gate);
    CHECK(c->norm == (norm && !strcmp(norm, "layer") ? NORM_LAYER : NORM_RMS) && c->norm_eps == (float)num(cfg, "norm_eps", 1e-5) &&
              c->gated_norm_eps == 1e-5f,
          "%s: norm %d eps %g gated eps %g", name, c->norm, c->norm_eps, c->gated_norm_eps);
    CHECK(pool && !strcmp(sl_pooling_name(c->pooling), pool), "%s: pooling %s", name, sl_pooling_name(c->pooling));
    CHECK(c->dt_min == (float)lo && c->dt_max == (float)hi, "%s: dt_limit [%g, %g], config [%g, %g]", name, c->dt_min,
          c->dt_max, lo, hi);
    for (int i = 0; i < c->n_layers; i++) {
        const sl_mamba2_layer *y = &m.mamba2[i];
        CHECK(y->norm_w && !y->norm_b == (c->norm == NORM_RMS) && y->in_w && y->conv_w && y->dt_bias && y->A && y->D &&
                  y->out_w && !y->gnorm_w == !c->rmsnorm,
              "%s: layer %d weights not all bound", name, i);
    }
    check_A(&m, dir, name);

    /* hook points: those of design.md section 4, each with its dataset in
     * expected.h5 of shape [N, L, width] ([N, d] pooled, [N] logits) */
    hid_t f = H5Fopen(exp_path, H5F_ACC_RDONLY, H5P_DEFAULT);
    CHECK(f >= 0, "%s: cannot open expected.h5", name);
    hsize_t ld[3] = {0}, N = 0, L = 0;
    if (f >= 0 && dataset_shape(f, "embed", ld) == 3) N = ld[0], L = ld[1];
    int GS = c->ngroups * c->d_state, mixer_points = 0;
    for (int p = 0; f >= 0 && p < m.n_points; p++) {
        const sl_hook_point *pt = &m.points[p];
        if (pt->kind == HK_EMBED_TOKENS) continue; /* seqlens's own, not in section 4's list */
        hsize_t dims[3] = {0};
        int nd = dataset_shape(f, pt->name, dims);
        if (pt->kind == HK_LOGITS) CHECK(nd == 1 && dims[0] == N, "%s: %s", name, pt->name);
        else if (pt->per_example) CHECK(nd == 2 && dims[0] == N && dims[1] == (hsize_t)pt->width, "%s: %s", name, pt->name);
        else
            CHECK(nd == 3 && dims[0] == N && dims[1] == L && dims[2] == (hsize_t)pt->width, "%s: %s width %d vs [%llu, %llu, %llu]",
                  name, pt->name, pt->width, (unsigned long long)dims[0], (unsigned long long)dims[1], (unsigned long long)dims[2]);
        int want = -1;
        switch (pt->kind) {
        case HK_MIXER_IN_X: case HK_MIXER_GATE: case HK_MIXER_Y: want = c->d_inner; break;
        case HK_MIXER_B: case HK_MIXER_C: want = GS; break;
        case HK_MIXER_DELTA: want = c->nheads; break;
        case HK_MIXER_OUT: want = c->d_model; break;
        }
        if (want >= 0) {
            mixer_points++;
            CHECK(pt->width == want, "%s: %s has width %d, section 4 says %d", name, pt->name, pt->width, want);
        }
    }
    CHECK(mixer_points == 7 * c->n_layers, "%s: %d mixer hook points for %d layers", name, mixer_points, c->n_layers);
    if (f >= 0) {
        H5Literate(f, H5_INDEX_NAME, H5_ITER_NATIVE, NULL, count_dataset, &m);
        H5Fclose(f);
    }
    sl_model_free(&m);
    cJSON_Delete(cfg);
}

/* ---- checkpoints built here ---- */

/* A Mamba-2 of d 8, expand 2 (d_inner 16), headdim 4 (4 heads), ngroups 1,
 * d_state 4, d_conv 4, 2 layers, vocab 6, a [1, 8] head; `tweak` may change
 * a tensor's name or shape before it is written (F32, small values). */
typedef struct {
    char name[96];
    int ndim;
    int64_t shape[3];
} spec;

enum { D = 8, DI = 16, H = 4, GS = 4, K = 4, V = 6 };

static int base_specs(spec *s)
{
    int n = 0;
    s[n++] = (spec){"embedding.weight", 2, {V, D, 0}};
    for (int i = 0; i < 2; i++) {
        spec layer[] = {
            {"norm.weight", 1, {D, 0, 0}},           {"mixer.in_proj.weight", 2, {2 * DI + 2 * GS + H, D, 0}},
            {"mixer.conv1d.weight", 3, {DI + 2 * GS, 1, K}}, {"mixer.conv1d.bias", 1, {DI + 2 * GS, 0, 0}},
            {"mixer.dt_bias", 1, {H, 0, 0}},          {"mixer.A_log", 1, {H, 0, 0}},
            {"mixer.D", 1, {H, 0, 0}},                {"mixer.norm.weight", 1, {DI, 0, 0}},
            {"mixer.out_proj.weight", 2, {D, DI, 0}},
        };
        for (size_t k = 0; k < sizeof layer / sizeof *layer; k++) {
            s[n] = layer[k];
            snprintf(s[n].name, sizeof s[n].name, "layers.%d.%.40s", i, layer[k].name); /* i < 2: fits */
            n++;
        }
    }
    s[n++] = (spec){"norm_f.weight", 1, {D, 0, 0}};
    s[n++] = (spec){"head.weight", 2, {1, D, 0}};
    s[n++] = (spec){"head.bias", 1, {1, 0, 0}};
    return n;
}

static int64_t numel(const spec *s)
{
    int64_t n = 1;
    for (int k = 0; k < s->ndim; k++) n *= s->shape[k];
    return n;
}

/* dir/model.safetensors from the specs and dir/config.json = cfg. */
static void build(const char *name, const char *cfg, void (*tweak)(spec *s, int *n), char *dir, size_t dn)
{
    spec s[40];
    int n = base_specs(s);
    if (tweak) tweak(s, &n);
    snprintf(dir, dn, SCRATCH "/%s", name);
    mkdir("build/tests", 0777);
    mkdir(SCRATCH, 0777);
    mkdir(dir, 0777);
    write_text_in(dir, "config.json", cfg);
    cJSON *h = cJSON_CreateObject();
    int64_t at = 0;
    for (int i = 0; i < n; i++) {
        cJSON *t = cJSON_AddObjectToObject(h, s[i].name);
        cJSON_AddStringToObject(t, "dtype", "F32");
        cJSON *sh = cJSON_AddArrayToObject(t, "shape");
        for (int k = 0; k < s[i].ndim; k++) cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)s[i].shape[k]));
        cJSON *off = cJSON_AddArrayToObject(t, "data_offsets");
        cJSON_AddItemToArray(off, cJSON_CreateNumber((double)at));
        at += 4 * numel(&s[i]);
        cJSON_AddItemToArray(off, cJSON_CreateNumber((double)at));
    }
    char *text = cJSON_PrintUnformatted(h), path[600];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    FILE *f = fopen(path, "wb");
    if (f && text) {
        size_t tl = strlen(text), pad = (8 - tl % 8) % 8;
        uint64_t hl = tl + pad;
        unsigned char len[8];
        for (int i = 0; i < 8; i++) len[i] = (unsigned char)(hl >> (8 * i));
        fwrite(len, 1, 8, f);
        fwrite(text, 1, tl, f);
        for (size_t i = 0; i < pad; i++) fputc(' ', f);
        for (int64_t i = 0; i < at / 4; i++) {
            float v = 0.01f * (float)(i % 17); /* small, finite */
            fwrite(&v, 4, 1, f);
        }
    }
    if (f) fclose(f);
    free(text);
    cJSON_Delete(h);
}

static void load_error(const char *dir, const char *what, const char *const *needles)
{
    sl_model m;
    sl_error err = {0};
    int rc = sl_model_load(&m, dir, &err);
    sl_model_free(&m);
    CHECK(rc == SL_EINPUT, "%s: rc %d, want exit 2 (%s)", what, rc, err.msg);
    CHECK(!strchr(err.msg, '\n'), "%s: message has several lines: %s", what, err.msg);
    for (int i = 0; needles[i]; i++)
        CHECK(strstr(err.msg, needles[i]) != NULL, "%s: '%s' lacks '%s'", what, err.msg, needles[i]);
}

static const char *source(const sl_model *m, const char *key)
{
    const char *s = sl_config_source_of(&m->c, key);
    return s ? s : "(none)";
}

static int find(spec *s, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(s[i].name, name)) return i;
    return -1;
}

static void d_mlp(spec *s, int *n)
{
    for (int i = 0; i < *n; i++)
        if (strstr(s[i].name, "in_proj.weight")) s[i].shape[0] += 2 * 4; /* d_mlp 4 */
}
static void misnamed(spec *s, int *n) { snprintf(s[find(s, *n, "layers.1.mixer.A_log")].name, 96, "layers.1.mixer.A_logs"); }
static void short_conv(spec *s, int *n) { s[find(s, *n, "layers.1.mixer.conv1d.weight")].shape[2] = 3; }
static void no_gated_norm(spec *s, int *n)
{
    for (int i = 0; i < *n; i++)
        if (strstr(s[i].name, "mixer.norm.weight")) s[i] = s[--*n], i--;
}
static void D_per_channel(spec *s, int *n)
{
    for (int i = 0; i < *n; i++)
        if (strstr(s[i].name, "mixer.D")) s[i].shape[0] = DI;
}
static void layer_norm(spec *s, int *n)
{
    s[(*n)++] = (spec){"layers.0.norm.bias", 1, {D, 0, 0}};
    s[(*n)++] = (spec){"layers.1.norm.bias", 1, {D, 0, 0}};
    s[(*n)++] = (spec){"norm_f.bias", 1, {D, 0, 0}};
}
static void biases(spec *s, int *n)
{
    for (int i = 0; i < 2; i++) {
        s[*n] = (spec){"", 1, {2 * DI + 2 * GS + H, 0, 0}};
        snprintf(s[(*n)++].name, 96, "layers.%d.mixer.in_proj.bias", i);
        s[*n] = (spec){"", 1, {D, 0, 0}};
        snprintf(s[(*n)++].name, 96, "layers.%d.mixer.out_proj.bias", i);
    }
}

static void built_checkpoints(void)
{
    char dir[300];
    sl_model m;
    sl_error err = {0};

    /* the fewest keys: pooling and one of d_state / ngroups */
    build("inferred", "{\"pooling\": \"mean\", \"d_state\": 4}", NULL, dir, sizeof dir);
    int rc = sl_model_load(&m, dir, &err);
    CHECK(rc == SL_OK, "inferred: %s", err.msg);
    if (!rc) {
        const sl_config *c = &m.c;
        CHECK(c->arch == ARCH_MAMBA2 && strstr(source(&m, "arch"), "inferred from tensor 'layers.0.mixer.dt_bias'"),
              "arch %d from %s", c->arch, source(&m, "arch"));
        CHECK(c->d_model == D && c->expand == 2 && c->d_inner == DI && strstr(source(&m, "expand"), "out_proj"),
              "d_model %d expand %d (%s)", c->d_model, c->expand, source(&m, "expand"));
        CHECK(c->headdim == 4 && c->nheads == H && strstr(source(&m, "headdim"), "inferred from tensor 'layers.0.mixer.A_log' [4]"),
              "headdim %d (%s)", c->headdim, source(&m, "headdim"));
        CHECK(c->ngroups == 1 && c->d_state == 4 && strstr(source(&m, "ngroups"), "conv1d") &&
                  strstr(source(&m, "ngroups"), "ngroups*d_state = 4") && !strcmp(source(&m, "d_state"), "config"),
              "ngroups %d from %s; d_state from %s", c->ngroups, source(&m, "ngroups"), source(&m, "d_state"));
        CHECK(c->d_conv == K && !c->D_has_hdim && c->rmsnorm && !c->norm_before_gate && c->norm == NORM_RMS,
              "d_conv %d D_has_hdim %d rmsnorm %d", c->d_conv, c->D_has_hdim, c->rmsnorm);
        CHECK(c->dt_min == 0 && isinf(c->dt_max) && !strcmp(source(&m, "dt_limit"), "default") &&
                  c->gated_norm_eps == 1e-5f && !strcmp(source(&m, "gated_norm_eps"), "default"),
              "dt_limit [%g, %g] from %s", c->dt_min, c->dt_max, source(&m, "dt_limit"));
        CHECK(!m.mamba2[0].in_b && !m.mamba2[0].out_b && m.mamba2[1].conv_b && m.head_rows == 1, "optional tensors");
        static const char *const names[] = {"blocks.0.resid_pre", "blocks.0.mixer.in_x", "blocks.0.mixer.delta",
                                            "blocks.0.mixer.B", "blocks.0.mixer.C", "blocks.0.mixer.y",
                                            "blocks.0.mixer.gate", "blocks.0.mixer.out", "blocks.0.resid_post"};
        static const int widths[] = {D, DI, H, GS, GS, DI, DI, D, D};
        int first = sl_model_find_point(&m, names[0]);
        for (int k = 0; k < 9; k++) {
            int p = sl_model_find_point(&m, names[k]);
            CHECK(p == first + k && p >= 0 && m.points[p].width == widths[k], "point %s at %d (want %d) width %d", names[k], p,
                  first + k, p >= 0 ? m.points[p].width : -1);
        }
        CHECK(sl_model_point(&m, HK_MIXER_Y, 1) == sl_model_find_point(&m, "blocks.1.mixer.y") &&
                  sl_model_point(&m, HK_MIXER_Y, 1) >= 0 && sl_model_point(&m, HK_ATTN_OUT, 0) < 0,
              "point ids by kind");
    }
    sl_model_free(&m);

    build("by_ngroups", "{\"pooling\": \"last\", \"ngroups\": 1, \"dt_limit\": [0.001, \"inf\"]}", NULL, dir, sizeof dir);
    err = (sl_error){0};
    rc = sl_model_load(&m, dir, &err);
    CHECK(rc == SL_OK && m.c.d_state == 4 && strstr(source(&m, "d_state"), "and ngroups") && m.c.dt_min == 0.001f &&
              isinf(m.c.dt_max),
          "d_state from ngroups: %s (%s)", rc ? err.msg : "", rc ? "" : source(&m, "d_state"));
    sl_model_free(&m);

    build("optional", "{\"pooling\": \"cls\", \"ngroups\": 1}", D_per_channel, dir, sizeof dir);
    err = (sl_error){0};
    rc = sl_model_load(&m, dir, &err);
    CHECK(rc == SL_OK && m.c.D_has_hdim && strstr(source(&m, "D_has_hdim"), "layers.0.mixer.D' [16]"),
          "D per channel: %s", rc ? err.msg : source(&m, "D_has_hdim"));
    sl_model_free(&m);
    build("layernorm_biases", "{\"pooling\": \"mean\", \"ngroups\": 1}", layer_norm, dir, sizeof dir);
    err = (sl_error){0};
    rc = sl_model_load(&m, dir, &err);
    CHECK(rc == SL_OK && m.c.norm == NORM_LAYER && m.mamba2[1].norm_b && m.norm_b, "LayerNorm: %s", err.msg);
    sl_model_free(&m);
    build("biases", "{\"pooling\": \"mean\", \"ngroups\": 1}", biases, dir, sizeof dir);
    err = (sl_error){0};
    rc = sl_model_load(&m, dir, &err);
    CHECK(rc == SL_OK && m.mamba2[1].in_b && m.mamba2[0].out_b, "biases: %s", err.msg);
    sl_model_free(&m);
    build("no_gated_norm", "{\"pooling\": \"mean\", \"ngroups\": 1}", no_gated_norm, dir, sizeof dir);
    err = (sl_error){0};
    rc = sl_model_load(&m, dir, &err);
    CHECK(rc == SL_OK && !m.c.rmsnorm && !m.mamba2[0].gnorm_w && strstr(source(&m, "rmsnorm"), "absence of 'layers.0.mixer.norm.weight'"),
          "rmsnorm false: %s", rc ? err.msg : source(&m, "rmsnorm"));
    sl_model_free(&m);

    /* what the tensors cannot tell */
    build("neither", "{\"pooling\": \"mean\"}", NULL, dir, sizeof dir);
    load_error(dir, "neither d_state nor ngroups", (const char *[]){"missing key", "'d_state or ngroups'", "product", NULL});
    build("product", "{\"pooling\": \"mean\", \"d_state\": 4, \"ngroups\": 2}", NULL, dir, sizeof dir);
    load_error(dir, "d_state * ngroups", (const char *[]){"ngroups 2", "d_state 4", "ngroups*d_state = 4", "conv1d", NULL});
    build("indivisible", "{\"pooling\": \"mean\", \"d_state\": 3}", NULL, dir, sizeof dir);
    load_error(dir, "d_state 3", (const char *[]){"ngroups*d_state = 4", "d_state 3", NULL});

    /* keys that disagree with the tensors */
    build("headdim", "{\"pooling\": \"mean\", \"d_state\": 4, \"headdim\": 8}", NULL, dir, sizeof dir);
    load_error(dir, "headdim against A_log", (const char *[]){"'headdim' is 8", "weights give 4", "A_log", NULL});
    build("arch", "{\"arch\": \"mamba\", \"pooling\": \"mean\", \"d_state\": 4}", NULL, dir, sizeof dir);
    load_error(dir, "arch mamba", (const char *[]){"'arch' is \"mamba\"", "\"mamba2\"", "dt_bias", NULL});
    build("rmsnorm", "{\"pooling\": \"mean\", \"d_state\": 4, \"rmsnorm\": false}", NULL, dir, sizeof dir);
    load_error(dir, "rmsnorm false", (const char *[]){"'rmsnorm' is false", "mixer.norm.weight", NULL});
    build("D_has_hdim", "{\"pooling\": \"mean\", \"d_state\": 4, \"D_has_hdim\": true}", NULL, dir, sizeof dir);
    load_error(dir, "D_has_hdim", (const char *[]){"'D_has_hdim' is true", "layers.0.mixer.D' [4]", NULL});

    /* malformed checkpoints */
    build("d_mlp", "{\"pooling\": \"mean\", \"d_state\": 4}", d_mlp, dir, sizeof dir);
    load_error(dir, "d_mlp > 0", (const char *[]){"d_mlp 4 > 0", "layers.0.mixer.in_proj.weight", "not supported", NULL});
    build("misnamed", "{\"pooling\": \"mean\", \"d_state\": 4}", misnamed, dir, sizeof dir);
    load_error(dir, "a misnamed tensor",
               (const char *[]){"missing tensor 'layers.1.mixer.A_log' [4] = [nheads]", "unexpected tensor 'layers.1.mixer.A_logs' [4]",
                                NULL});
    build("short_conv", "{\"pooling\": \"mean\", \"d_state\": 4}", short_conv, dir, sizeof dir);
    load_error(dir, "layer 1's conv1d",
               (const char *[]){"'layers.1.mixer.conv1d.weight' has shape [24, 1, 3]", "[24, 1, 4]",
                                "[d_inner + 2*ngroups*d_state, 1, d_conv]", "headdim", NULL});
}

/* config.json alone (no weights): the defaults, and the divisibility checks */
static void config_alone(void)
{
    sl_config c;
    sl_error err = {0};
#define M2 "{\"arch\": \"mamba2\", \"vocab_size\": 11, \"d_model\": 32, \"n_layers\": 2, \"pooling\": \"mean\""
    int rc = sl_config_parse(&c, "config.json", M2 "}", &err);
    CHECK(rc == SL_OK && c.d_state == 128 && c.ngroups == 1 && c.headdim == 64 && c.expand == 2 && c.d_conv == 4 &&
              c.d_inner == 64 && c.nheads == 1 && c.norm == NORM_RMS && c.norm_eps == 1e-5f && c.dt_min == 0 &&
              isinf(c.dt_max) && !c.D_has_hdim && !c.norm_before_gate && c.rmsnorm && c.gated_norm_eps == 1e-5f,
          "mamba_ssm's defaults: %s", err.msg);
    err = (sl_error){0};
    rc = sl_config_parse(&c, "config.json", M2 ", \"headdim\": 12}", &err);
    CHECK(rc == SL_EINPUT && strstr(err.msg, "headdim 12 does not divide d_inner") && strstr(err.msg, "64"), "headdim 12: %s",
          err.msg);
    err = (sl_error){0};
    rc = sl_config_parse(&c, "config.json", M2 ", \"headdim\": 16, \"ngroups\": 3}", &err);
    CHECK(rc == SL_EINPUT && strstr(err.msg, "ngroups 3 does not divide nheads") && strstr(err.msg, "4"), "ngroups 3: %s",
          err.msg);
    err = (sl_error){0};
    rc = sl_config_parse(&c, "config.json", M2 ", \"headdim\": 16, \"ngroups\": 4, \"d_state\": 8}", &err);
    CHECK(rc == SL_OK && c.nheads == 4 && c.ngroups == 4 && c.d_state == 8, "ngroups 4: %s", err.msg);
    static const char *const bad_limits[] = {"[0.5, 0.1]", "[-1, 1]", "[0.1]", "\"inf\"", "[0, \"big\"]", "[0.1, 0.1]"};
    for (size_t i = 0; i < sizeof bad_limits / sizeof *bad_limits; i++) {
        char text[300];
        snprintf(text, sizeof text, M2 ", \"dt_limit\": %s}", bad_limits[i]);
        err = (sl_error){0};
    rc = sl_config_parse(&c, "config.json", text, &err);
        CHECK(rc == SL_EINPUT && strstr(err.msg, "dt_limit"), "dt_limit %s: %s", bad_limits[i], err.msg);
    }
    err = (sl_error){0};
    rc = sl_config_parse(&c, "config.json", M2 ", \"dt_limit\": [0.001, 0.1], \"gated_norm_eps\": 1e-6, \"rmsnorm\": false}", &err);
    CHECK(rc == SL_OK && c.dt_min == 0.001f && c.dt_max == 0.1f && c.gated_norm_eps == 1e-6f && !c.rmsnorm, "dt_limit: %s",
          err.msg);
    err = (sl_error){0};
    rc = sl_config_parse(&c, "config.json", M2 ", \"D_has_hdim\": 1}", &err);
    CHECK(rc == SL_EINPUT && strstr(err.msg, "D_has_hdim"), "D_has_hdim 1: %s", err.msg);
#undef M2

    /* Hugging Face's Mamba2Config as transformers 5 writes it ({"__float__": "Infinity"}) and as
     * Python's json writes a bare Infinity; n_groups, head_dim, layer_norm_epsilon for both norms */
#define HF "{\"model_type\": \"mamba2\", \"hidden_size\": 32, \"num_hidden_layers\": 2, \"vocab_size\": 10, " \
           "\"pooling\": \"last\", \"state_size\": 8, \"head_dim\": 16, \"n_groups\": 2, \"layer_norm_epsilon\": 1e-6"
    err = (sl_error){0};
    rc = sl_config_parse(&c, "config.json",
                         HF ", \"num_heads\": 4, \"time_step_limit\": [0.0, {\"__float__\": \"Infinity\"}]}", &err);
    CHECK(rc == SL_OK && c.arch == ARCH_MAMBA2 && c.d_state == 8 && c.ngroups == 2 && c.headdim == 16 && c.nheads == 4 &&
              c.expand == 2 && c.norm == NORM_RMS && c.norm_eps == 1e-6f && c.gated_norm_eps == 1e-6f && c.dt_min == 0 &&
              isinf(c.dt_max) && c.rmsnorm && !c.norm_before_gate && c.pad_token_id == 1,
          "HF Mamba2: %s", err.msg);
    CHECK(rc == SL_OK && strstr(sl_config_source_of(&c, "gated_norm_eps"), "layer_norm_epsilon") &&
              strstr(sl_config_source_of(&c, "pad_token_id"), "Hugging Face's default"),
          "HF sources");
    err = (sl_error){0};
    rc = sl_config_parse(&c, "config.json", HF ", \"time_step_limit\": [0.001, Infinity], \"prefix\": \"Infinity.\"}", &err);
    CHECK(rc == SL_OK && c.dt_min == 0.001f && isinf(c.dt_max) && !strcmp(c.prefix, "Infinity."), "bare Infinity: %s", err.msg);
    err = (sl_error){0};
    rc = sl_config_parse(&c, "config.json", HF ", \"num_heads\": 3}", &err);
    CHECK(rc == SL_EINPUT && strstr(err.msg, "num_heads"), "num_heads 3: %s", err.msg);
    err = (sl_error){0};
    rc = sl_config_parse(&c, "config.json", HF ", \"time_step_limit\": [0.1]}", &err);
    CHECK(rc == SL_EINPUT && strstr(err.msg, "time_step_limit"), "time_step_limit [0.1]: %s", err.msg);
    err = (sl_error){0};
    rc = sl_config_parse(&c, "config.json", HF ", \"time_step_limit\": [0.2, 0.1]}", &err);
    CHECK(rc == SL_EINPUT && strstr(err.msg, "dt_limit"), "time_step_limit [0.2, 0.1]: %s", err.msg);
#undef HF
    /* mamba_ssm's MambaConfig with Mamba2 layers: ssm_cfg's keys, its bias keys checked later */
    err = (sl_error){0};
    rc = sl_config_parse(&c, "config.json",
                         "{\"d_model\": 16, \"n_layer\": 2, \"vocab_size\": 10, \"pooling\": \"mean\", \"rms_norm\": false, "
                         "\"ssm_cfg\": {\"layer\": \"Mamba2\", \"d_state\": 4, \"headdim\": 8, \"ngroups\": 2, "
                         "\"D_has_hdim\": true, \"norm_before_gate\": true, \"rmsnorm\": false, \"dt_limit\": [0.0, 0.5], "
                         "\"bias\": true, \"d_ssm\": null}}",
                         &err);
    CHECK(rc == SL_OK && c.arch == ARCH_MAMBA2 && c.d_state == 4 && c.headdim == 8 && c.ngroups == 2 && c.nheads == 4 &&
              c.D_has_hdim && c.norm_before_gate && !c.rmsnorm && c.dt_max == 0.5f && c.norm == NORM_LAYER,
          "mamba_ssm Mamba2: %s", err.msg);
    err = (sl_error){0};
    rc = sl_config_parse(&c, "config.json",
                         "{\"d_model\": 16, \"n_layer\": 2, \"ssm_cfg\": {\"layer\": \"Mamba2\", \"rmsnorm\": 1}}", &err);
    CHECK(rc == SL_EINPUT && strstr(err.msg, "ssm_cfg.rmsnorm"), "rmsnorm 1: %s", err.msg);
}

int main(void)
{
    int seen = 0;
    for_each_fixture("expected.h5", mamba2_fixture, &seen);
    CHECK(seen >= 5, "only %d mamba2_* fixtures", seen);
    built_checkpoints();
    config_alone();
    return TEST_SUMMARY();
}
