#include "models/model.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/safetensors.h"

/* One tensor the config says must (or may) be in the file. */
typedef struct {
    char name[160];
    int ndim;
    int64_t shape[4];
    const char *expr; /* the shape in config terms, for messages */
    int optional;
    const float **dst;
    size_t offset;
    st_tensor *src;
} spec;

typedef struct {
    spec *s;
    int n, cap;
    int failed;
} spec_list;

static void want(spec_list *l, const float **dst, int optional, const char *expr, int ndim, int64_t d0, int64_t d1,
                 int64_t d2, const char *fmt, ...) __attribute__((format(printf, 9, 10)));

static void want(spec_list *l, const float **dst, int optional, const char *expr, int ndim, int64_t d0, int64_t d1,
                 int64_t d2, const char *fmt, ...)
{
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 64;
        spec *s = realloc(l->s, (size_t)cap * sizeof *s);
        if (!s) { l->failed = 1; return; }
        l->s = s;
        l->cap = cap;
    }
    spec *s = &l->s[l->n++];
    memset(s, 0, sizeof *s);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->name, sizeof s->name, fmt, ap);
    va_end(ap);
    s->ndim = ndim;
    s->shape[0] = d0;
    s->shape[1] = d1;
    s->shape[2] = d2;
    s->expr = expr;
    s->optional = optional;
    s->dst = dst;
}

static void mamba_specs(sl_model *m, spec_list *l)
{
    const sl_config *c = &m->c;
    int64_t d = c->d_model, di = c->d_inner, S = c->d_state, R = c->dt_rank;
    for (int i = 0; i < c->n_layers; i++) {
        sl_mamba_layer *y = &m->mamba[i];
        want(l, &y->norm_w, 0, "[d_model]", 1, d, 0, 0, "layers.%d.norm.weight", i);
        if (c->norm == NORM_LAYER) want(l, &y->norm_b, 0, "[d_model]", 1, d, 0, 0, "layers.%d.norm.bias", i);
        want(l, &y->in_w, 0, "[2*expand*d_model, d_model]", 2, 2 * di, d, 0, "layers.%d.mixer.in_proj.weight", i);
        want(l, &y->in_b, 1, "[2*expand*d_model]", 1, 2 * di, 0, 0, "layers.%d.mixer.in_proj.bias", i);
        want(l, &y->conv_w, 0, "[expand*d_model, 1, d_conv]", 3, di, 1, c->d_conv, "layers.%d.mixer.conv1d.weight", i);
        want(l, &y->conv_b, 1, "[expand*d_model]", 1, di, 0, 0, "layers.%d.mixer.conv1d.bias", i);
        want(l, &y->xproj_w, 0, "[dt_rank + 2*d_state, expand*d_model]", 2, R + 2 * S, di, 0,
             "layers.%d.mixer.x_proj.weight", i);
        want(l, &y->dt_w, 0, "[expand*d_model, dt_rank]", 2, di, R, 0, "layers.%d.mixer.dt_proj.weight", i);
        want(l, &y->dt_b, 0, "[expand*d_model]", 1, di, 0, 0, "layers.%d.mixer.dt_proj.bias", i);
        /* A_log is read into the spot A_t will be computed from */
        want(l, (const float **)&y->A_t, 0, "[expand*d_model, d_state]", 2, di, S, 0, "layers.%d.mixer.A_log", i);
        want(l, &y->D, 0, "[expand*d_model]", 1, di, 0, 0, "layers.%d.mixer.D", i);
        want(l, &y->out_w, 0, "[d_model, expand*d_model]", 2, d, di, 0, "layers.%d.mixer.out_proj.weight", i);
        want(l, &y->out_b, 1, "[d_model]", 1, d, 0, 0, "layers.%d.mixer.out_proj.bias", i);
    }
    want(l, &m->norm_w, 0, "[d_model]", 1, d, 0, 0, "norm_f.weight");
    if (c->norm == NORM_LAYER) want(l, &m->norm_b, 0, "[d_model]", 1, d, 0, 0, "norm_f.bias");
}

