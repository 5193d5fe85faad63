#include "attribution/inspect.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/mathx.h"
#include "core/ordered_sums.h"
#include "models/mamba_scan.h"

/* Per batch slot, sums that are added into the totals in example order after
 * each batch, so that threads and batch sizes change no bit of the result. */
enum { M_DELTA, M_GATE, M_WRITE, M_RETAIN, M_COUNT, M_STATS };
/* Mamba-2's sums per head: delta, gate, write, retention (SL_PH_* order) */
enum { PH_SUMS = 4 };

const char *const SL_INSPECT_PER_HEAD_NAMES[SL_PH_COUNT] = {"mean_delta_per_head", "mean_gate_per_head",
                                                           "mean_write_per_head", "mean_retention_per_head",
                                                           "memory_length_per_head"};

typedef struct {
    const sl_model *m;
    sl_dataset *ds;
    int selectivity; /* the model has mixer.delta points: Mamba's statistics */
    int nl, F, H, B; /* H: heads with an attn.pattern point, else 0 */
    int SH;          /* Mamba-2's heads (delta per head), else 0 */
    int32_t *fam;        /* [B, L] family of each position of the batch */
    size_t per_slot;
    sl_ordered_sums sums; /* [B][per_slot] per slot; totals in example order */
    const float **x, **delta, **bmat; /* [B][nl] views of the current layer (selectivity) */
    int *ld_x, *ld_delta, *ld_b;
} inspect_job;

/* The selectivity sums per (layer, family) of the five statistics, then
 * Mamba-2's per (layer, family, head), then the attention sums: per (layer,
 * family, head) mass and share, per (layer, head) entropy, distance and
 * query count. */
static size_t selectivity_size(const inspect_job *j)
{
    return j->selectivity ? (size_t)j->nl * j->F * (M_STATS + (size_t)j->SH * PH_SUMS) : 0;
}

static double *head_sums(double *acc, const inspect_job *j, int i, int f)
{
    return acc + (size_t)j->nl * j->F * M_STATS + ((size_t)i * j->F + f) * j->SH * PH_SUMS;
}

static size_t slot_size(const inspect_job *j)
{
    return selectivity_size(j) + (size_t)j->nl * j->F * j->H * 2 + (size_t)j->nl * j->H * 3;
}

static double *slot_of(const inspect_job *j, int slot) { return sl_ordered_sums_at(&j->sums, slot); }

static int read_families(void *user, sl_batch *b, sl_error *err)
{
    inspect_job *j = user;
    return sl_dataset_read_families(j->ds, b->first, b->count, b->tokens, j->fam, err);
}

static int add_slots(void *user, sl_batch *b, sl_error *err)
{
    inspect_job *j = user;
    return sl_ordered_sums_add(&j->sums, b, err);
}

/* The selectivity hooks keep views of in_x, delta and B; the gate, the last hook
 * of a layer, finds them still in place and does the sums. */
static int keep_view(void *user, sl_hook_event *ev, sl_error *err)
{
    (void)err;
    inspect_job *j = user;
    int i = ev->point->layer, k = ev->slot * j->nl + i;
    if (ev->point->kind == HK_MIXER_IN_X) {
        j->x[k] = ev->data;
        j->ld_x[k] = ev->ld;
    } else if (ev->point->kind == HK_MIXER_DELTA) {
        j->delta[k] = ev->data;
        j->ld_delta[k] = ev->ld;
    } else {
        j->bmat[k] = ev->data;
        j->ld_b[k] = ev->ld;
    }
    return SL_OK;
}

/* The sum over channels and states of exp(delta A) at one position, in
 * float lanes: one exp per (channel, state) made this statistic cost more
 * than the forward pass in double. Its terms lie in (0, 1] and number
 * d_inner x d_state, so float's rounding stays near 1e-6 relative, far
 * below the 1e-4 it is tested at. On AVX-512, sixteen channels at a time
 * through the scan's own exp (sl_scan_decay16), summed in four vectors
 * of lanes: GCC left the scalar exp's loop below unvectorised (a third of
 * inspect's time), and one chain of adds waited on each add. */
