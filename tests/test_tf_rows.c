/* A Transformer block whose input changed in one row, updated from the
 * unmodified pass's attention (models/cpu_tf_patch.h), against the same
 * blocks run whole: every Transformer fixture and the three trained ones,
 * each layer, rows at both ends and inside, each row replaced by another
 * row of the same residual, or the same row written by a hook after the
 * block's attention (attn.out, mlp.hidden, mlp.out), and every row zeroed
 * there as ablate --component does (bit for bit). Three ways: the
 * default, every head computed again whole (redo_max 0: then the whole
 * pass's bits), and only the rows that need it computed again, however
 * many (redo_max huge); the last must meet rows where the changed key held
 * more than half the weight, or its test of that proves nothing. Within
 * 1e-5 of the largest of the model's logits over the examples (an updated
 * row rounds otherwise than a whole pass; rows computed again have its
 * bits).
 * And a causal model's rows from a restart alone (sl_tf_forward_suffix):
 * each model made causal, with its final norm and without, from each
 * block's input and the last block's output, a row changed at both ends
 * and inside, several restarts one after another as variants run them,
 * against whole blocks: the whole pass's bits (OpenBLAS) and within 1e-5. */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/blas.h"
#include "models/cpu_prefix.h"
#include "models/cpu_tf_patch.h"
#include "models/forward_common.h"
#include "tests/fixture_files.h"
#include "tests/testing.h"

#define TOL 1e-5

typedef struct {
    float *resid; /* [n_layers][L][d]: each block's input in the kept pass */
    int L, d;
} grab;

static int grab_resid(void *user, sl_hook_event *ev, sl_error *err)
{
    (void)err;
    grab *g = user;
    float *dst = g->resid + (size_t)ev->point->layer * g->L * g->d;
    for (int t = 0; t < ev->rows; t++) memcpy(dst + (size_t)t * g->d, ev->data + (long)t * ev->ld, (size_t)g->d * 4);
    return SL_OK;
}

/* A component ablation's write: every row zero. */
static int zero_rows(void *user, sl_hook_event *ev, sl_error *err)
{
    (void)user, (void)err;
    for (int t = 0; t < ev->rows; t++) memset(ev->data + (long)t * ev->ld, 0, (size_t)ev->cols * 4);
    return SL_OK;
}

/* A patch's write: row `to` of the activation becomes its row `from`. */
typedef struct {
    int to, from;
} copy_row;

static int copy_one_row(void *user, sl_hook_event *ev, sl_error *err)
{
    (void)err;
    const copy_row *c = user;
    memcpy(ev->data + (long)c->to * ev->ld, ev->data + (long)c->from * ev->ld, (size_t)ev->cols * 4);
    return SL_OK;
}

typedef struct {
    double worst;
    long cases, queries; /* queries: the changed query's rows, one a head and case */
    long hooked;         /* cases of a hook after the attention */
    sl_tf_row_stats st;
} tally;