static void transformer_specs(sl_model *m, spec_list *l)
{
    const sl_config *c = &m->c;
    int64_t d = c->d_model, f = c->d_ff;
    for (int i = 0; i < c->n_layers; i++) {
        sl_tf_layer *y = &m->tf[i];
        want(l, &y->qkv_w, 0, "[3*d_model, d_model]", 2, 3 * d, d, 0, "layers.%d.self_attn.in_proj_weight", i);
        want(l, &y->qkv_b, 1, "[3*d_model]", 1, 3 * d, 0, 0, "layers.%d.self_attn.in_proj_bias", i);
        want(l, &y->o_w, 0, "[d_model, d_model]", 2, d, d, 0, "layers.%d.self_attn.out_proj.weight", i);
        want(l, &y->o_b, 1, "[d_model]", 1, d, 0, 0, "layers.%d.self_attn.out_proj.bias", i);
        want(l, &y->ff1_w, 0, "[d_ff, d_model]", 2, f, d, 0, "layers.%d.linear1.weight", i);
        want(l, &y->ff1_b, 1, "[d_ff]", 1, f, 0, 0, "layers.%d.linear1.bias", i);
        want(l, &y->ff2_w, 0, "[d_model, d_ff]", 2, d, f, 0, "layers.%d.linear2.weight", i);
        want(l, &y->ff2_b, 1, "[d_model]", 1, d, 0, 0, "layers.%d.linear2.bias", i);
        want(l, &y->ln1_w, 0, "[d_model]", 1, d, 0, 0, "layers.%d.norm1.weight", i);
        want(l, &y->ln1_b, 1, "[d_model]", 1, d, 0, 0, "layers.%d.norm1.bias", i);
        want(l, &y->ln2_w, 0, "[d_model]", 1, d, 0, 0, "layers.%d.norm2.weight", i);
        want(l, &y->ln2_b, 1, "[d_model]", 1, d, 0, 0, "layers.%d.norm2.bias", i);
    }
    if (c->positional == POS_LEARNED)
        want(l, &m->pos, 0, "[max_len, d_model]", 2, c->max_len, d, 0, "pos_embedding.weight");
    if (c->final_norm) {
        want(l, &m->norm_w, 0, "[d_model]", 1, d, 0, 0, "norm.weight");
        want(l, &m->norm_b, 1, "[d_model]", 1, d, 0, 0, "norm.bias");
    }
}

static void shape_str(char *buf, size_t n, int ndim, const int64_t *shape)
{
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && k < n; i++) k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
}

/* A tensor under the name the config sees: the prefix stripped where
 * present. */
typedef struct {
    const char *name;
    st_tensor *t;
} canon;

static int cmp_canon(const void *a, const void *b)
{
    const canon *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x->t > y->t) - (x->t < y->t); /* ties in file order */
}

/* Sorted by canonical name, so that a clash is two neighbours and each
 * lookup a binary search: n log n for a header of n entries, not n^2. */
static int canonical_names(const sl_model *m, const st_file *f, canon **out, sl_error *err)
{
    size_t pl = strlen(m->c.prefix);
    canon *names = malloc(((size_t)f->n + 1) * sizeof *names);
    if (!names) return sl_fail(err, SL_ERUNTIME, "out of memory");
    *out = names;
    for (int i = 0; i < f->n; i++) {
        const char *nm = f->tensors[i].name;
        names[i] = (canon){pl && !strncmp(nm, m->c.prefix, pl) ? nm + pl : nm, &f->tensors[i]};
    }
    qsort(names, (size_t)f->n, sizeof *names, cmp_canon);
    for (int i = 1; i < f->n; i++)
        if (!strcmp(names[i].name, names[i - 1].name))
            return sl_fail(err, SL_EINPUT, "%s: tensors '%s' and '%s' both name '%s' once prefix \"%s\" is stripped",
                           f->path, names[i - 1].t->name, names[i].t->name, names[i].name, m->c.prefix);
    return SL_OK;
}

static st_tensor *lookup(const st_file *f, const canon *names, const char *canonical)
{
    int lo = 0, hi = f->n;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (strcmp(names[mid].name, canonical) < 0) lo = mid + 1;
        else hi = mid;
    }
    return lo < f->n && !strcmp(names[lo].name, canonical) ? names[lo].t : NULL;
}

static int match_specs(sl_model *m, const st_file *f, const canon *names, spec_list *l, const char *cfg, sl_error *err)
{
    char got[96], exp[96];
    for (int i = 0; i < l->n; i++) {
        spec *s = &l->s[i];
        s->src = lookup(f, names, s->name);
        if (!s->src) {
            if (s->optional) continue;
            shape_str(exp, sizeof exp, s->ndim, s->shape);
            return sl_fail(err, SL_EINPUT, "%s: missing tensor '%s%s' of shape %s = %s (from %s)", f->path,
                           strncmp(s->name, "head.", 5) ? m->c.prefix : "", s->name, exp, s->expr, cfg);
        }
        s->src->used = 1;
        int same = s->src->ndim == s->ndim;
        for (int k = 0; same && k < s->ndim; k++) same = s->src->shape[k] == s->shape[k];
        if (!same) {
            shape_str(got, sizeof got, s->src->ndim, s->src->shape);
            shape_str(exp, sizeof exp, s->ndim, s->shape);
            return sl_fail(err, SL_EINPUT,
                           "%s: tensor '%s' has shape %s, but %s expects %s = %s (d_model=%d, n_layers=%d%s)", f->path,
                           s->src->name, got, cfg, exp, s->expr, m->c.d_model, m->c.n_layers,
                           m->c.arch == ARCH_MAMBA ? ", see d_state/d_conv/expand/dt_rank" : ", see n_heads/d_ff/max_len");
        }
    }
    for (int i = 0; i < f->n; i++)
        if (!f->tensors[i].used)
            return sl_fail(err, SL_EINPUT, "%s: unexpected tensor '%s' (not part of a %s model with %s)", f->path,
                           f->tensors[i].name, sl_arch_name(m->c.arch), cfg);
    return SL_OK;
}

