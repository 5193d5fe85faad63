#include "models/layout.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/safetensors.h"

enum { ANY, TF, MAMBA };

/* A layer's own names: torch.nn.TransformerEncoderLayer's, and the block of
 * mamba_ssm's MixerModel and Hugging Face's MambaModel (norm + mixer). */
static const struct {
    const char *suffix;
    int kind;
} IN_LAYER[] = {
    {"self_attn.in_proj_weight", TF}, {"self_attn.in_proj_bias", TF}, {"self_attn.out_proj.weight", TF},
    {"self_attn.out_proj.bias", TF},  {"linear1.weight", TF},         {"linear1.bias", TF},
    {"linear2.weight", TF},           {"linear2.bias", TF},           {"norm1.weight", TF},
    {"norm1.bias", TF},               {"norm2.weight", TF},           {"norm2.bias", TF},
    {"norm.weight", MAMBA},           {"norm.bias", MAMBA},           {"mixer.in_proj.weight", MAMBA},
    {"mixer.in_proj.bias", MAMBA},    {"mixer.conv1d.weight", MAMBA}, {"mixer.conv1d.bias", MAMBA},
    {"mixer.x_proj.weight", MAMBA},   {"mixer.dt_proj.weight", MAMBA}, {"mixer.dt_proj.bias", MAMBA},
    {"mixer.A_log", MAMBA},           {"mixer.D", MAMBA},             {"mixer.out_proj.weight", MAMBA},
    {"mixer.out_proj.bias", MAMBA},   {"mixer.dt_bias", MAMBA},       {"mixer.norm.weight", MAMBA},
};
#define N_IN_LAYER ((int)(sizeof IN_LAYER / sizeof *IN_LAYER))

/* Beside the layers, under the same module path: the final norm
 * (TransformerEncoder's norm, MixerModel's norm_f), the embedding
 * (MixerModel's embedding, MambaModel's embeddings) and seqlens's own. */
static const struct {
    const char *rest, *name;
    int kind;
} BESIDE[] = {
    {"embedding.weight", "embedding.weight", ANY}, {"embeddings.weight", "embedding.weight", MAMBA},
    {"norm_f.weight", "norm_f.weight", MAMBA},     {"norm_f.bias", "norm_f.bias", MAMBA},
    {"norm.weight", "norm.weight", TF},            {"norm.bias", "norm.bias", TF},
    {"pos_embedding.weight", "pos_embedding.weight", TF},
    {"head.weight", "head.weight", ANY},           {"head.bias", "head.bias", ANY},
};

typedef struct {
    const char *p;
    int len, known, kinds, max_layer, max_at;
} stack;

typedef struct {
    const st_file *f;
    const sl_config_doc *d;
    sl_layout *L;
    sl_error *err;
    const char **base; /* the name layouts read: names-mapped or prefix-stripped */
    char **mapped;     /* [n] owned names from `names`, or NULL */
    int kind;          /* TF, MAMBA or ANY (no layers found) */
    const char *stack_p;
    int stack_len;
    int slot[N_IN_LAYER]; /* layer 0's tensors, -1 if absent */
    int64_t dm;           /* d_model, 0 if unknown */
    int mamba2;           /* the layers are Mamba-2 blocks (mixer.dt_bias) */
} ctx;


static int claim(ctx *c, int i, const char *name, const char *how)
{
    sl_layout_entry *e = &c->L->e[i];
    free(e->name);
    e->name = strdup(name);
    e->how = how;
    return e->name ? SL_OK : sl_fail(c->err, SL_ERUNTIME, "out of memory");
}

static int fact(ctx *c, const char *key, cJSON *v, int tensor)
{
    char from[232], sh[96];
    const st_tensor *t = &c->f->tensors[tensor];
    st_shape_text(sh, sizeof sh, t->ndim, t->shape);
    snprintf(from, sizeof from, "tensor '%s' %s", t->name, sh);
    cJSON *s = cJSON_CreateString(from);
    if (!v || !s || !cJSON_AddItemToObject(c->L->facts, key, v)) {
        cJSON_Delete(v);
        cJSON_Delete(s);
        return sl_fail(c->err, SL_ERUNTIME, "out of memory");
    }
    cJSON_AddItemToObject(c->L->facts_from, key, s);
    return SL_OK;
}