/* One example of model m: every layer, a few rows, under redo_max. */
static void one_example(const char *name, const sl_model *m, const sl_example *ex, sl_workspace *ws, sl_tf_kept *k,
                        grab *g, const sl_hooks *hooks, int redo_max, double scale, tally *ty)
{
    sl_error err = {0};
    float base;
    int rc = sl_tf_forward_keeping(m, ex, ws, hooks, k, &base, &err);
    CHECK(!rc, "%s: keeping: %s", name, err.msg);
    if (rc) return;
    float again;
    rc = sl_forward(m, ex, ws, NULL, &again, &err);
    CHECK(!rc && again == base, "%s: the keeping pass's logit %.9g, a plain pass's %.9g", name, base, again);
    k->redo_max = redo_max;
    int T = ex->len, d = m->c.d_model;
    int rows[] = {0, 1, T / 3, T / 2, T - 2, T - 1};
    for (int s = 0; s < m->c.n_layers; s++)
        for (int r = 0; r < 6; r++) {
            int p = rows[r] < 0 ? 0 : rows[r] >= T ? T - 1 : rows[r], from = (p * 7 + 3) % T;
            const float *in = g->resid + (size_t)s * g->L * d;
            float got, want;
            memcpy(ws->h, in, (size_t)T * d * 4);
            memcpy(ws->h + (size_t)p * d, in + (size_t)from * d, (size_t)d * 4);
            rc = sl_tf_forward_row(m, ex, ws, s, p, k, &ty->st, &got, &err);
            CHECK(!rc, "%s: updated block %d at %d: %s", name, s, p, err.msg);
            memcpy(ws->h, in, (size_t)T * d * 4);
            memcpy(ws->h + (size_t)p * d, in + (size_t)from * d, (size_t)d * 4);
            rc |= sl_forward_from(m, ex, ws, NULL, s, &want, &err);
            if (rc) return;
            double e = fabs((double)got - want) / scale;
            CHECK(e <= TOL, "%s (redo_max %d): block %d, row %d from %d: updated %.9g, whole %.9g", name, redo_max,
                  s, p, from, got, want);
            /* whole heads from q, k, v of the whole pass's bits: its logit */
            if (redo_max == 0)
                CHECK(got == want, "%s: block %d, row %d, whole heads: %.9g, not the whole pass's %.9g", name, s, p,
                      got, want);
            ty->worst = fmax(ty->worst, e);
            ty->cases++;
            ty->queries += m->c.n_heads;
            /* the same row written by a hook after block s's attention:
             * block s from its kept context, then block s + 1 updated */
            const int kinds[] = {HK_ATTN_OUT, HK_MLP_HIDDEN, HK_MLP_OUT};
            for (int h = 0; h < 3; h++) {
                copy_row cr = {p, from};
                sl_hooks wr;
                rc = sl_hooks_init(&wr, m->n_points, &err);
                if (!rc) rc = sl_hooks_add(&wr, sl_model_point(m, kinds[h], s), copy_one_row, &cr, &err);
                memcpy(ws->h, in, (size_t)T * d * 4);
                if (!rc) rc = sl_tf_forward_hooked(m, ex, ws, &wr, s, p, k, &ty->st, &got, &err);
                CHECK(!rc, "%s: hooked block %d at %d: %s", name, s, p, err.msg);
                memcpy(ws->h, in, (size_t)T * d * 4);
                if (!rc) rc = sl_forward_from(m, ex, ws, &wr, s, &want, &err);
                sl_hooks_free(&wr);
                if (rc) return;
                e = fabs((double)got - want) / scale;
                CHECK(e <= TOL, "%s (redo_max %d): %s, row %d from %d: updated %.9g, whole %.9g", name, redo_max,
                      m->points[sl_model_point(m, kinds[h], s)].name, p, from, got, want);
                /* the last block, or whole heads after it: the whole pass's bits */
                if (s == m->c.n_layers - 1 || redo_max == 0)
                    CHECK(got == want, "%s: %s, row %d: %.9g, not the whole pass's %.9g", name,
                          m->points[sl_model_point(m, kinds[h], s)].name, p, got, want);
                ty->worst = fmax(ty->worst, e);
                ty->hooked++;
                /* every row written (ablate --component): block s from
                 * its kept context, the rest whole, the whole pass's bits */
                if (r) continue;
                rc = sl_hooks_init(&wr, m->n_points, &err);
                if (!rc) rc = sl_hooks_add(&wr, sl_model_point(m, kinds[h], s), zero_rows, NULL, &err);
                memcpy(ws->h, in, (size_t)T * d * 4);
                if (!rc) rc = sl_tf_forward_hooked(m, ex, ws, &wr, s, -1, k, NULL, &got, &err);
                memcpy(ws->h, in, (size_t)T * d * 4);
                if (!rc) rc = sl_forward_from(m, ex, ws, &wr, s, &want, &err);
                sl_hooks_free(&wr);
                CHECK(!rc && got == want, "%s: %s zeroed: %.9g, not the whole pass's %.9g (%s)", name,
                      m->points[sl_model_point(m, kinds[h], s)].name, got, want, err.msg);
                if (rc) return;
            }
        }
}

/* ---- a causal model's rows from a restart ---- */