static void add_point(sl_model *m, int kind, int layer, int width, int per_example, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static void add_point(sl_model *m, int kind, int layer, int width, int per_example, const char *fmt, ...)
{
    sl_hook_point *p = &m->points[m->n_points];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->name, sizeof p->name, fmt, ap);
    va_end(ap);
    p->kind = kind;
    p->layer = layer;
    p->width = width;
    p->per_example = per_example;
    m->point_of[kind * (m->c.n_layers + 1) + (layer < 0 ? m->c.n_layers : layer)] = m->n_points++;
}

static int build_points(sl_model *m, sl_error *err)
{
    const sl_config *c = &m->c;
    int nl = c->n_layers, per_layer = 8;
    m->points = calloc((size_t)(nl * per_layer + 8), sizeof *m->points);
    m->point_of = malloc((size_t)HK_COUNT * (size_t)(nl + 1) * sizeof *m->point_of);
    if (!m->points || !m->point_of) return sl_fail(err, SL_ERUNTIME, "out of memory");
    for (int i = 0; i < HK_COUNT * (nl + 1); i++) m->point_of[i] = -1;
    int d = c->d_model;
    add_point(m, HK_EMBED_TOKENS, -1, d, 0, "embed.tokens");
    add_point(m, HK_EMBED, -1, d, 0, "embed");
    for (int i = 0; i < nl; i++) {
        add_point(m, HK_RESID_PRE, i, d, 0, "blocks.%d.resid_pre", i);
        if (c->arch == ARCH_MAMBA) {
            add_point(m, HK_MIXER_IN_X, i, c->d_inner, 0, "blocks.%d.mixer.in_x", i);
            add_point(m, HK_MIXER_DELTA, i, c->d_inner, 0, "blocks.%d.mixer.delta", i);
            add_point(m, HK_MIXER_B, i, c->d_state, 0, "blocks.%d.mixer.B", i);
            add_point(m, HK_MIXER_C, i, c->d_state, 0, "blocks.%d.mixer.C", i);
            add_point(m, HK_MIXER_GATE, i, c->d_inner, 0, "blocks.%d.mixer.gate", i);
            add_point(m, HK_MIXER_OUT, i, d, 0, "blocks.%d.mixer.out", i);
        } else {
            add_point(m, HK_ATTN_PATTERN, i, 0, 0, "blocks.%d.attn.pattern", i);
            add_point(m, HK_ATTN_OUT, i, d, 0, "blocks.%d.attn.out", i);
            add_point(m, HK_MLP_HIDDEN, i, c->d_ff, 0, "blocks.%d.mlp.hidden", i);
            add_point(m, HK_MLP_OUT, i, d, 0, "blocks.%d.mlp.out", i);
        }
        add_point(m, HK_RESID_POST, i, d, 0, "blocks.%d.resid_post", i);
    }
    add_point(m, HK_FINAL, -1, d, 0, "final");
    add_point(m, HK_POOLED, -1, d, 1, "pooled");
    add_point(m, HK_LOGITS, -1, 1, 1, "logits");
    return SL_OK;
}

int sl_model_point(const sl_model *m, int kind, int layer)
{
    int model_level = kind <= HK_EMBED || kind >= HK_FINAL;
    return m->point_of[kind * (m->c.n_layers + 1) + (model_level ? m->c.n_layers : layer)];
}

int sl_model_find_point(const sl_model *m, const char *name)
{
    for (int i = 0; i < m->n_points; i++)
        if (!strcmp(m->points[i].name, name)) return i;
    return -1;
}