#define TRY(x) do { int rc_ = (x); if (rc_) return rc_; } while (0)

/* ---- names and prefix ---- */

typedef struct {
    const char *key, *val;
    size_t klen, vlen;
} alias;

static int cmp_alias(const void *a, const void *b)
{
    const alias *x = a, *y = b;
    size_t n = x->vlen < y->vlen ? x->vlen : y->vlen;
    int r = memcmp(x->val, y->val, n);
    return r ? r : (x->vlen > y->vlen) - (x->vlen < y->vlen);
}

static size_t without_dot(const char *s)
{
    size_t n = strlen(s);
    return n && s[n - 1] == '.' ? n - 1 : n;
}

/* `names` maps a seqlens name or prefix to the file's: the longest file
 * prefix (at a '.') that some entry names wins; a lookup per '.' of each
 * name, over the entries sorted. */
static int apply_names(ctx *c)
{
    const cJSON *names = c->d ? c->d->names : NULL;
    int k = cJSON_GetArraySize(names), rc = SL_OK;
    const char *prefix = c->d ? cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c->d->keys, "prefix")) : NULL;
    size_t pl = prefix ? strlen(prefix) : 0;
    alias *a = k ? malloc((size_t)k * sizeof *a) : NULL;
    if (k && !a) return sl_fail(c->err, SL_ERUNTIME, "out of memory");
    int na = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, names) a[na++] = (alias){e->string, e->valuestring, without_dot(e->string), without_dot(e->valuestring)};
    if (na) qsort(a, (size_t)na, sizeof *a, cmp_alias);
    for (int i = 0; !rc && i < c->f->n; i++) {
        const char *s = c->f->tensors[i].name;
        c->base[i] = pl && !strncmp(s, prefix, pl) ? s + pl : s;
        for (size_t len = strlen(s) + 1; na && len-- > 0;) {
            if (s[len] != '.' && s[len] != 0) continue;
            alias want = {NULL, s, 0, len};
            const alias *hit = bsearch(&want, a, (size_t)na, sizeof *a, cmp_alias);
            if (!hit) continue;
            size_t rest = strlen(s + len);
            char *m = malloc(hit->klen + rest + 1);
            if (!m) { rc = sl_fail(c->err, SL_ERUNTIME, "out of memory"); break; }
            memcpy(m, hit->key, hit->klen);
            memcpy(m + hit->klen, s + len, rest + 1);
            c->mapped[i] = m;
            c->base[i] = m;
            break;
        }
    }
    free(a);
    return rc;
}

/* ---- the layer stack ---- */

/* "layers.<i>." at a module boundary: its offset, with the layer and the
 * name inside it; -1 if none. */
static int find_layer(const char *s, int *layer, const char **inside)
{
    for (const char *p = s; (p = strstr(p, "layers.")) != NULL; p++) {
        if (p != s && p[-1] != '.') continue;
        const char *q = p + 7;
        int v = 0, nd = 0;
        while (*q >= '0' && *q <= '9' && nd < 5) v = v * 10 + (*q++ - '0'), nd++;
        if (!nd || *q != '.' || v >= 4096) continue;
        *layer = v;
        *inside = q + 1;
        return (int)(p - s);
    }
    return -1;
}

static int in_layer_index(const char *inside)
{
    for (int k = 0; k < N_IN_LAYER; k++)
        if (!strcmp(inside, IN_LAYER[k].suffix)) return k;
    return -1;
}