typedef struct {
    long cases, same_bits, carried, skipped;
    double worst;
} suffix_tally;

static suffix_tally suffix_totals;

/* Each block's input, and the last block's output after them. */
static int grab_resid_or_last(void *user, sl_hook_event *ev, sl_error *err)
{
    grab *g = user;
    if (ev->point->kind == HK_RESID_PRE) return grab_resid(user, ev, err);
    float *dst = g->resid + (size_t)(ev->point->layer + 1) * g->L * g->d;
    for (int t = 0; t < ev->rows; t++) memcpy(dst + (size_t)t * g->d, ev->data + (long)t * ev->ld, (size_t)g->d * 4);
    return SL_OK;
}

/* Causal model m from block s = 0..n_layers: rows p of the residual at
 * s changed, each from its restart row, one after another with the rows
 * before the restart carried as cpu_backend.c's variants carry them (the
 * residual and the final norm's rows before the first restart NaN: not
 * read), then each against whole blocks. */
static void suffix_example(const char *name, const sl_model *m, const sl_example *ex, sl_workspace *ws, sl_tf_kept *k,
                           grab *g, const sl_hooks *hooks, double scale)
{
    sl_error err = {0};
    float base;
    int rc = sl_tf_forward_keeping(m, ex, ws, hooks, k, &base, &err);
    CHECK(!rc, "%s: keeping: %s", name, err.msg);
    if (rc) return;
    int T = ex->len, d = m->c.d_model;
    /* restarts late, early (the rows carried grow), then late again */
    const int rows[] = {T - 1, T - 60, T / 2, 50, T - 2, 48, T / 3, 47};
    enum { NR = sizeof rows / sizeof *rows };
    for (int s = 0; s <= m->c.n_layers; s++) {
        const float *in = g->resid + (size_t)s * g->L * d;
        float got[NR];
        int row0[NR], fin_rows = 0;
        for (size_t i = 0; i < (size_t)T * d; i++) ws->h[i] = ws->a[i] = NAN;
        for (int r = 0; r < NR; r++) {
            int p = rows[r], from = (p * 7 + 3) % T;
            row0[r] = p > 0 && p < T ? sl_restart_row(p, T) : 0;
            if (!row0[r]) {
                suffix_totals.skipped++;
                continue;
            }
            memcpy(ws->h + (size_t)row0[r] * d, in + (size_t)row0[r] * d, (size_t)(T - row0[r]) * d * 4);
            memcpy(ws->h + (size_t)p * d, in + (size_t)from * d, (size_t)d * 4);
            suffix_totals.carried += fin_rows > 0;
            rc = sl_tf_forward_suffix(m, ex, ws, NULL, s, row0[r], k, &fin_rows, &got[r], &err);
            CHECK(!rc && fin_rows == row0[r], "%s: block %d from %d: %s", name, s, row0[r], err.msg);
            if (rc) return;
        }
        for (int r = 0; r < NR; r++) {
            if (!row0[r]) continue;
            int p = rows[r], from = (p * 7 + 3) % T;
            float want;
            memcpy(ws->h, in, (size_t)T * d * 4);
            memcpy(ws->h + (size_t)p * d, in + (size_t)from * d, (size_t)d * 4);
            rc = sl_forward_from(m, ex, ws, NULL, s, &want, &err);
            CHECK(!rc, "%s: whole blocks from %d: %s", name, s, err.msg);
            if (rc) return;
            double e = fabs((double)got[r] - want) / scale;
            CHECK(e <= TOL, "%s: block %d, row %d from %d, restart %d: %.9g, whole %.9g", name, s, p, from, row0[r],
                  got[r], want);
            suffix_totals.worst = fmax(suffix_totals.worst, e);
            suffix_totals.cases++;
            suffix_totals.same_bits += got[r] == want;
        }
    }
}

/* The long sequence a model can take (learned positions: up to max_len;
 * others any) for restarts inside it, or 0: the data's rows and pseudo-random
 * tokens. */