static int load_weights(sl_model *m, const char *st_path, const char *cfg_path, sl_error *err)
{
    st_file f;
    int rc = st_open(&f, st_path, err);
    canon *names = NULL;
    spec_list l = {0};
    if (!rc) rc = canonical_names(m, &f, &names, err);
    if (!rc) {
        int64_t d = m->c.d_model;
        want(&l, &m->emb, 0, "[vocab_size, d_model]", 2, m->c.vocab_size, d, 0, "embedding.weight");
        if (m->c.arch == ARCH_MAMBA) mamba_specs(m, &l); else transformer_specs(m, &l);
        /* the head may have one or two rows: take the file's, check the rest */
        st_tensor *hw = lookup(&f, names, "head.weight");
        int rows = hw && hw->ndim == 2 && hw->shape[0] == 2 ? 2 : 1;
        m->head_rows = rows;
        want(&l, &m->head_w, 0, "[1 or 2, d_model]", 2, rows, d, 0, "head.weight");
        want(&l, &m->head_b, 1, "[rows of head.weight]", 1, rows, 0, 0, "head.bias");
        if (l.failed) rc = sl_fail(err, SL_ERUNTIME, "out of memory");
    }
    if (!rc) rc = match_specs(m, &f, names, &l, cfg_path, err);
    if (!rc) {
        size_t total = 0;
        for (int i = 0; i < l.n; i++)
            if (l.s[i].src) { l.s[i].offset = total; total += (size_t)st_numel(l.s[i].src); }
        m->n_params = total;
        m->weights = malloc((total ? total : 1) * sizeof(float));
        m->tensors = calloc((size_t)l.n, sizeof *m->tensors);
        if (!m->weights || !m->tensors) rc = sl_fail(err, SL_ERUNTIME, "out of memory for %zu weights", total);
    }
    for (int i = 0; !rc && i < l.n; i++) {
        spec *s = &l.s[i];
        if (!s->src) { *s->dst = NULL; continue; }
        float *w = m->weights + s->offset;
        st_to_f32(&f, s->src, w);
        *s->dst = w;
        sl_tensor_info *ti = &m->tensors[m->n_tensors++];
        snprintf(ti->name, sizeof ti->name, "%s", s->src->name);
        ti->dtype = s->src->dtype;
        ti->ndim = s->src->ndim;
        for (int k = 0; k < s->src->ndim && k < 4; k++) ti->shape[k] = s->src->shape[k];
    }
    free(names);
    free(l.s);
    st_close(&f);
    return rc;
}

/* Non-finite weights still run (the user may want to see where they go),
 * but nobody should miss that they are there: a run they spoil fails on
 * its non-finite logits or activations, one that succeeds ends with this. */
static void warn_nonfinite(const sl_model *m, const char *path)
{
    size_t bad = 0;
    for (size_t i = 0; i < m->n_params; i++) bad += !isfinite(m->weights[i]);
    if (bad) sl_warn("%s: %zu weights are NaN or infinite", path, bad);
}

int sl_model_load(sl_model *m, const char *dir, sl_error *err)
{
    memset(m, 0, sizeof *m);
    struct stat ds;
    if (stat(dir, &ds) != 0) return sl_fail(err, SL_EINPUT, "%s: cannot open: %s", dir, strerror(errno));
    if (!S_ISDIR(ds.st_mode))
        return sl_fail(err, SL_EINPUT, "%s: is not a directory (MODEL is a directory holding config.json and model.safetensors)", dir);
    char cfg[4096], st[4096];
    snprintf(cfg, sizeof cfg, "%s/config.json", dir);
    snprintf(st, sizeof st, "%s/model.safetensors", dir);
    int rc = sl_config_load(&m->c, cfg, err);
    if (rc) return rc;
    int nl = m->c.n_layers;
    if (m->c.arch == ARCH_MAMBA) m->mamba = calloc((size_t)nl, sizeof *m->mamba);
    else m->tf = calloc((size_t)nl, sizeof *m->tf);
    if (!m->mamba && !m->tf) return sl_fail(err, SL_ERUNTIME, "out of memory");
    rc = load_weights(m, st, cfg, err);
    if (!rc) rc = build_points(m, err);
    if (rc) return rc;
    warn_nonfinite(m, st);
    if (m->c.arch == ARCH_MAMBA) {
        int di = m->c.d_inner, S = m->c.d_state;
        m->A_t_storage = malloc((size_t)nl * (size_t)di * (size_t)S * sizeof(float));
        if (!m->A_t_storage) return sl_fail(err, SL_ERUNTIME, "out of memory");
        for (int i = 0; i < nl; i++) {
            const float *A_log = m->mamba[i].A_t;
            float *At = m->A_t_storage + (size_t)i * di * S;
            for (int c = 0; c < di; c++)
                for (int n = 0; n < S; n++) At[n * di + c] = -expf(A_log[c * S + n]);
            m->mamba[i].A_t = At;
        }
    }
    return SL_OK;
}

void sl_model_free(sl_model *m)
{
    free(m->weights);
    free(m->mamba);
    free(m->tf);
    free(m->A_t_storage);
    free(m->tensors);
    free(m->points);
    free(m->point_of);
    memset(m, 0, sizeof *m);
}
