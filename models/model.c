#include "models/model.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/safetensors.h"
#include "models/layout.h"
#include "core/weights.h"

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
    const sl_layout_entry *entry;
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

static void mamba2_specs(sl_model *m, spec_list *l)
{
    const sl_config *c = &m->c;
    int64_t d = c->d_model, di = c->d_inner, GS = (int64_t)c->ngroups * c->d_state, H = c->nheads;
    for (int i = 0; i < c->n_layers; i++) {
        sl_mamba2_layer *y = &m->mamba2[i];
        want(l, &y->norm_w, 0, "[d_model]", 1, d, 0, 0, "layers.%d.norm.weight", i);
        if (c->norm == NORM_LAYER) want(l, &y->norm_b, 0, "[d_model]", 1, d, 0, 0, "layers.%d.norm.bias", i);
        want(l, &y->in_w, 0, "[2*d_inner + 2*ngroups*d_state + nheads, d_model]", 2, 2 * di + 2 * GS + H, d, 0,
             "layers.%d.mixer.in_proj.weight", i);
        want(l, &y->in_b, 1, "[2*d_inner + 2*ngroups*d_state + nheads]", 1, 2 * di + 2 * GS + H, 0, 0,
             "layers.%d.mixer.in_proj.bias", i);
        want(l, &y->conv_w, 0, "[d_inner + 2*ngroups*d_state, 1, d_conv]", 3, di + 2 * GS, 1, c->d_conv,
             "layers.%d.mixer.conv1d.weight", i);
        want(l, &y->conv_b, 1, "[d_inner + 2*ngroups*d_state]", 1, di + 2 * GS, 0, 0, "layers.%d.mixer.conv1d.bias", i);
        want(l, &y->dt_bias, 0, "[nheads]", 1, H, 0, 0, "layers.%d.mixer.dt_bias", i);
        /* A_log is read into the spot A will be computed from */
        want(l, (const float **)&y->A, 0, "[nheads]", 1, H, 0, 0, "layers.%d.mixer.A_log", i);
        if (c->D_has_hdim) want(l, &y->D, 0, "[d_inner] (D_has_hdim)", 1, di, 0, 0, "layers.%d.mixer.D", i);
        else want(l, &y->D, 0, "[nheads]", 1, H, 0, 0, "layers.%d.mixer.D", i);
        if (c->rmsnorm) want(l, &y->gnorm_w, 0, "[d_inner] (rmsnorm)", 1, di, 0, 0, "layers.%d.mixer.norm.weight", i);
        want(l, &y->out_w, 0, "[d_model, d_inner]", 2, d, di, 0, "layers.%d.mixer.out_proj.weight", i);
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


/* A tensor under the name seqlens gave it (models/layout.c). */
typedef struct {
    const char *name;
    st_tensor *t;
    const sl_layout_entry *e;
} canon;

static int cmp_canon(const void *a, const void *b)
{
    const canon *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x->t > y->t) - (x->t < y->t); /* ties in file order */
}

/* Sorted by seqlens name, so that a clash is two neighbours and each
 * lookup a binary search: n log n for a header of n entries, not n^2. */
static int canonical_names(const st_file *f, const sl_layout *lay, canon **out, int *n_out, sl_error *err)
{
    canon *names = malloc(((size_t)f->n + 1) * sizeof *names);
    if (!names) return sl_fail(err, SL_ERUNTIME, "out of memory");
    *out = names;
    int n = 0;
    for (int i = 0; i < f->n; i++)
        if (lay->e[i].name) names[n++] = (canon){lay->e[i].name, &f->tensors[i], &lay->e[i]};
    *n_out = n;
    if (n) qsort(names, (size_t)n, sizeof *names, cmp_canon);
    for (int i = 1; i < n; i++)
        if (!strcmp(names[i].name, names[i - 1].name))
            return sl_fail(err, SL_EINPUT, "%s: tensors '%s' and '%s' both take the role '%s'", f->path, names[i - 1].t->name,
                           names[i].t->name, names[i].name);
    return SL_OK;
}

static const canon *lookup(const canon *names, int n, const char *canonical)
{
    int lo = 0, hi = n;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (strcmp(names[mid].name, canonical) < 0) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && !strcmp(names[lo].name, canonical) ? &names[lo] : NULL;
}

/* ---- one message for every missing and every unclaimed tensor ---- */

/* Names alike but for their numbers (one line per kind of tensor, not per
 * layer): a pattern, a first example and how many. */
typedef struct {
    char pattern[192];
    int first, count;
} group;
enum { MAX_GROUPS = 24 };

static void pattern_of(const char *name, char *out, size_t n)
{
    size_t k = 0;
    for (const char *p = name; *p && k + 1 < n; p++) {
        if (*p >= '0' && *p <= '9') {
            while (p[1] >= '0' && p[1] <= '9') p++;
            out[k++] = '*';
        } else
            out[k++] = *p;
    }
    out[k] = 0;
}

/* returns 1 when the name joined a group (or was only counted) */
static void add_to_groups(group *g, int *ng, int *extra, const char *name, int idx)
{
    char pat[192];
    pattern_of(name, pat, sizeof pat);
    for (int k = 0; k < *ng; k++)
        if (!strcmp(g[k].pattern, pat)) { g[k].count++; return; }
    if (*ng == MAX_GROUPS) { (*extra)++; return; }
    snprintf(g[*ng].pattern, sizeof g[*ng].pattern, "%s", pat);
    g[*ng].first = idx;
    g[(*ng)++].count = 1;
}

/* The `prefix` or `names` entry that would turn an unclaimed name into a
 * missing one: the longest common tail at a '.' (at least two parts, such
 * as norm.weight) gives file part X for seqlens part Y; the pair most
 * tensors agree on wins. */
typedef struct {
    char y[160], x[192];
    int votes;
} fix;

static int common_tail(const char *u, const char *m)
{
    size_t lu = strlen(u), lm = strlen(m), k = 0, best = 0;
    while (k < lu && k < lm && u[lu - 1 - k] == m[lm - 1 - k]) {
        k++;
        int edge_u = k == lu || u[lu - 1 - k] == '.', edge_m = k == lm || m[lm - 1 - k] == '.';
        if (edge_u && edge_m) best = k;
    }
    return memchr(m + lm - best, '.', best) ? (int)best : 0;
}

static void suggest(const st_file *f, const spec_list *l, const int *miss, int n_miss, const int *unc, int n_unc, char *out,
                    size_t n)
{
    fix fx[16];
    int nf = 0;
    out[0] = 0;
    for (int a = 0; a < n_unc && a < 2000; a++)
        for (int b = 0; b < n_miss && b < 64; b++) {
            const char *u = f->tensors[unc[a]].name, *m = l->s[miss[b]].name;
            int t = common_tail(u, m);
            if (!t) continue;
            fix c = {"", "", 1};
            int ly = (int)strlen(m) - t, lx = (int)strlen(u) - t;
            snprintf(c.y, sizeof c.y, "%.*s", ly > 0 ? ly - 1 : 0, m);
            snprintf(c.x, sizeof c.x, "%.*s", lx > 0 ? lx - 1 : 0, u);
            if (!c.x[0]) continue;
            int k = 0;
            while (k < nf && (strcmp(fx[k].x, c.x) || strcmp(fx[k].y, c.y))) k++;
            if (k < nf) fx[k].votes++;
            else if (nf < 16) fx[nf++] = c;
            break; /* one vote per unclaimed tensor */
        }
    int best = -1;
    for (int k = 0; k < nf; k++)
        if (best < 0 || fx[k].votes > fx[best].votes) best = k;
    /* one tensor of each, of the same shape, beside the layers */
    if (best < 0 && n_miss == 1 && n_unc == 1) {
        const spec *s = &l->s[miss[0]];
        const st_tensor *t = &f->tensors[unc[0]];
        int same = t->ndim == s->ndim;
        for (int k = 0; same && k < s->ndim; k++) same = t->shape[k] == s->shape[k];
        if (same) {
            snprintf(fx[0].y, sizeof fx[0].y, "%s", s->name);
            snprintf(fx[0].x, sizeof fx[0].x, "%s", t->name);
            best = 0;
        }
    }
    if (best < 0) return;
    if (!fx[best].y[0]) snprintf(out, n, "; add \"prefix\": \"%s.\" to config.json", fx[best].x);
    else snprintf(out, n, "; add \"names\": {\"%s\": \"%s\"} to config.json", fx[best].y, fx[best].x);
}

static void append(char *buf, size_t n, int *left_out, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void append(char *buf, size_t n, int *left_out, const char *fmt, ...)
{
    char item[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(item, sizeof item, fmt, ap);
    va_end(ap);
    size_t k = strlen(buf);
    if (k + strlen(item) + 1 < n) memcpy(buf + k, item, strlen(item) + 1);
    else (*left_out)++;
}

static const char *cfg_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

static int unmatched(const sl_model *m, const st_file *f, const spec_list *l, const char *cfg, sl_error *err)
{
    int *miss = malloc(((size_t)l->n + 1) * sizeof *miss), *unc = malloc(((size_t)f->n + 1) * sizeof *unc);
    group *gm = malloc(MAX_GROUPS * sizeof *gm), *gu = malloc(MAX_GROUPS * sizeof *gu);
    if (!miss || !unc || !gm || !gu) {
        free(miss), free(unc), free(gm), free(gu);
        return sl_fail(err, SL_ERUNTIME, "out of memory");
    }
    int n_miss = 0, n_unc = 0, ngm = 0, ngu = 0, extra_m = 0, extra_u = 0;
    for (int i = 0; i < l->n; i++)
        if (!l->s[i].src && !l->s[i].optional) {
            miss[n_miss++] = i;
            add_to_groups(gm, &ngm, &extra_m, l->s[i].name, i);
        }
    for (int i = 0; i < f->n; i++)
        if (!f->tensors[i].used) {
            unc[n_unc++] = i;
            add_to_groups(gu, &ngu, &extra_u, f->tensors[i].name, i);
        }
    /* room for both lists and the fix within one error line */
    char msg[1000] = "", exp[96], tip[300];
    suggest(f, l, miss, n_miss, unc, n_unc, tip, sizeof tip);
    int left_m = extra_m, left_u = extra_u;
    for (int k = 0; k < ngm; k++) {
        const spec *s = &l->s[gm[k].first];
        st_shape_text(exp, sizeof exp, s->ndim, s->shape);
        char more[48] = "";
        if (gm[k].count > 1) snprintf(more, sizeof more, " (+%d like it)", gm[k].count - 1);
        append(msg, 520, &left_m, "%smissing tensor '%s' %s = %s%s", msg[0] ? "; " : "", s->name, exp, s->expr, more);
    }
    if (left_m) append(msg, sizeof msg, &left_m, "; %d more kinds missing", left_m);
    for (int k = 0; k < ngu; k++) {
        const st_tensor *t = &f->tensors[gu[k].first];
        st_shape_text(exp, sizeof exp, t->ndim, t->shape);
        char more[48] = "";
        if (gu[k].count > 1) snprintf(more, sizeof more, " (+%d like it)", gu[k].count - 1);
        append(msg, 840, &left_u, "%sunexpected tensor '%s' %s%s", msg[0] ? "; " : "", t->name, exp, more);
    }
    if (left_u) append(msg, sizeof msg, &left_u, "; %d more kinds unexpected", left_u);
    int rc = sl_fail(err, SL_EINPUT, "%s: %s (%s model, from %s and the weights)%s", f->path, msg, sl_arch_name(m->c.arch),
                     cfg_name(cfg), tip);
    free(miss), free(unc), free(gm), free(gu);
    return rc;
}

static int match_specs(sl_model *m, const st_file *f, const canon *names, int nn, spec_list *l, const char *cfg,
                       sl_error *err)
{
    char got[96], exp[96];
    int bad = 0;
    for (int i = 0; i < nn; i++)
        if (names[i].e->computed) names[i].t->used = 1; /* equal to the table seqlens computes */
    for (int i = 0; i < l->n; i++) {
        spec *s = &l->s[i];
        const canon *c = lookup(names, nn, s->name);
        if (!c || c->e->computed) {
            bad |= !s->optional;
            continue;
        }
        s->src = c->t;
        s->entry = c->e;
        s->src->used = 1;
        int same = c->e->ndim == s->ndim;
        for (int k = 0; same && k < s->ndim; k++) same = c->e->shape[k] == s->shape[k];
        if (!same) {
            st_shape_text(got, sizeof got, c->e->ndim, c->e->shape);
            st_shape_text(exp, sizeof exp, s->ndim, s->shape);
            return sl_fail(err, SL_EINPUT,
                           "%s: tensor '%s' has shape %s, but %s expects %s = %s (d_model=%d, n_layers=%d%s)", f->path,
                           s->src->name, got, cfg, exp, s->expr, m->c.d_model, m->c.n_layers,
                           m->c.arch == ARCH_MAMBA    ? ", see d_state/d_conv/expand/dt_rank"
                           : m->c.arch == ARCH_MAMBA2 ? ", see d_state/ngroups/headdim/d_conv/expand/D_has_hdim"
                                                      : ", see n_heads/d_ff/max_len");
        }
    }
    for (int i = 0; i < f->n && !bad; i++) bad = !f->tensors[i].used;
    return bad ? unmatched(m, f, l, cfg, err) : SL_OK;
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
    int nl = c->n_layers, per_layer = 9;
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
        } else if (c->arch == ARCH_MAMBA2) {
            /* in the order the block fires them (models/mamba2.c) */
            int GS = c->ngroups * c->d_state;
            add_point(m, HK_MIXER_IN_X, i, c->d_inner, 0, "blocks.%d.mixer.in_x", i);
            add_point(m, HK_MIXER_DELTA, i, c->nheads, 0, "blocks.%d.mixer.delta", i);
            add_point(m, HK_MIXER_B, i, GS, 0, "blocks.%d.mixer.B", i);
            add_point(m, HK_MIXER_C, i, GS, 0, "blocks.%d.mixer.C", i);
            add_point(m, HK_MIXER_Y, i, c->d_inner, 0, "blocks.%d.mixer.y", i);
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

int sl_model_ssm_heads(const sl_model *m) { return m->c.arch == ARCH_MAMBA2 ? m->c.nheads : 0; }

static int alloc_layers(sl_model *m, sl_error *err)
{
    int nl = m->c.n_layers;
    if (m->c.arch == ARCH_MAMBA) m->mamba = calloc((size_t)nl, sizeof *m->mamba);
    else if (m->c.arch == ARCH_MAMBA2) m->mamba2 = calloc((size_t)nl, sizeof *m->mamba2);
    else m->tf = calloc((size_t)nl, sizeof *m->tf);
    return !m->mamba && !m->mamba2 && !m->tf ? sl_fail(err, SL_ERUNTIME, "out of memory") : SL_OK;
}

/* config.json as written, completed by what the weights' names and shapes
 * say (models/layout.c), then each tensor the config asks for taken from
 * the file under the name the layout gave it. */
/* config.json first (its errors are the likelier), then the one weights
 * file of dir, whose path goes to st_path. */
static int load_weights(sl_model *m, const char *dir, const char *cfg_path, char *st_path, size_t st_size, sl_error *err)
{
    st_file f;
    memset(&f, 0, sizeof f);
    sl_config_doc doc;
    sl_layout lay = {0};
    canon *names = NULL;
    int nn = 0;
    spec_list l = {0};
    int rc = sl_config_doc_load(&doc, cfg_path, err);
    if (!rc) rc = sl_weights_find(dir, st_path, st_size, err);
    if (!rc) rc = sl_weights_read(&f, st_path, err);
    if (!rc) rc = sl_layout_detect(&lay, &f, &doc, err);
    if (!rc) rc = sl_config_resolve(&m->c, &doc, lay.facts, lay.facts_from, err);
    if (!rc) rc = alloc_layers(m, err);
    if (!rc) rc = canonical_names(&f, &lay, &names, &nn, err);
    if (!rc) {
        int64_t d = m->c.d_model;
        want(&l, &m->emb, 0, "[vocab_size, d_model]", 2, m->c.vocab_size, d, 0, "embedding.weight");
        if (m->c.arch == ARCH_MAMBA) mamba_specs(m, &l);
        else if (m->c.arch == ARCH_MAMBA2) mamba2_specs(m, &l);
        else transformer_specs(m, &l);
        /* the head may have one or two rows: take the file's, check the rest */
        const canon *hw = lookup(names, nn, "head.weight");
        int rows = hw && hw->e->ndim == 2 && hw->e->shape[0] == 2 ? 2 : 1;
        m->head_rows = rows;
        want(&l, &m->head_w, 0, "[1 or 2, d_model]", 2, rows, d, 0, "head.weight");
        want(&l, &m->head_b, 1, "[rows of head.weight]", 1, rows, 0, 0, "head.bias");
        if (l.failed) rc = sl_fail(err, SL_ERUNTIME, "out of memory");
    }
    if (!rc) rc = match_specs(m, &f, names, nn, &l, cfg_path, err);
    if (!rc) {
        size_t total = 0;
        for (int i = 0; i < l.n; i++)
            if (l.s[i].src) { l.s[i].offset = total; total += (size_t)st_numel(l.s[i].src); }
        m->n_params = total;
        m->weights = malloc((total ? total : 1) * sizeof(float));
        m->tensors = calloc((size_t)l.n + (size_t)nn, sizeof *m->tensors);
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
        snprintf(ti->role, sizeof ti->role, "%s", s->name);
        ti->how = s->entry->how;
        ti->dtype = s->src->dtype;
        ti->ndim = s->src->ndim;
        for (int k = 0; k < s->src->ndim && k < 4; k++) ti->shape[k] = s->src->shape[k];
    }
    /* read and found equal to the table seqlens computes: listed, not kept */
    for (int i = 0; !rc && i < nn; i++)
        if (names[i].e->computed) {
            sl_tensor_info *ti = &m->tensors[m->n_tensors++];
            snprintf(ti->name, sizeof ti->name, "%s", names[i].t->name);
            snprintf(ti->role, sizeof ti->role, "(sinusoidal positional table)");
            ti->how = names[i].e->how;
            ti->dtype = names[i].t->dtype;
            ti->ndim = names[i].t->ndim < 4 ? names[i].t->ndim : 4;
            for (int k = 0; k < ti->ndim; k++) ti->shape[k] = names[i].t->shape[k];
        }
    free(names);
    free(l.s);
    sl_layout_free(&lay);
    sl_config_doc_free(&doc);
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
        return sl_fail(err, SL_EINPUT, "%s: is not a directory (MODEL is a directory holding config.json and its weights: model.safetensors, pytorch_model.bin or one .pt/.pth)", dir);
    char cfg[4096], st[4096];
    snprintf(cfg, sizeof cfg, "%s/config.json", dir);
    int rc = load_weights(m, dir, cfg, st, sizeof st, err);
    if (rc) return rc;
    int nl = m->c.n_layers;
    rc = build_points(m, err);
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
    if (m->c.arch == ARCH_MAMBA2) {
        int H = m->c.nheads;
        m->A_t_storage = malloc((size_t)nl * (size_t)H * sizeof(float));
        if (!m->A_t_storage) return sl_fail(err, SL_ERUNTIME, "out of memory");
        for (int i = 0; i < nl; i++) {
            const float *A_log = m->mamba2[i].A;
            float *A = m->A_t_storage + (size_t)i * H;
            for (int h = 0; h < H; h++) A[h] = -expf(A_log[h]);
            m->mamba2[i].A = A;
        }
    }
    return SL_OK;
}

void sl_model_free(sl_model *m)
{
    free(m->weights);
    free(m->mamba);
    free(m->mamba2);
    free(m->tf);
    free(m->A_t_storage);
    free(m->tensors);
    free(m->points);
    free(m->point_of);
    memset(m, 0, sizeof *m);
}