static double retention_sum(const float *dt, const float *A, int di, int S)
{
#ifdef __AVX512F__
    if (di % 16 == 0 && S % 4 == 0) {
        v16f acc[4] = {v16_set1(0.0f), v16_set1(0.0f), v16_set1(0.0f), v16_set1(0.0f)};
        for (int ch = 0; ch < di; ch += 16) {
            v16f d = v16_load(dt + ch);
            for (int n = 0; n < S; n += 4)
                for (int k = 0; k < 4; k++) acc[k] += sl_scan_decay16(d, A + (long)(n + k) * di + ch);
        }
        return _mm512_reduce_add_ps((__m512)((acc[0] + acc[1]) + (acc[2] + acc[3])));
    }
#endif
    /* Otherwise (AVX2) eight channels at a time, four states' exps at once
     * through the forward scan's sl_scan_decay8n: the scalar loop below was
     * 29% of inspect's time on an AMD Zen 3, more than the scan itself. */
    if (di % 8 == 0 && S % 4 == 0) {
        v8f acc[4] = {v8_set1(0.0f), v8_set1(0.0f), v8_set1(0.0f), v8_set1(0.0f)};
        for (int ch = 0; ch < di; ch += 8) {
            v8f d = v8_load(dt + ch), a[4];
            for (int n = 0; n < S; n += 4) {
                sl_scan_decay8n(d, A + (long)n * di + ch, di, a, 4);
                for (int k = 0; k < 4; k++) acc[k] += a[k];
            }
        }
        v8f s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
        return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
    }
    float sum = 0;
    for (int n = 0; n < S; n++) {
        const float *An = A + (long)n * di;
#pragma omp simd reduction(+ : sum)
        for (int ch = 0; ch < di; ch++) sum += sl_exp_nonpos(dt[ch] * An[ch]);
    }
    return sum;
}

/* Mamba-2: delta per head; head h's channels h P .. h P + P - 1 and its
 * group g = h / (H / G) of B. Each statistic per head, and the design's
 * scalars as their mean over heads (= over channels, every channel taking
 * its head's delta; retention exp(delta_h A_h) has no state axis). */
static int selectivity_sums2(inspect_job *j, sl_hook_event *ev)
{
    const sl_config *c = &j->m->c;
    int i = ev->point->layer, k = ev->slot * j->nl + i, H = c->nheads, P = c->headdim, S = c->d_state;
    int per_group = H / c->ngroups;
    const float *x = j->x[k], *dl = j->delta[k], *Bm = j->bmat[k], *A = j->m->mamba2[i].A;
    const int32_t *fam = j->fam + (long)ev->slot * j->ds->L;
    double *acc = slot_of(j, ev->slot);
    double bn = 0; /* ||B_g|| of the current head's group */
    for (int t = 0; t < ev->len; t++) {
        if (fam[t] < 0) continue;
        const float *xt = x + (long)t * j->ld_x[k], *dt = dl + (long)t * j->ld_delta[k];
        const float *gt = ev->data + (long)t * ev->ld, *bt = Bm + (long)t * j->ld_b[k];
        double *s = acc + ((size_t)i * j->F + fam[t]) * M_STATS, *ph = head_sums(acc, j, i, fam[t]);
        double sd = 0, sg = 0, sw = 0, sr = 0;
        for (int h = 0; h < H; h++) {
            int g = h / per_group;
            if (h % per_group == 0) { /* a group's heads are consecutive: its ||B|| once */
                double b2 = 0;
                for (int n = 0; n < S; n++) b2 += (double)bt[(long)g * S + n] * bt[(long)g * S + n];
                bn = sqrt(b2);
            }
            double d = dt[h], hg = 0, hw = 0;
            for (int p = 0; p < P; p++) {
                hg += gt[h * P + p];
                hw += fabs(d * xt[h * P + p]);
            }
            double r = exp(d * A[h]);
            hg /= P;
            hw = hw / P * bn;
            ph[(size_t)h * PH_SUMS + SL_PH_DELTA] += d;
            ph[(size_t)h * PH_SUMS + SL_PH_GATE] += hg;
            ph[(size_t)h * PH_SUMS + SL_PH_WRITE] += hw;
            ph[(size_t)h * PH_SUMS + SL_PH_RETENTION] += r;
            sd += d, sg += hg, sw += hw, sr += r;
        }
        s[M_DELTA] += sd / H;
        s[M_GATE] += sg / H;
        s[M_WRITE] += sw / H;
        s[M_RETAIN] += sr / H;
        s[M_COUNT] += 1;
    }
    return SL_OK;
}