#define SYNTH_LEN 320
static int synth_len(const sl_model *m)
{
    int n = m->c.positional == POS_LEARNED ? m->c.max_len : SYNTH_LEN;
    return n > SYNTH_LEN ? SYNTH_LEN : n >= 112 ? n : 0;
}

/* What a model's cases run on: a workspace and kept pass of L positions,
 * and hooks that grab each block's input (and with `last` the last
 * block's output) into g. */
typedef struct {
    sl_workspace *ws;
    sl_tf_kept *k;
    grab g;
    int32_t *tok;
    sl_hooks hooks;
    int hooks_made;
} rig;

static int rig_open(rig *r, const char *name, const sl_model *m, int L, int last)
{
    sl_error err = {0};
    int nl = m->c.n_layers, d = m->c.d_model;
    sl_hook_fn fn = last ? grab_resid_or_last : grab_resid;
    r->ws = sl_workspace_new(m, L, &err);
    r->k = sl_tf_kept_new(m, L);
    r->g = (grab){malloc((size_t)(nl + last) * L * d * 4), L, d};
    r->tok = malloc((size_t)L * 4);
    int rc = r->ws && r->k && r->g.resid && r->tok ? sl_hooks_init(&r->hooks, m->n_points, &err) : -1;
    r->hooks_made = !rc;
    for (int i = 0; !rc && i < nl; i++)
        rc = sl_hooks_add(&r->hooks, sl_model_point(m, HK_RESID_PRE, i), fn, &r->g, &err);
    if (!rc && last) rc = sl_hooks_add(&r->hooks, sl_model_point(m, HK_RESID_POST, nl - 1), fn, &r->g, &err);
    CHECK(!rc, "%s: setting up: %s", name, err.msg);
    return rc;
}

static void rig_close(rig *r)
{
    if (r->hooks_made) sl_hooks_free(&r->hooks);
    free(r->tok);
    free(r->g.resid);
    sl_tf_kept_free(r->k);
    sl_workspace_free(r->ws);
}

/* m made causal, with its final norm (where it has one) and without, on
 * the first `examples` of ds and a long sequence of its vocabulary. */
static void suffix_model(const char *name, const sl_model *m, sl_dataset *ds, int examples)
{
    sl_error err = {0};
    int S = synth_len(m), L = ds->L > S ? ds->L : S;
    rig r;
    int rc = rig_open(&r, name, m, L, 1);
    sl_workspace *ws = r.ws;
    int32_t *tok = r.tok;
    sl_model mc = *m; /* the same weights */
    mc.c.causal = 1;
    long n = ds->n < examples ? ds->n : examples;
    for (int fn = m->c.final_norm; !rc && fn >= 0; fn--) {
        mc.c.final_norm = fn;
        double scale = 1e-3;
        for (int pass = 0; pass < 2; pass++)
            for (long e = 0; !rc && e < n + (S > 0); e++) {
                sl_example ex = {tok, S, e, 0, NULL};
                if (e < n) {
                    rc = sl_dataset_read_tokens(ds, e, 1, tok, &err);
                    ex.len = ds->lengths[e];
                } else
                    for (int t = 0; t < S; t++) tok[t] = (int32_t)(((unsigned)t * 2654435761u >> 7) % m->c.vocab_size);
                float logit;
                if (rc) break;
                if (pass == 0 && !(rc = sl_forward(&mc, &ex, ws, NULL, &logit, &err))) scale = fmax(scale, fabs(logit));
                if (pass == 1) suffix_example(name, &mc, &ex, ws, r.k, &r.g, &r.hooks, scale);
            }
        CHECK(!rc, "%s: %s", name, err.msg);
    }
    rig_close(&r);
}

