#include "ablation/family.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ablation/component.h"
#include "core/dist.h"
#include "core/metrics.h"
#include "core/rng.h"
#include "core/roc.h"

const char *sl_family_mode_name(int mode)
{
    static const char *const names[] = {"mean", "zero", "pad", "resample", "skip"};
    return names[mode];
}

/* How often each token sits at a valid position of each family, over the
 * selected examples: the weights of the mean embedding and of resampling. */
typedef struct {
    int F, V;
    int64_t *count; /* [F, V] */
    int64_t *per_family, valid;
} family_stats;

static int gather_stats(sl_dataset *ds, const sl_run_opts *o, family_stats *st, sl_error *err)
{
    st->F = ds->n_families;
    st->V = ds->vocab_size;
    st->count = calloc((size_t)st->F * st->V, sizeof *st->count);
    st->per_family = calloc((size_t)st->F, sizeof *st->per_family);
    st->valid = 0;
    long B = o->batch > 0 ? o->batch : 64;
    int32_t *tok = malloc((size_t)B * ds->L * sizeof *tok), *fam = malloc((size_t)B * ds->L * sizeof *fam);
    int rc = st->count && st->per_family && tok && fam ? SL_OK : sl_fail(err, SL_ERUNTIME, "out of memory");
    /* under MPI each rank counts its shard; integer counts add up exactly */
    long lo, n;
    sl_dist_shard(o->first, o->count, &lo, &n);
    for (long first = lo; !rc && first < lo + n; first += B) {
        long cnt = lo + n - first < B ? lo + n - first : B;
        rc = sl_dataset_read_tokens(ds, first, cnt, tok, err);
        if (!rc) rc = sl_dataset_read_families(ds, first, cnt, tok, fam, err);
        for (long e = 0; !rc && e < cnt; e++)
            for (int t = 0; t < ds->lengths[first + e]; t++) {
                long k = e * ds->L + t;
                st->valid++;
                if (fam[k] < 0) continue;
                st->count[(long)fam[k] * st->V + tok[k]]++;
                st->per_family[fam[k]]++;
            }
    }
    free(tok);
    free(fam);
    rc = sl_dist_sum_i64(rc, st->count, (long)st->F * st->V, err);
    rc = sl_dist_sum_i64(rc, st->per_family, st->F, err);
    return sl_dist_sum_i64(rc, &st->valid, 1, err);
}

typedef struct {
    const sl_model *m;
    sl_dataset *ds;
    const family_stats *st;
    const sl_family_opts *fo;
    int family;
    const float *replacement; /* mean mode: [d]; zero mode: NULL */
    uint8_t *hit;             /* [batch, L]: position ablated */
    int32_t *fam;             /* [batch, L] scratch */
    long hits;
} family_job;

/* Marks the family's positions of the batch; pad and resample rewrite the
 * token ids there (pad also drops the position from keys and pooling, skip
 * only from pooling: its delta hooks read the marks). */
static int mark_batch(void *user, sl_batch *b, sl_error *err)
{
    family_job *j = user;
    int rc = sl_dataset_read_families(j->ds, b->first, b->count, b->tokens, j->fam, err);
    if (rc) return rc;
    const family_stats *st = j->st;
    const int64_t *cnt = st->count + (long)j->family * st->V;
    for (int e = 0; e < b->count; e++) {
        /* one generator per (example, family): threads and batches do not matter */
        sl_rng rng = sl_rng_seed(j->fo->seed ^ (0x632be59bd9b4e019ull * (uint64_t)(b->first + e + 1))
                                 ^ (0x9e6c63d0676a9a99ull * (uint64_t)(j->family + 1)));
        for (int t = 0; t < b->L; t++) {
            long k = (long)e * b->L + t;
            int on = t < b->lengths[e] && j->fam[k] == j->family;
            j->hit[k] = (uint8_t)on;
            if (!on) continue;
            j->hits++;
            if (j->fo->mode == FAM_PAD) {
                b->tokens[k] = j->ds->pad_id;
                b->keep[k] = 0;
            } else if (j->fo->mode == FAM_SKIP) {
                b->keep[k] = 0;
            } else if (j->fo->mode == FAM_RESAMPLE) {
                int64_t u = (int64_t)sl_rng_below(&rng, (uint64_t)st->per_family[j->family]);
                int v = 0;
                while (u >= cnt[v]) u -= cnt[v++];
                b->tokens[k] = v;
            }
        }
    }
    return SL_OK;
}