static int selectivity_sums(void *user, sl_hook_event *ev, sl_error *err)
{
    (void)err;
    inspect_job *j = user;
    if (j->SH) return selectivity_sums2(j, ev);
    const sl_config *c = &j->m->c;
    int i = ev->point->layer, k = ev->slot * j->nl + i, di = c->d_inner, S = c->d_state;
    const float *x = j->x[k], *dl = j->delta[k], *Bm = j->bmat[k], *A = j->m->mamba[i].A_t;
    const int32_t *fam = j->fam + (long)ev->slot * j->ds->L;
    double *acc = slot_of(j, ev->slot);
    for (int t = 0; t < ev->len; t++) {
        if (fam[t] < 0) continue;
        const float *xt = x + (long)t * j->ld_x[k], *dt = dl + (long)t * j->ld_delta[k], *gt = ev->data + (long)t * ev->ld;
        const float *bt = Bm + (long)t * j->ld_b[k];
        double bn = 0, sd = 0, sg = 0, sw = 0, sr = 0;
        for (int n = 0; n < S; n++) bn += (double)bt[n] * bt[n];
        bn = sqrt(bn);
#pragma omp simd reduction(+ : sd, sg, sw)
        for (int ch = 0; ch < di; ch++) {
            sd += dt[ch];
            sg += gt[ch];
            sw += fabs((double)dt[ch] * xt[ch]) * bn;
        }
        sr = retention_sum(dt, A, di, S);
        double *s = acc + ((size_t)i * j->F + fam[t]) * M_STATS;
        s[M_DELTA] += sd / di;
        s[M_GATE] += sg / di;
        s[M_WRITE] += sw / di;
        s[M_RETAIN] += sr / ((double)di * S);
        s[M_COUNT] += 1;
    }
    return SL_OK;
}

/* The valid key positions grouped by family, in order within each:
 * family f's are order[seg[f]] .. order[seg[f + 1] - 1]. */
static void group_keys(const int32_t *fam, int len, int F, int *seg, int *order)
{
    memset(seg, 0, ((size_t)F + 1) * sizeof *seg);
    for (int t = 0; t < len; t++)
        if (fam[t] >= 0) seg[fam[t] + 1]++;
    for (int f = 0; f < F; f++) seg[f + 1] += seg[f];
    for (int t = 0; t < len; t++)
        if (fam[t] >= 0) order[seg[fam[t]]++] = t;
    for (int f = F; f > 0; f--) seg[f] = seg[f - 1]; /* each seg[f] had moved to the next family's start */
    seg[0] = 0;
}

/* One query row p of a head: its entropy and mean distance, in double
 * lanes. log(p) is sl_log's (float, within an ulp or two): glibc's double
 * log of every probability, one at a time, was 40% of inspect's time on a
 * Transformer (each example's [H, len, len] patterns pass through here). */
static void row_entropy_distance(const float *p, int len, int q, double *ent, double *dist)
{
    double e = 0, m = 0;
#pragma omp simd reduction(+ : e, m)
    for (int t = 0; t < len; t++) {
        float pt = p[t];
        e -= pt > 0 ? (double)pt * sl_log(pt) : 0.0;
        m += (double)pt * abs(q - t);
    }
    *ent += e;
    *dist += m;
}