static int find_stack(ctx *c)
{
    enum { MAX_STACKS = 16 };
    stack st[MAX_STACKS];
    int ns = 0;
    for (int i = 0; i < c->f->n; i++) {
        int layer = 0, at;
        const char *inside = "";
        if ((at = find_layer(c->base[i], &layer, &inside)) < 0) continue;
        int k = in_layer_index(inside), s = 0;
        if (k < 0) continue;
        while (s < ns && !(st[s].len == at && !memcmp(st[s].p, c->base[i], (size_t)at))) s++;
        if (s == ns) {
            if (ns == MAX_STACKS) continue;
            st[ns++] = (stack){c->base[i], at, 0, 0, -1, -1};
        }
        st[s].known++;
        st[s].kinds |= 1 << IN_LAYER[k].kind;
        if (layer > st[s].max_layer) st[s].max_layer = layer, st[s].max_at = i;
    }
    if (ns > 1)
        return sl_fail(c->err, SL_EINPUT,
                       "%s: two layer stacks, '%.*slayers.<i>.*' and '%.*slayers.<i>.*': name the model's own in config.json, "
                       "e.g. \"names\": {\"layers\": \"%.*slayers\"}",
                       c->f->path, st[0].len, st[0].p, st[1].len, st[1].p, st[0].len, st[0].p);
    if (!ns) { c->stack_p = ""; return SL_OK; }
    for (int i = 0; st[0].kinds == ((1 << TF) | (1 << MAMBA)) && i < c->f->n; i++) {
        /* mamba_ssm's blocks with d_intermediate > 0 add norm2 and mlp.* (a gated MLP after the mixer) */
        int layer = 0;
        const char *inside = "";
        if (find_layer(c->base[i], &layer, &inside) == st[0].len && !strncmp(inside, "mlp.", 4))
            return sl_fail(c->err, SL_EINPUT,
                           "%s: tensor '%s': Mamba blocks with an MLP after the mixer (mamba_ssm's d_intermediate > 0: "
                           "norm2 and mlp.*) are not supported", c->f->path, c->f->tensors[i].name);
    }
    if (st[0].kinds == ((1 << TF) | (1 << MAMBA)))
        return sl_fail(c->err, SL_EINPUT, "%s: '%.*slayers.<i>.*' holds both Mamba (mixer.*) and Transformer (self_attn.*) tensors",
                       c->f->path, st[0].len, st[0].p);
    c->kind = st[0].kinds == 1 << TF ? TF : MAMBA;
    c->stack_p = st[0].p;
    c->stack_len = st[0].len;
    for (int i = 0; i < c->f->n; i++) {
        int layer = 0, k;
        const char *inside = "";
        if (find_layer(c->base[i], &layer, &inside) != c->stack_len || strncmp(c->base[i], c->stack_p, (size_t)c->stack_len) ||
            (k = in_layer_index(inside)) < 0)
            continue;
        char name[200];
        snprintf(name, sizeof name, "layers.%d.%s", layer, inside);
        TRY(claim(c, i, name, "layer"));
        if (layer == 0) c->slot[k] = i;
    }
    /* Mamba-2's mixer has dt_bias [nheads] where Mamba-1's has dt_proj */
    int dt_bias = -1;
    for (int k = 0; k < N_IN_LAYER; k++)
        if (!strcmp(IN_LAYER[k].suffix, "mixer.dt_bias")) dt_bias = c->slot[k];
    c->mamba2 = c->kind == MAMBA && dt_bias >= 0;
    TRY(fact(c, "arch", cJSON_CreateString(c->kind == TF ? "transformer" : c->mamba2 ? "mamba2" : "mamba"),
             c->mamba2 ? dt_bias : st[0].max_at));
    return fact(c, "n_layers", cJSON_CreateNumber(st[0].max_layer + 1), st[0].max_at);
}

/* a tensor inside an indexed module (a ModuleList entry): never a role
 * outside the layers */
static int indexed(const char *name)
{
    for (const char *p = strchr(name, '.'); p; p = strchr(p + 1, '.'))
        if (p[1] >= '0' && p[1] <= '9') {
            const char *q = p + 1;
            while (*q >= '0' && *q <= '9') q++;
            if (*q == '.') return 1;
        }
    return 0;
}

static int taken(ctx *c, const char *name)
{
    for (int i = 0; i < c->f->n; i++)
        if (c->L->e[i].name && !strcmp(c->L->e[i].name, name)) return 1;
    return 0;
}

/* Beside the layers under their module path first; then, for what is still
 * missing, under any path (a final norm or embedding kept apart from the
 * layers, or layers renamed by `names`). */