int sl_ablation_score(const float *base, const float *ablated, const int32_t *labels, long n, int bootstrap,
                      uint64_t seed, sl_ablation_row *row, sl_error *err)
{
    char what[96];
    if (row->family >= 0) snprintf(what, sizeof what, "ablating family #%d", row->family);
    else if (row->component >= 0)
        snprintf(what, sizeof what, "ablating component %s of layer %d", SL_COMPONENT_NAMES[row->component],
                 row->layer);
    else snprintf(what, sizeof what, "ablating layer %d", row->layer);
    int rc = sl_check_logits(ablated, n, -1, what, err);
    if (rc) return rc;
    sl_delong d;
    if (sl_delong_test(base, ablated, labels, n, &d))
        return sl_fail(err, SL_ERUNTIME, "DeLong's test failed (NaN logits or one class only)");
    row->auc = d.auc_b;
    row->delta_auc = d.auc_b - d.auc_a;
    row->p_value = d.p_value;
    row->has_ci = bootstrap > 0;
    if (row->has_ci && sl_bootstrap_auc_delta(base, ablated, labels, n, bootstrap, seed, row->ci95))
        return sl_fail(err, SL_ERUNTIME, "the bootstrap failed");
    return SL_OK;
}

int sl_ablation_score_rows(const float *base, const float *ablated, const int32_t *labels, long count,
                           const int *layers, const int *components, int n, int bootstrap, uint64_t seed,
                           sl_ablation_result *out, sl_error *err)
{
    out->n = count;
    out->baseline_auc = sl_auc(base, labels, count);
    int rc = SL_OK;
    for (int k = 0; !rc && k < n; k++) {
        sl_ablation_row *row = &out->rows[k];
        row->family = -1;
        row->layer = layers[k];
        row->component = components ? components[k] : -1;
        row->masked_fraction = 1.0;
        rc = sl_ablation_score(base, ablated + (long)k * count, labels, count, bootstrap, seed, row, err);
        if (!rc) out->n_rows++;
    }
    return rc;
}