/* The attention pattern: one materialised [H, len, len] per example. */
static int attention_sums(void *user, sl_hook_event *ev, sl_error *err)
{
    (void)err;
    inspect_job *j = user;
    int i = ev->point->layer, F = j->F, H = j->H, len = ev->len, causal = j->m->c.causal;
    const int32_t *fam = j->fam + (long)ev->slot * j->ds->L;
    double *acc = slot_of(j, ev->slot) + selectivity_size(j);
    double *mass = acc + (size_t)i * F * H * 2; /* [F][H][mass, share] */
    double *heads = acc + (size_t)j->nl * F * H * 2 + (size_t)i * H * 3;
    int *keys = calloc((size_t)F + 1, sizeof *keys), *seg = malloc(((size_t)F + 1) * sizeof *seg);
    int *order = malloc((size_t)len * sizeof *order);
    if (!keys || !seg || !order) {
        free(keys), free(seg), free(order);
        return sl_fail(err, SL_ERUNTIME, "out of memory in inspect");
    }
    group_keys(fam, len, F, seg, order);
    /* the keys a query can see, by family: every valid one, or (causal)
     * those up to it, counted as the query moves on */
    if (!causal)
        for (int f = 0; f < F; f++) keys[f] = seg[f + 1] - seg[f];
    for (int q = 0; q < len; q++) {
        if (causal && fam[q] >= 0) keys[fam[q]]++;
        int visible = causal ? q + 1 : len;
        for (int h = 0; h < H; h++) {
            const float *p = ev->data + ((size_t)h * len + q) * ev->ld;
            row_entropy_distance(p, len, q, &heads[h * 3], &heads[h * 3 + 1]);
            heads[h * 3 + 2] += 1;
            for (int f = 0; f < F; f++) {
                double by_fam = 0; /* a causal row's later keys hold 0 */
#pragma omp simd reduction(+ : by_fam)
                for (int k = seg[f]; k < seg[f + 1]; k++) by_fam += p[order[k]];
                mass[((size_t)f * H + h) * 2] += by_fam;
                mass[((size_t)f * H + h) * 2 + 1] += (double)keys[f] / visible;
            }
        }
    }
    free(keys), free(seg), free(order);
    return SL_OK;
}

static void selectivity_means(const inspect_job *j, sl_inspect_family *x, int i, int f)
{
    const double *s = j->sums.total + ((size_t)i * j->F + f) * M_STATS;
    x->count = (long)s[M_COUNT];
    if (!x->count) return;
    x->mean_delta = s[M_DELTA] / s[M_COUNT];
    x->mean_gate = s[M_GATE] / s[M_COUNT];
    x->mean_write = s[M_WRITE] / s[M_COUNT];
    x->mean_retention = s[M_RETAIN] / s[M_COUNT];
    x->memory_length = -1.0 / log(x->mean_retention);
    const double *ph = head_sums(j->sums.total, j, i, f);
    for (int h = 0; h < j->SH; h++) {
        for (int q = 0; q < PH_SUMS; q++) x->per_head[q][h] = ph[(size_t)h * PH_SUMS + q] / s[M_COUNT];
        x->per_head[SL_PH_MEMORY][h] = -1.0 / log(x->per_head[SL_PH_RETENTION][h]);
    }
}

static void attention_means(const inspect_job *j, sl_inspect_family *x, int i, int f, long queries)
{
    const double *acc = j->sums.total + selectivity_size(j);
    double m = 0, sh = 0;
    for (int h = 0; h < j->H; h++) {
        const double *s = acc + (((size_t)i * j->F + f) * j->H + h) * 2;
        x->attention_mass_per_head[h] = s[0] / (double)queries;
        m += s[0];
        sh += s[1];
    }
    x->attention_mass = m / ((double)queries * j->H);
    x->token_share = sh / ((double)queries * j->H);
    x->ratio = x->token_share > 0 ? x->attention_mass / x->token_share : NAN;
    /* the count of the selectivity means when there are both */
    if (!j->selectivity) x->count = x->token_share > 0 ? queries : 0;
}

static void finish(const inspect_job *j, sl_inspect_result *r, long queries)
{
    for (int i = 0; i < j->nl; i++)
        for (int f = 0; f < j->F; f++) {
            sl_inspect_family *x = &r->fam[i * j->F + f];
            x->attention_mass_per_head = r->per_head_storage + ((size_t)i * j->F + f) * (j->H ? j->H : 1);
            for (int q = 0; j->SH && q < SL_PH_COUNT; q++)
                x->per_head[q] = r->ssm_head_storage + (((size_t)i * j->F + f) * SL_PH_COUNT + q) * j->SH;
            if (j->selectivity) selectivity_means(j, x, i, f);
            if (j->H) attention_means(j, x, i, f, queries);
        }
    const double *heads = j->sums.total + selectivity_size(j) + (size_t)j->nl * j->F * j->H * 2;
    for (int i = 0; i < j->nl; i++)
        for (int h = 0; h < j->H; h++) {
            const double *s = heads + ((size_t)i * j->H + h) * 3;
            r->head[i * j->H + h] = (sl_inspect_head){s[0] / s[2], s[1] / s[2]};
        }
}