static int beside_stack(ctx *c)
{
    for (int pass = 0; pass < 2; pass++)
        for (size_t k = 0; k < sizeof BESIDE / sizeof *BESIDE; k++) {
            if (!(BESIDE[k].kind == ANY || c->kind == ANY || BESIDE[k].kind == c->kind)) continue;
            if (pass && taken(c, BESIDE[k].name)) continue;
            size_t rl = strlen(BESIDE[k].rest);
            int hit = -1, hits = 0;
            for (int i = 0; i < c->f->n; i++) {
                const char *b = c->base[i];
                size_t bl = strlen(b);
                if (c->L->e[i].name) continue;
                if (!pass && !strncmp(b, c->stack_p, (size_t)c->stack_len) && !strcmp(b + c->stack_len, BESIDE[k].rest))
                    TRY(claim(c, i, BESIDE[k].name, c->stack_len ? "beside the layers" : "seqlens's name"));
                else if (pass && bl > rl && b[bl - rl - 1] == '.' && !strcmp(b + bl - rl, BESIDE[k].rest) && !indexed(b))
                    hit = i, hits++;
            }
            if (hits == 1) TRY(claim(c, hit, BESIDE[k].name, "by its module name"));
        }
    return SL_OK;
}

/* ---- what the layer tensors say ---- */

static const st_tensor *at_slot(ctx *c, const char *suffix, int ndim)
{
    for (int k = 0; k < N_IN_LAYER; k++)
        if (!strcmp(IN_LAYER[k].suffix, suffix) && c->slot[k] >= 0) {
            const st_tensor *t = &c->f->tensors[c->slot[k]];
            return t->ndim == ndim ? t : NULL;
        }
    return NULL;
}

static int slot_fact(ctx *c, const char *key, double v, const st_tensor *t)
{
    return t ? fact(c, key, cJSON_CreateNumber(v), (int)(t - c->f->tensors)) : SL_OK;
}

/* A bias key of the config (Hugging Face's use_bias, use_conv_bias) against
 * layer 0: true if the bias beside weight_suffix is there. Only checked
 * when the config gives the key: seqlens reads the biases it finds. */
static int bias_fact(ctx *c, const char *key, const char *weight_suffix, int ndim)
{
    if (!c->d || !cJSON_GetObjectItemCaseSensitive(c->d->keys, key)) return SL_OK;
    const st_tensor *w = at_slot(c, weight_suffix, ndim);
    if (!w) return SL_OK;
    char bias[256];
    snprintf(bias, sizeof bias, "%.*sbias", (int)(strlen(weight_suffix) - 6), weight_suffix);
    const st_tensor *b = at_slot(c, bias, 1);
    TRY(fact(c, key, cJSON_CreateBool(b != NULL), (int)((b ? b : w) - c->f->tensors)));
    if (!b) {
        char from[300];
        snprintf(from, sizeof from, "the absence of '%.*sbias'", (int)(strlen(w->name) - 6), w->name);
        cJSON_ReplaceItemInObjectCaseSensitive(c->L->facts_from, key, cJSON_CreateString(from));
    }
    return SL_OK;
}

/* A fact read off a tensor's absence: the source names the missing tensor
 * beside one that is there. */
static int absent_fact(ctx *c, const char *key, const st_tensor *beside, const char *missing_suffix)
{
    TRY(fact(c, key, cJSON_CreateBool(0), (int)(beside - c->f->tensors)));
    char from[300];
    const char *dot = strstr(beside->name, "mixer.");
    snprintf(from, sizeof from, "the absence of '%.*s%s'", dot ? (int)(dot - beside->name) : 0, beside->name, missing_suffix);
    cJSON_ReplaceItemInObjectCaseSensitive(c->L->facts_from, key, cJSON_CreateString(from));
    return SL_OK;
}

/* Mamba-2 (design.md 2.4): out_proj [d, d_inner], conv1d [d_inner + 2 G S,
 * 1, d_conv], A_log [nheads], in_proj [2 d_inner + 2 G S + nheads, d]; only
 * the product G S is determined (SL_FACT_GROUP_STATE). */