int sl_ablate_families(const sl_model *m, sl_dataset *ds, const sl_run_opts *o, const int *families, int n_fam,
                       const sl_family_opts *fo, sl_ablation_result *out, float *logits, sl_error *err)
{
    memset(out, 0, sizeof *out);
    /* skip writes delta, which only a model with a selective scan has */
    if (fo->mode == FAM_SKIP && sl_model_point(m, HK_MIXER_DELTA, 0) < 0)
        return sl_fail(err, SL_EINPUT,
                       "ablate --mode skip: a %s has no step size delta to set to 0 (skip is for mamba and mamba2); "
                       "use mean, zero, pad or resample",
                       sl_arch_name(m->c.arch));
    int d = m->c.d_model, B = o->batch > 0 ? o->batch : 1;
    family_stats st = {0};
    float *base = malloc((size_t)o->count * sizeof *base), *abl = malloc((size_t)o->count * sizeof *abl);
    float *mean = malloc((size_t)d * sizeof *mean);
    uint8_t *hit = malloc((size_t)B * ds->L);
    int32_t *fam = malloc((size_t)B * ds->L * sizeof *fam);
    out->rows = calloc((size_t)(n_fam ? n_fam : 1), sizeof *out->rows);
    int rc = base && abl && mean && hit && fam && out->rows ? SL_OK : sl_fail(err, SL_ERUNTIME, "out of memory");
    if (!rc) rc = gather_stats(ds, o, &st, err);
    /* the baseline: given (every rank holds all of it, as sl_run's
     * gathered logits), or one pass */
    if (!rc && fo->base) memcpy(base, fo->base, (size_t)o->count * sizeof *base);
    else if (!rc) rc = sl_run(m, ds, o, NULL, NULL, NULL, NULL, base, err);
    const int32_t *labels = ds->labels + o->first;
    if (!rc) {
        out->n = o->count;
        out->baseline_auc = sl_auc(base, labels, o->count);
    }
    sl_hooks hooks = {0};
    for (int i = 0; !rc && i < n_fam; i++) {
        int f = families[i];
        family_job j = {m, ds, &st, fo, f, NULL, hit, fam, 0};
        if (fo->mode == FAM_MEAN) {
            /* frequency-weighted mean of the family's token embeddings, as
             * the model adds them (times embed_scale, like `embed.tokens`) */
            memset(mean, 0, (size_t)d * sizeof *mean);
            for (int v = 0; v < st.V; v++) {
                double w = st.per_family[f] ? (double)st.count[(long)f * st.V + v] / st.per_family[f] : 0;
                w *= sl_embed_scale(&m->c);
                for (int k = 0; w && k < d; k++) mean[k] += (float)(w * m->emb[(long)v * d + k]);
            }
            j.replacement = mean;
        }
        sl_hooks_free(&hooks);
        rc = sl_hooks_init(&hooks, m->n_points, err);
        /* mean and zero: the token embedding (before any positional term)
         * of each marked position is replaced, a write the device can do */
        sl_row_replace rep = {hit, ds->L, j.replacement};
        if (!rc && (fo->mode == FAM_MEAN || fo->mode == FAM_ZERO))
            rc = sl_hooks_add_replace(&hooks, sl_model_point(m, HK_EMBED_TOKENS, -1), &rep, err);
        /* skip: delta's row (all channels or heads) zeroed at the marked
         * positions of every layer, before the scan reads it: the state
         * decays by exp(0) = 1 and takes no write there */
        for (int l = 0; !rc && fo->mode == FAM_SKIP && l < m->c.n_layers; l++)
            rc = sl_hooks_add_replace(&hooks, sl_model_point(m, HK_MIXER_DELTA, l), &rep, err);
        /* a family with no position in the selected examples changes
         * nothing: its logits are the baseline's, bit for bit, without a
         * pass (every rank knows, per_family being summed over ranks) */
        if (!rc && st.per_family[f] == 0) memcpy(abl, base, (size_t)o->count * sizeof *abl);
        else if (!rc) rc = sl_run(m, ds, o, &hooks, mark_batch, NULL, &j, abl, err);
        int64_t hits = j.hits; /* this rank's share under MPI */
        rc = sl_dist_sum_i64(rc, &hits, 1, err);
        j.hits = (long)hits;
        sl_ablation_row *row = &out->rows[out->n_rows];
        row->family = f;
        row->layer = -1;
        row->component = -1;
        if (!rc && logits) memcpy(logits + (long)i * o->count, abl, (size_t)o->count * sizeof *abl);
        row->masked_fraction = st.valid ? (double)j.hits / (double)st.valid : 0;
        if (!rc) rc = sl_ablation_score(base, abl, labels, o->count, fo->bootstrap, fo->seed, row, err);
        if (!rc) out->n_rows++;
    }
    sl_hooks_free(&hooks);
    free(st.count);
    free(st.per_family);
    free(base);
    free(abl);
    free(mean);
    free(hit);
    free(fam);
    return rc;
}

void sl_ablation_result_free(sl_ablation_result *r)
{
    free(r->rows);
    memset(r, 0, sizeof *r);
}