int sl_inspect(const sl_model *m, sl_dataset *ds, const sl_run_opts *o, sl_inspect_result *out, sl_error *err)
{
    memset(out, 0, sizeof *out);
    /* the statistics belong to hook points: those the model has are gathered */
    int selectivity = sl_model_point(m, HK_MIXER_DELTA, 0) >= 0;
    int nl = m->c.n_layers, F = ds->n_families, H = sl_model_point(m, HK_ATTN_PATTERN, 0) >= 0 ? m->c.n_heads : 0;
    int B = o->batch > 0 ? o->batch : 1, SH = selectivity ? sl_model_ssm_heads(m) : 0;
    inspect_job j = {.m = m, .ds = ds, .selectivity = selectivity, .nl = nl, .F = F, .H = H, .B = B, .SH = SH};
    j.per_slot = slot_size(&j);
    j.fam = malloc((size_t)B * ds->L * sizeof *j.fam);
    int rc = sl_ordered_sums_init(&j.sums, B, (long)j.per_slot, err);
    j.x = calloc((size_t)B * nl, sizeof *j.x);
    j.delta = calloc((size_t)B * nl, sizeof *j.delta);
    j.bmat = calloc((size_t)B * nl, sizeof *j.bmat);
    j.ld_x = calloc((size_t)B * nl, sizeof *j.ld_x);
    j.ld_delta = calloc((size_t)B * nl, sizeof *j.ld_delta);
    j.ld_b = calloc((size_t)B * nl, sizeof *j.ld_b);
    out->n_layers = nl;
    out->n_families = F;
    out->n_heads = H;
    out->selectivity = selectivity;
    out->ssm_heads = SH;
    out->fam = calloc((size_t)nl * F, sizeof *out->fam);
    out->head = calloc((size_t)nl * (H ? H : 1), sizeof *out->head);
    out->per_head_storage = calloc((size_t)nl * F * (H ? H : 1), sizeof *out->per_head_storage);
    out->ssm_head_storage = calloc((size_t)nl * F * SL_PH_COUNT * (SH ? SH : 1), sizeof *out->ssm_head_storage);
    if (!rc) rc = j.fam && j.x && j.delta && j.bmat && j.ld_x && j.ld_delta && j.ld_b && out->fam && out->head &&
                          out->per_head_storage && out->ssm_head_storage
                 ? SL_OK
                 : sl_fail(err, SL_ERUNTIME, "out of memory");
    sl_hooks hooks = {0};
    if (!rc) rc = sl_hooks_init(&hooks, m->n_points, err);
    for (int i = 0; !rc && selectivity && i < nl; i++) {
        rc = sl_hooks_add(&hooks, sl_model_point(m, HK_MIXER_IN_X, i), keep_view, &j, err);
        if (!rc) rc = sl_hooks_add(&hooks, sl_model_point(m, HK_MIXER_DELTA, i), keep_view, &j, err);
        if (!rc) rc = sl_hooks_add(&hooks, sl_model_point(m, HK_MIXER_B, i), keep_view, &j, err);
        if (!rc) rc = sl_hooks_add(&hooks, sl_model_point(m, HK_MIXER_GATE, i), selectivity_sums, &j, err);
    }
    for (int i = 0; !rc && H && i < nl; i++)
        rc = sl_hooks_add(&hooks, sl_model_point(m, HK_ATTN_PATTERN, i), attention_sums, &j, err);
    if (!rc) rc = sl_run(m, ds, o, &hooks, read_families, add_slots, &j, NULL, err);
    rc = sl_ordered_sums_finish(rc, &j.sums, err);
    long queries = 0;
    for (long e = 0; e < o->count; e++) queries += ds->lengths[o->first + e];
    if (!rc) finish(&j, out, queries);
    sl_hooks_free(&hooks);
    free(j.fam);
    sl_ordered_sums_free(&j.sums);
    free(j.x);
    free(j.delta);
    free(j.bmat);
    free(j.ld_x);
    free(j.ld_delta);
    free(j.ld_b);
    return rc;
}

void sl_inspect_free(sl_inspect_result *r)
{
    free(r->fam);
    free(r->head);
    free(r->per_head_storage);
    free(r->ssm_head_storage);
    memset(r, 0, sizeof *r);
}