static int mamba2_facts(ctx *c)
{
    const st_tensor *in = at_slot(c, "mixer.in_proj.weight", 2), *out = at_slot(c, "mixer.out_proj.weight", 2);
    const st_tensor *conv = at_slot(c, "mixer.conv1d.weight", 3), *A = at_slot(c, "mixer.A_log", 1);
    const st_tensor *D = at_slot(c, "mixer.D", 1), *gn = at_slot(c, "mixer.norm.weight", 1);
    if (in) c->dm = in->shape[1];
    TRY(slot_fact(c, "d_model", (double)c->dm, in));
    int64_t di = out ? out->shape[1] : 0, gs2 = conv && di ? conv->shape[0] - di : -1, H = A ? A->shape[0] : 0;
    if (di > 0 && c->dm > 0 && di % c->dm == 0) TRY(slot_fact(c, "expand", (double)(di / c->dm), out));
    if (conv) TRY(slot_fact(c, "d_conv", (double)conv->shape[2], conv));
    if (gs2 > 0 && gs2 % 2 == 0) TRY(slot_fact(c, SL_FACT_GROUP_STATE, (double)(gs2 / 2), conv));
    if (di > 0 && H > 0 && di % H == 0) TRY(slot_fact(c, "headdim", (double)(di / H), A));
    /* D per head or per channel (the same thing when headdim is 1) */
    if (D && H > 0 && H != di && (D->shape[0] == H || D->shape[0] == di))
        TRY(fact(c, "D_has_hdim", cJSON_CreateBool(D->shape[0] == di), (int)(D - c->f->tensors)));
    if (gn) TRY(fact(c, "rmsnorm", cJSON_CreateBool(1), (int)(gn - c->f->tensors)));
    else if (out) TRY(absent_fact(c, "rmsnorm", out, "mixer.norm.weight"));
    /* mamba_ssm's d_ssm < d_inner puts a gated MLP's z0, x0 first in in_proj */
    if (in && di > 0 && gs2 > 0 && H > 0) {
        int64_t extra = in->shape[0] - (2 * di + gs2 + H);
        if (extra > 0 && extra % 2 == 0)
            return sl_fail(c->err, SL_EINPUT,
                           "%s: tensor '%s' has %lld rows, 2*d_mlp = %lld more than 2*d_inner + 2*ngroups*d_state + nheads = "
                           "%lld: a Mamba2 block with d_mlp %lld > 0 (d_ssm < d_inner, a gated MLP beside the SSM) is not "
                           "supported", c->f->path, in->name, (long long)in->shape[0], (long long)extra,
                           (long long)(2 * di + gs2 + H), (long long)(extra / 2));
    }
    return SL_OK;
}

static int layer_facts(ctx *c)
{
    const st_tensor *t;
    if (c->kind == MAMBA && c->mamba2) {
        TRY(mamba2_facts(c));
        const st_tensor *nw = at_slot(c, "norm.weight", 1), *nb = at_slot(c, "norm.bias", 1);
        if (nw || nb)
            TRY(fact(c, "norm", cJSON_CreateString(nb ? "layer" : "rms"), (int)((nb ? nb : nw) - c->f->tensors)));
        TRY(bias_fact(c, "use_bias", "mixer.in_proj.weight", 2));
        TRY(bias_fact(c, "use_conv_bias", "mixer.conv1d.weight", 3));
    } else if (c->kind == MAMBA) {
        const st_tensor *in = at_slot(c, "mixer.in_proj.weight", 2);
        if (in) c->dm = in->shape[1];
        TRY(slot_fact(c, "d_model", (double)c->dm, in));
        /* in_proj's rows are 2 * d_inner = 2 * expand * d_model */
        if (in && in->shape[1] > 0 && in->shape[0] % (2 * in->shape[1]) == 0)
            TRY(slot_fact(c, "expand", (double)(in->shape[0] / (2 * in->shape[1])), in));
        t = at_slot(c, "mixer.conv1d.weight", 3);
        TRY(slot_fact(c, "d_conv", t ? (double)t->shape[2] : 0, t));
        t = at_slot(c, "mixer.A_log", 2);
        TRY(slot_fact(c, "d_state", t ? (double)t->shape[1] : 0, t));
        t = at_slot(c, "mixer.dt_proj.weight", 2);
        TRY(slot_fact(c, "dt_rank", t ? (double)t->shape[1] : 0, t));
        const st_tensor *nw = at_slot(c, "norm.weight", 1), *nb = at_slot(c, "norm.bias", 1);
        if (nw || nb)
            TRY(fact(c, "norm", cJSON_CreateString(nb ? "layer" : "rms"), (int)((nb ? nb : nw) - c->f->tensors)));
        TRY(bias_fact(c, "use_bias", "mixer.in_proj.weight", 2));
        TRY(bias_fact(c, "use_conv_bias", "mixer.conv1d.weight", 3));
    } else if (c->kind == TF) {
        const st_tensor *in = at_slot(c, "self_attn.in_proj_weight", 2);
        if (in) c->dm = in->shape[1];
        TRY(slot_fact(c, "d_model", (double)c->dm, in));
        t = at_slot(c, "linear1.weight", 2);
        TRY(slot_fact(c, "d_ff", t ? (double)t->shape[0] : 0, t));
        int fn = -1;
        for (int i = 0; i < c->f->n && fn < 0; i++)
            if (c->L->e[i].name && !strcmp(c->L->e[i].name, "norm.weight")) fn = i;
        /* the final norm's presence is the key; its absence too, once the
         * layers are known */
        TRY(fact(c, "final_norm", cJSON_CreateBool(fn >= 0), fn >= 0 ? fn : c->slot[0] >= 0 ? c->slot[0] : 0));
        if (fn < 0) {
            char from[232];
            snprintf(from, sizeof from, "the absence of '%.*snorm.weight'", c->stack_len, c->stack_p);
            cJSON_ReplaceItemInObjectCaseSensitive(c->L->facts_from, "final_norm", cJSON_CreateString(from));
        }
    }
    if (!c->dm) {
        const cJSON *dm = c->d ? cJSON_GetObjectItemCaseSensitive(c->d->keys, "d_model") : NULL;
        if (cJSON_IsNumber(dm)) c->dm = (int64_t)dm->valuedouble;
    }
    return SL_OK;
}