static void one_model(const char *name, const sl_model *m, sl_dataset *ds, int examples, tally ty[3])
{
    sl_error err = {0};
    rig r;
    int rc = rig_open(&r, name, m, ds->L, 0);
    sl_workspace *ws = r.ws;
    int32_t *tok = r.tok;
    /* errors relative to the model's logits (as tests/test_patch.c takes
     * them): an example whose logit is a small difference of large terms
     * would otherwise read its rounding as large */
    double scale = 1e-3;
    for (long e = 0; !rc && e < ds->n && e < examples; e++) {
        float logit;
        rc = sl_dataset_read_tokens(ds, e, 1, tok, &err);
        sl_example ex = {tok, ds->lengths[e], e, 0, NULL};
        if (!rc) rc = sl_forward(m, &ex, ws, NULL, &logit, &err);
        scale = fmax(scale, fabs(logit));
    }
    const int redo[3] = {-1, 0, INT_MAX};
    for (long e = 0; !rc && e < ds->n && e < examples; e++) {
        rc = sl_dataset_read_tokens(ds, e, 1, tok, &err);
        sl_example ex = {tok, ds->lengths[e], e, 0, NULL};
        for (int w = 0; !rc && w < 3; w++) one_example(name, m, &ex, ws, r.k, &r.g, &r.hooks, redo[w], scale, &ty[w]);
    }
    rig_close(&r);
}

static tally totals[3];

static void each_fixture(const char *name, const char *path, void *user)
{
    (void)path, (void)user;
    fixture f;
    if (strncmp(name, "tf_", 3) || open_fixture(&f, name, 1, 1)) return;
    one_model(name, &f.m, &f.ds, 3, totals);
    suffix_model(name, &f.m, &f.ds, 3);
    close_fixture(&f);
}

static void trained(const char *model, const char *data)
{
    char dir[256], path[256];
    snprintf(dir, sizeof dir, "tests/trained/%s", model);
    snprintf(path, sizeof path, "tests/trained/%s", data);
    fixture f;
    if (open_model_data(&f, dir, path, 1, 1)) return;
    one_model(model, &f.m, &f.ds, 8, totals);
    suffix_model(model, &f.m, &f.ds, 4);
    close_fixture(&f);
}

int main(void)
{
    sl_h5_quiet();
    int n = for_each_fixture("config.json", each_fixture, NULL);
    CHECK(n >= 10, "only %d fixtures", n);
    trained("tf_count", "count_test.h5");
    trained("tf_order", "order_test.h5");
    trained("tf_recall", "recall_test.h5");
    const char *way[3] = {"default", "whole heads", "rows apart"};
    for (int w = 0; w < 3; w++)
        printf("%s: %ld cases (%ld of them hooks) within %.2e of whole blocks; rows updated %ld, computed again %ld, "
               "heads again %ld\n",
               way[w], totals[w].cases + totals[w].hooked, totals[w].hooked, totals[w].worst, totals[w].st.updated,
               totals[w].st.recomputed, totals[w].st.heads);
    CHECK(totals[0].cases > 300 && totals[0].st.updated > 0, "default: %ld cases, %ld rows updated", totals[0].cases,
          totals[0].st.updated);
    CHECK(totals[1].st.heads > 0 && totals[1].st.updated == 0, "whole heads: %ld heads, %ld rows updated",
          totals[1].st.heads, totals[1].st.updated);
    /* more rows computed again than the changed query's, one a head */
    CHECK(totals[2].st.heads == 0 && totals[2].st.recomputed > totals[2].queries + 100,
          "rows: %ld heads, %ld rows computed again, %ld of them the changed queries", totals[2].st.heads,
          totals[2].st.recomputed, totals[2].queries);
    const suffix_tally *st = &suffix_totals;
    printf("restarts of a causal model: %ld cases (%ld after another, %ld rows too early to restart) within %.2e of "
           "whole blocks, %ld bit-identical\n",
           st->cases, st->carried, st->skipped, st->worst, st->same_bits);
    CHECK(st->cases > 300 && st->carried > 200, "restarts: %ld cases, %ld after another", st->cases, st->carried);
    /* OpenBLAS's kernels give rows from a restart row the whole pass's bits
     * (models/cpu_prefix.h) */
    if (strstr(sl_blas_name(), "OpenBLAS"))
        CHECK(st->same_bits == st->cases, "restarts: %ld of %ld not the whole pass's bits (%s)",
              st->cases - st->same_bits, st->cases, sl_blas_name());
    return TEST_SUMMARY();
}