/* ---- roles outside the layers ---- */

static int last_is(const char *name, const char *comp)
{
    const char *dot = strrchr(name, '.');
    return !strcmp(dot ? dot + 1 : name, comp);
}

static int named(ctx *c, const char *name)
{
    for (int i = 0; i < c->f->n; i++)
        if (c->L->e[i].name && !strcmp(c->L->e[i].name, name)) return i;
    return -1;
}

static int ambiguous(ctx *c, const char *what, const int *idx, int n, const char *fix)
{
    char list[600] = "", sh[96];
    for (int k = 0; k < n && k < 6; k++) {
        const st_tensor *t = &c->f->tensors[idx[k]];
        st_shape_text(sh, sizeof sh, t->ndim, t->shape);
        size_t len = strlen(list);
        snprintf(list + len, sizeof list - len, "%s'%s' %s", k ? ", " : "", t->name, sh);
    }
    return sl_fail(c->err, SL_EINPUT, "%s: %d tensors could be the %s: %s; %s", c->f->path, n, what, list, fix);
}

/* The tutorial's table as PyTorch computes it in float32: position *
 * exp(2i * -ln(10000) / d), then sin on even and cos on odd dimensions. */
static int is_sinusoid(const st_file *f, const st_tensor *t, int64_t rows, int64_t d, int *ok)
{
    float *v = malloc((size_t)(rows * d) * sizeof *v);
    if (!v) return SL_ERUNTIME;
    st_to_f32(f, t, v);
    double worst = 0, top = 0;
    float scale = (float)(-log(10000.0) / (double)d);
    for (int64_t i = 0; i < d; i += 2) {
        float div = expf((float)i * scale);
        for (int64_t p = 0; p < rows; p++) {
            float arg = (float)p * div;
            double s = sinf(arg), co = cosf(arg);
            worst = fmax(worst, fabs(v[p * d + i] - s));
            if (i + 1 < d) worst = fmax(worst, fabs(v[p * d + i + 1] - co));
            top = fmax(top, fmax(fabs(s), i + 1 < d ? fabs(co) : 0));
        }
    }
    free(v);
    *ok = worst <= 1e-4 * top;
    return SL_OK;
}

static int positional(ctx *c, int i)
{
    const st_tensor *t = &c->f->tensors[i];
    sl_layout_entry *e = &c->L->e[i];
    int64_t rows = t->ndim == 2 ? t->shape[0] : t->shape[0] == 1 ? t->shape[1] : t->shape[0];
    e->ndim = 2;
    e->shape[0] = rows;
    e->shape[1] = c->dm;
    int match = 0;
    const char *want = c->d ? cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c->d->keys, "positional")) : NULL;
    int buffer = !last_is(t->name, "weight");
    if (buffer && !(want && !strcmp(want, "learned")) && is_sinusoid(c->f, t, rows, c->dm, &match))
        return sl_fail(c->err, SL_ERUNTIME, "out of memory");
    if (buffer && !match && !want)
        sl_warn("%s: '%s' is not the sinusoidal table of the PyTorch tutorial (beyond 1e-4 relative): used as a learned "
                "positional table", c->f->path, t->name);
    TRY(claim(c, i, "pos_embedding.weight", match ? "sinusoidal buffer (seqlens computes the same table)" : "by role: positional table"));
    e->computed = match;
    TRY(fact(c, "positional", cJSON_CreateString(match ? "sinusoidal" : "learned"), i));
    /* a buffer's length is its module's max_len: PyTorch refuses longer inputs */
    return fact(c, "max_len", cJSON_CreateNumber((double)rows), i);
}

static int roles(ctx *c)
{
    int n = c->f->n, nh = 0, nt = 0, nb = 0, head[8], table[8], buf[8];
    if (!c->dm) return SL_OK;
    for (int i = 0; i < n; i++) {
        const st_tensor *t = &c->f->tensors[i];
        if (c->L->e[i].name || c->mapped[i]) continue;
        int w = last_is(t->name, "weight"), layer = 0;
        const char *inside = NULL;
        /* the head may sit in a Sequential (classifier = nn.Sequential(nn.Dropout(p), nn.Linear(d, 2)):
         * 'classifier.1.weight'), never in the layer stack; the tables and buffers never in either */
        if (w && t->ndim == 2 && t->shape[1] == c->dm && (t->shape[0] == 1 || t->shape[0] == 2) &&
            find_layer(c->base[i], &layer, &inside) < 0) {
            if (nh < 8) head[nh] = i;
            nh++;
        } else if (indexed(t->name)) {
            continue;
        } else if (w && t->ndim == 2 && t->shape[1] == c->dm) {
            /* a Linear (its bias beside it) is no embedding or positional table: a head with 3 or
             * more outputs is left unclaimed, and reported so */
            char bias[512];
            snprintf(bias, sizeof bias, "%.*sbias", (int)(strlen(t->name) - 6), t->name);
            const st_tensor *b = st_find(c->f, bias);
            if (b && b->ndim == 1 && b->shape[0] == t->shape[0]) continue;
            if (nt < 8) table[nt] = i;
            nt++;
        } else if (!w && !last_is(t->name, "bias") &&
                   ((t->ndim == 2 && t->shape[1] == c->dm) ||
                    (t->ndim == 3 && t->shape[2] == c->dm && (t->shape[0] == 1 || t->shape[1] == 1)))) {
            if (nb < 8) buf[nb] = i;
            nb++;
        }
    }
    if (named(c, "head.weight") < 0 && nh > 1)
        return ambiguous(c, "head (a Linear with 1 or 2 outputs)", head, nh, "name it in config.json, e.g. \"names\": {\"head\": \"classifier\"}");
    if (named(c, "head.weight") < 0 && nh == 1) {
        const st_tensor *t = &c->f->tensors[head[0]];
        TRY(claim(c, head[0], "head.weight", "by role: head"));
        char bias[512];
        snprintf(bias, sizeof bias, "%.*sbias", (int)(strlen(t->name) - 6), t->name);
        const st_tensor *b = st_find(c->f, bias);
        if (b && !c->L->e[b - c->f->tensors].name) TRY(claim(c, (int)(b - c->f->tensors), "head.bias", "by role: head"));
    }
    int emb = named(c, "embedding.weight");
    if (emb < 0 && nt > 2)
        return ambiguous(c, "embedding", table, nt, "name it in config.json, e.g. \"names\": {\"embedding\": \"embed\"}");
    if (emb < 0 && nt == 2) {
        int p0 = strstr(c->f->tensors[table[0]].name, "pos") != NULL, p1 = strstr(c->f->tensors[table[1]].name, "pos") != NULL;
        const cJSON *v = c->d ? cJSON_GetObjectItemCaseSensitive(c->d->keys, "vocab_size") : NULL;
        int r0 = cJSON_IsNumber(v) && c->f->tensors[table[0]].shape[0] == v->valuedouble;
        int r1 = cJSON_IsNumber(v) && c->f->tensors[table[1]].shape[0] == v->valuedouble;
        int pick = p0 != p1 ? p1 ? 0 : 1 : r0 != r1 ? r0 ? 0 : 1 : -1;
        if (pick < 0)
            return ambiguous(c, "embedding", table, nt,
                             "give vocab_size in config.json, or name it, e.g. \"names\": {\"embedding\": \"embed\"}");
        emb = table[pick];
        table[0] = table[1 - pick];
        nt = 1;
        TRY(claim(c, emb, "embedding.weight", "by role: embedding"));
    } else if (emb < 0 && nt == 1) {
        emb = table[0];
        nt = 0;
        TRY(claim(c, emb, "embedding.weight", "by role: embedding"));
    }
    if (emb >= 0) TRY(fact(c, "vocab_size", cJSON_CreateNumber((double)c->f->tensors[emb].shape[0]), emb));
    const char *arch = c->d ? cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c->d->keys, "arch")) : NULL;
    int tf = c->kind == TF || (c->kind == ANY && arch && !strcmp(arch, "transformer"));
    int pos = named(c, "pos_embedding.weight");
    if (!tf) return SL_OK;
    if (pos < 0 && nt + nb > 1) {
        int all[16], na = 0;
        for (int k = 0; k < nt && k < 8; k++) all[na++] = table[k];
        for (int k = 0; k < nb && k < 8; k++) all[na++] = buf[k];
        return ambiguous(c, "positional table", all, nt + nb, "name it in config.json, e.g. \"names\": {\"pos_embedding\": \"pos\"}");
    }
    if (pos < 0 && nt + nb == 1) return positional(c, nt ? table[0] : buf[0]);
    if (pos >= 0) {
        const st_tensor *t = &c->f->tensors[pos];
        TRY(fact(c, "positional", cJSON_CreateString("learned"), pos));
        if (t->ndim == 2) TRY(fact(c, "max_len", cJSON_CreateNumber((double)t->shape[0]), pos));
    }
    return SL_OK;
}

int sl_layout_detect(sl_layout *L, const st_file *f, const sl_config_doc *d, sl_error *err)
{
    memset(L, 0, sizeof *L);
    L->n = f->n;
    L->e = calloc((size_t)f->n + 1, sizeof *L->e);
    L->facts = cJSON_CreateObject();
    L->facts_from = cJSON_CreateObject();
    ctx c = {f, d, L, err, malloc(((size_t)f->n + 1) * sizeof(char *)), calloc((size_t)f->n + 1, sizeof(char *)), ANY, "", 0, {0}, 0, 0};
    for (int k = 0; k < N_IN_LAYER; k++) c.slot[k] = -1;
    int rc = !L->e || !L->facts || !L->facts_from || !c.base || !c.mapped ? sl_fail(err, SL_ERUNTIME, "out of memory") : SL_OK;
    for (int i = 0; !rc && i < f->n; i++) {
        const st_tensor *t = &f->tensors[i];
        L->e[i].ndim = t->ndim < 4 ? t->ndim : 4;
        for (int k = 0; k < L->e[i].ndim; k++) L->e[i].shape[k] = t->shape[k];
    }
    if (!rc) rc = apply_names(&c);
    if (!rc) rc = find_stack(&c);
    if (!rc) rc = beside_stack(&c);
    if (!rc) rc = layer_facts(&c);
    if (!rc) rc = roles(&c);
    /* what `names` maps and no layout claims is taken as the user wrote it */
    for (int i = 0; !rc && i < f->n; i++)
        if (c.mapped[i] && !L->e[i].name) rc = claim(&c, i, c.mapped[i], "names");
        else if (c.mapped[i]) L->e[i].how = "names";
    for (int i = 0; c.mapped && i < f->n; i++) free(c.mapped[i]);
    free(c.mapped);
    free(c.base);
    if (rc) sl_layout_free(L);
    return rc;
}

void sl_layout_free(sl_layout *L)
{
    for (int i = 0; L->e && i < L->n; i++) free(L->e[i].name);
    free(L->e);
    cJSON_Delete(L->facts);
    cJSON_Delete(L->facts_from);
    memset(L, 0, sizeof *L);
}
