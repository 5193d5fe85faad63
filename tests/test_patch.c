/* Activation patching and component ablation: against the PyTorch
 * reference (tests/reference/make_intervention_fixtures.py writes
 * intervene_expected.json beside each fixture), and by properties: the
 * prefix-reusing patch equals a whole forward pass with a write hook, a
 * pair of an example with itself changes nothing, the Mamba (and Mamba-2)
 * gate switch equals writing 1 into the gate hook. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ablation/component.h"
#include "ablation/patch.h"
#include "core/blas.h"
#include "gym/gym.h"
#include "models/cpu_prefix.h"
#include "tests/fixture_files.h"
#include "tests/testing.h"

#define TOL 1e-5

/* ---- the slow way: a whole forward pass with a write hook ---- */

typedef struct {
    int row, width;
    float *src; /* captured [len][width], then the row written */
} slow_state;

static int slow_capture(void *user, sl_hook_event *ev, sl_error *err)
{
    (void)err;
    slow_state *s = user;
    for (int t = 0; t < ev->rows; t++) memcpy(s->src + (size_t)t * ev->cols, ev->data + (long)t * ev->ld, (size_t)ev->cols * 4);
    return SL_OK;
}

static int slow_write(void *user, sl_hook_event *ev, sl_error *err)
{
    (void)err;
    slow_state *s = user;
    memcpy(ev->data + (long)s->row * ev->ld, s->src, (size_t)ev->cols * 4);
    return SL_OK;
}

static float slow_patch(fixture *f, int point, long b, long s, int pb, int ps)
{
    int L = f->ds.L;
    int32_t *tb = malloc((size_t)L * 4), *ts = malloc((size_t)L * 4);
    float *src = malloc((size_t)L * f->m.points[point].width * 4), logit = NAN;
    sl_error err = {0};
    sl_dataset_read_tokens(&f->ds, b, 1, tb, &err);
    sl_dataset_read_tokens(&f->ds, s, 1, ts, &err);
    sl_workspace *ws = sl_workspace_new(&f->m, L, &err);
    slow_state st = {0, 0, src};
    sl_hooks cap, wr;
    sl_hooks_init(&cap, f->m.n_points, &err);
    sl_hooks_init(&wr, f->m.n_points, &err);
    sl_hooks_add(&cap, point, slow_capture, &st, &err);
    sl_hooks_add(&wr, point, slow_write, &st, &err);
    sl_example es = {ts, f->ds.lengths[s], s, 0, NULL}, eb = {tb, f->ds.lengths[b], b, 0, NULL};
    float sl;
    if (!sl_forward(&f->m, &es, ws, &cap, &sl, &err)) {
        memmove(src, src + (size_t)ps * f->m.points[point].width, (size_t)f->m.points[point].width * 4);
        st.row = pb;
        sl_forward(&f->m, &eb, ws, &wr, &logit, &err);
    }
    sl_hooks_free(&cap);
    sl_hooks_free(&wr);
    sl_workspace_free(ws);
    free(tb);
    free(ts);
    free(src);
    return logit;
}

static void patch_properties(const char *name)
{
    fixture f;
    if (open_fixture(&f, name, 2, 3)) return;
    int points[64], np = 0;
    for (int i = 0; i < f.m.n_points && np < 64; i++)
        if (sl_patchable(&f.m, i)) points[np++] = i;
    int positions[] = {0, 2, -1, -3};
    long last = f.ds.n - 1, pairs[] = {0, 1, 1, 2 % f.ds.n, last, 0, 2 % f.ds.n, 2 % f.ds.n};
    sl_patch_opts o = {points, np, positions, 4, pairs, 4, 2, 50, 7, NULL, 0};
    sl_patch_result r;
    sl_error err = {0};
    int rc = sl_patch(&f.m, &f.ds, &o, &r, &err);
    CHECK(!rc, "%s: patch: %s", name, err.msg);
    if (rc) {
        close_fixture(&f);
        return;
    }
    double worst = 0, scale = 1e-3;
    for (int k = 0; k < 4; k++) scale = fmax(scale, fmax(fabs(r.base[k]), fabs(r.source[k])));
    int compared = 0;
    for (int k = 0; k < 4; k++)
        for (int p = 0; p < np; p++)
            for (int q = 0; q < 4; q++) {
                float got = r.patched[((size_t)k * np + p) * 4 + q];
                long b = pairs[2 * k], s = pairs[2 * k + 1];
                int lb = f.ds.lengths[b], ls = f.ds.lengths[s];
                int pb = positions[q] >= 0 ? positions[q] : lb + positions[q];
                int ps = positions[q] >= 0 ? positions[q] : ls + positions[q];
                int valid = pb >= 0 && pb < lb && ps >= 0 && ps < ls;
                if (!valid) {
                    CHECK(isnan(got), "%s: invalid position %d of pair %d not NaN", name, positions[q], k);
                    continue;
                }
                float want = slow_patch(&f, points[p], b, s, pb, ps);
                worst = fmax(worst, fabs(got - want) / scale);
                compared++;
                if (b == s) CHECK(fabsf(got - r.base[k]) <= 1e-5f * (float)scale, "%s: self-pair changed %s", name, f.m.points[points[p]].name);
            }
    CHECK(worst <= TOL && compared > 0, "%s: prefix-reusing patch vs whole forward: %.2e over %d cells", name, worst, compared);
    /* the self-pair's cells have no logit difference: all skipped */
    for (long c = 0; c < (long)np * 4; c++) CHECK(r.n_used[c] + r.n_skipped[c] == 4, "%s: pairs not accounted for", name);
    sl_patch_result_free(&r);

    /* 1 thread and 2 threads: the same numbers */
    o.threads = 1;
    sl_patch_result r1, r2;
    rc = sl_patch(&f.m, &f.ds, &o, &r1, &err);
    o.threads = 2;
    rc |= sl_patch(&f.m, &f.ds, &o, &r2, &err);
    CHECK(!rc && !memcmp(r1.effect, r2.effect, (size_t)np * 4 * sizeof *r1.effect) &&
              !memcmp(r1.ci_lo, r2.ci_lo, (size_t)np * 4 * sizeof *r1.ci_lo),
          "%s: patch differs across thread counts", name);
    sl_patch_result_free(&r1);
    sl_patch_result_free(&r2);
    close_fixture(&f);
}

/* Patching a Mamba where the patched run resumes mid-sequence
 * (models/cpu_prefix.h: from a multiple of SL_RESTART_ALIGN at least
 * SL_RESTART_ROWS before the end): the trained count Mamba and Mamba-2
 * (the SSD's state kept and resumed as the scan's is) on gym sequences of
 * up to 400 tokens, every patchable point, at positions on
 * and around the restart boundaries, against a whole forward pass with a
 * write hook. A wrong resumed state, conv context or pooled prefix moves
 * these logits by far more than the tolerance. */
static void patch_restarts(const char *model)
{
    const char *data = "build/tests/patch_restarts.h5";
    sl_gym_opts g = {GYM_COUNT, 4, 400, 3, 0};
    fixture f;
    sl_error err = {0};
    int rc = sl_gym_write(&g, data, &err);
    if (!rc) rc = sl_model_load(&f.m, model, &err);
    if (!rc) rc = sl_dataset_open(&f.ds, data, f.m.c.vocab_size, f.m.c.pad_token_id, &err);
    CHECK(!rc, "restarts (%s): %s", model, err.msg);
    if (rc) return;
    f.o = (sl_run_opts){.count = f.ds.n, .batch = 3, .threads = 2};
    int points[64], np = 0;
    for (int i = 0; i < f.m.n_points && np < 64; i++)
        if (sl_patchable(&f.m, i)) points[np++] = i;
    int positions[] = {0, 95, 96, 97, 100, 191, 192, 250, -1, -2, -16, -64, -65, -97, -200};
    enum { NQ = sizeof positions / sizeof *positions };
    long pairs[2 * 16], n_pairs = 0;
    for (long b = 0; b < f.ds.n; b++)
        for (long s = 0; s < f.ds.n; s++) pairs[2 * n_pairs] = b, pairs[2 * n_pairs++ + 1] = s;
    sl_patch_opts o = {points, np, positions, NQ, pairs, n_pairs, 2, 0, 7, NULL, 0};
    sl_patch_result r;
    rc = sl_patch(&f.m, &f.ds, &o, &r, &err);
    CHECK(!rc, "restarts (%s): patch: %s", model, err.msg);
    if (rc) {
        sl_dataset_close(&f.ds);
        sl_model_free(&f.m);
        return;
    }
    double worst = 0, scale = 1e-3;
    for (long k = 0; k < n_pairs; k++) scale = fmax(scale, fmax(fabs(r.base[k]), fabs(r.source[k])));
    int compared = 0, restarted = 0, same_bits = 0;
    for (long k = 0; k < n_pairs; k++)
        for (int p = 0; p < np; p++)
            for (int q = 0; q < NQ; q++) {
                float got = r.patched[((size_t)k * np + p) * NQ + q];
                long b = pairs[2 * k], s = pairs[2 * k + 1];
                int lb = f.ds.lengths[b], ls = f.ds.lengths[s];
                int pb = positions[q] >= 0 ? positions[q] : lb + positions[q];
                int ps = positions[q] >= 0 ? positions[q] : ls + positions[q];
                if (!(pb >= 0 && pb < lb && ps >= 0 && ps < ls)) {
                    CHECK(isnan(got), "restarts (%s): invalid position %d of pair %ld not NaN", model, positions[q], k);
                    continue;
                }
                float want = slow_patch(&f, points[p], b, s, pb, ps);
                double e = fabs(got - want) / scale;
                CHECK(e <= TOL, "restarts (%s): %s at %d (base %ld, source %ld): restarted %.9g, whole forward %.9g",
                      model, f.m.points[points[p]].name, pb, b, s, got, want);
                worst = fmax(worst, e);
                compared++;
                restarted += sl_restart_row(pb, lb) > 0;
                same_bits += got == want;
            }
    CHECK(restarted > 500, "restarts (%s): only %d cells restarted mid-sequence", model, restarted);
    /* OpenBLAS's kernels, SkylakeX's among them (main picks them as seqlens
     * does), give a restart the whole pass's bits (models/cpu_prefix.h) */
    if (strstr(sl_blas_name(), "OpenBLAS"))
        CHECK(same_bits == compared, "restarts (%s): %d of %d cells not the whole pass's bits (%s)", model,
              compared - same_bits, compared, sl_blas_name());
    printf("restarts (%s): %d cells (%d restarted mid-sequence) within %.2e of whole forward passes, %d bit-identical\n",
           model, compared, restarted, worst, same_bits);
    sl_patch_result_free(&r);
    sl_dataset_close(&f.ds);
    sl_model_free(&f.m);
}

/* ---- component ablation ---- */

static int gate_one(void *user, sl_hook_event *ev, sl_error *err)
{
    (void)user, (void)err;
    for (int t = 0; t < ev->rows; t++)
        for (int k = 0; k < ev->cols; k++) ev->data[(long)t * ev->ld + k] = 1.0f;
    return SL_OK;
}

static void gate_switch_equals_hook(const char *name)
{
    fixture f;
    if (open_fixture(&f, name, 2, 3)) return;
    if (!sl_arch_is_mamba(f.m.c.arch)) {
        close_fixture(&f);
        return;
    }
    long n = f.ds.n;
    int nl = f.m.c.n_layers;
    for (int i = 0; i < nl; i++) {
        int comp = SL_COMP_GATE;
        float *got = malloc((size_t)n * 4), *want = malloc((size_t)n * 4);
        sl_ablation_result r;
        sl_error err = {0};
        int rc = sl_ablate_components(&f.m, &f.ds, &f.o, &comp, &i, 1, COMP_ZERO, 0, 1, &r, got, &err);
        sl_ablation_result_free(&r);
        sl_hooks h;
        sl_hooks_init(&h, f.m.n_points, &err);
        sl_hooks_add(&h, sl_model_point(&f.m, HK_MIXER_GATE, i), gate_one, NULL, &err);
        rc |= sl_run(&f.m, &f.ds, &f.o, &h, NULL, NULL, NULL, want, &err);
        sl_hooks_free(&h);
        double worst = 0;
        for (long k = 0; k < n; k++) worst = fmax(worst, fabs(got[k] - want[k]));
        CHECK(!rc && worst == 0, "%s: gate switch at layer %d vs gate hook: %.2e (%s)", name, i, worst, err.msg);
        free(got);
        free(want);
    }
    close_fixture(&f);
}

/* ablate --component on a Mamba starts the switched block from the
 * activations the unmodified pass kept (models/cpu_prefix.h): each switch
 * at each layer against a whole forward pass with the same switch, bit for
 * bit (the same operations on the same rows). */
static void switched_block_equals_whole_pass(const char *name)
{
    fixture f;
    if (open_fixture(&f, name, 2, 3)) return;
    if (f.m.c.arch != ARCH_MAMBA) {
        close_fixture(&f);
        return;
    }
    long n = f.ds.n;
    int nl = f.m.c.n_layers;
    const int comps[] = {SL_COMP_CONV, SL_COMP_SSM, SL_COMP_GATE};
    const unsigned bits[] = {SL_OFF_CONV, SL_OFF_SSM, SL_OFF_GATE};
    unsigned *off = calloc((size_t)nl, sizeof *off);
    float *got = malloc((size_t)n * 4), *want = malloc((size_t)n * 4);
    for (int i = 0; i < nl; i++)
        for (int c = 0; c < 3; c++) {
            sl_ablation_result r;
            sl_error err = {0};
            int rc = sl_ablate_components(&f.m, &f.ds, &f.o, &comps[c], &i, 1, COMP_ZERO, 0, 1, &r, got, &err);
            sl_ablation_result_free(&r);
            sl_hooks h;
            rc |= sl_hooks_init(&h, f.m.n_points, &err);
            memset(off, 0, (size_t)nl * sizeof *off);
            off[i] = bits[c];
            h.knockout = off;
            rc |= sl_run(&f.m, &f.ds, &f.o, &h, NULL, NULL, NULL, want, &err);
            sl_hooks_free(&h);
            double worst = 0;
            for (long k = 0; k < n; k++) worst = fmax(worst, fabs(got[k] - want[k]));
            CHECK(!rc && !memcmp(got, want, (size_t)n * 4), "%s: %s at layer %d vs a whole pass with the switch: %.2e (%s)",
                  name, SL_COMPONENT_NAMES[comps[c]], i, worst, err.msg);
        }
    free(off);
    free(got);
    free(want);
    close_fixture(&f);
}

/* Mamba-2's three switches at one layer, each against what it means
 * (design.md section 5), computed here from the hooks of the same run:
 * ssm: y = D x; gate: the gate is 1; conv: x, B and C are SiLU of
 * in_proj's xBC rows of the normed resid_pre (no conv, no conv bias). */
typedef struct {
    int L;
    size_t width;
    float *data; /* [N][L][width] */
} layer_grab;

static int grab_layer(void *user, sl_hook_event *ev, sl_error *err)
{
    (void)err;
    layer_grab *g = user;
    for (int r = 0; r < ev->rows; r++) {
        long e = ev->example + r / ev->len;
        memcpy(g->data + ((size_t)e * g->L + r % ev->len) * g->width, ev->data + (long)r * ev->ld, g->width * 4);
    }
    return SL_OK;
}

static double silu_d(double v) { return v / (1 + exp(-v)); }

/* x, B, C of the conv switched off, from resid_pre: Norm, in_proj, SiLU. */
static double conv_off_error(const fixture *f, int i, layer_grab *g)
{
    const sl_config *c = &f->m.c;
    const sl_mamba2_layer *w = &f->m.mamba2[i];
    int d = c->d_model, di = c->d_inner, GS = c->ngroups * c->d_state, L = f->ds.L;
    double diff = 0, scale = 0;
    double *u = malloc((size_t)d * sizeof *u);
    for (long e = 0; e < f->ds.n; e++)
        for (int t = 0; t < f->ds.lengths[e]; t++) {
            const float *h = g[0].data + ((size_t)e * L + t) * d;
            double mean = 0, ss = 0;
            for (int k = 0; k < d; k++) mean += h[k];
            mean = c->norm == NORM_LAYER ? mean / d : 0;
            for (int k = 0; k < d; k++) ss += (h[k] - mean) * (h[k] - mean);
            double r = 1 / sqrt(ss / d + c->norm_eps);
            for (int k = 0; k < d; k++) u[k] = (h[k] - mean) * r * w->norm_w[k] + (w->norm_b ? w->norm_b[k] : 0);
            for (int j = 0; j < di + 2 * GS; j++) {
                double pre = w->in_b ? w->in_b[di + j] : 0;
                for (int k = 0; k < d; k++) pre += (double)w->in_w[(size_t)(di + j) * d + k] * u[k];
                /* j: x (g[1]), then B (g[2]), then C (g[3]) */
                int part = j < di ? 1 : j < di + GS ? 2 : 3, col = j < di ? j : (j - di) % GS;
                double got = g[part].data[((size_t)e * L + t) * g[part].width + col];
                diff = fmax(diff, fabs(got - silu_d(pre)));
                scale = fmax(scale, fabs(silu_d(pre)));
            }
        }
    free(u);
    return diff / scale;
}

static void mamba2_switches(const char *name)
{
    fixture f;
    if (open_fixture(&f, name, 2, 3)) return;
    const sl_config *c = &f.m.c;
    if (c->arch != ARCH_MAMBA2) {
        close_fixture(&f);
        return;
    }
    int nl = c->n_layers, di = c->d_inner, GS = c->ngroups * c->d_state, L = f.ds.L;
    int kinds[] = {HK_RESID_PRE, HK_MIXER_IN_X, HK_MIXER_B, HK_MIXER_C, HK_MIXER_Y, HK_MIXER_GATE};
    size_t widths[] = {(size_t)c->d_model, (size_t)di, (size_t)GS, (size_t)GS, (size_t)di, (size_t)di};
    layer_grab g[6];
    for (int k = 0; k < 6; k++) g[k] = (layer_grab){L, widths[k], calloc((size_t)f.ds.n * L * widths[k], 4)};
    unsigned *off = calloc((size_t)nl, sizeof *off);
    const unsigned switches[] = {SL_OFF_CONV, SL_OFF_SSM, SL_OFF_GATE};
    for (int i = 0; i < nl; i++)
        for (int s = 0; s < 3; s++) {
            sl_error err = {0};
            sl_hooks h;
            sl_hooks_init(&h, f.m.n_points, &err);
            for (int k = 0; k < 6; k++) sl_hooks_add(&h, sl_model_point(&f.m, kinds[k], i), grab_layer, &g[k], &err);
            memset(off, 0, (size_t)nl * sizeof *off);
            off[i] = switches[s];
            h.knockout = off;
            float *logits = malloc((size_t)f.ds.n * 4);
            int rc = sl_run(&f.m, &f.ds, &f.o, &h, NULL, NULL, NULL, logits, &err);
            CHECK(!rc, "%s: %s", name, err.msg);
            sl_hooks_free(&h);
            free(logits);
            if (rc) continue;
            double worst = 0;
            long checked = 0;
            for (long e = 0; e < f.ds.n; e++)
                for (int t = 0; t < f.ds.lengths[e]; t++)
                    for (int ch = 0; ch < di; ch++) {
                        size_t at = ((size_t)e * L + t) * di + ch;
                        if (switches[s] == SL_OFF_SSM) {
                            float D = c->D_has_hdim ? f.m.mamba2[i].D[ch] : f.m.mamba2[i].D[ch / c->headdim];
                            worst = fmax(worst, fabs(g[4].data[at] - D * g[1].data[at]) / fmax(1e-3, fabs(g[4].data[at])));
                        } else if (switches[s] == SL_OFF_GATE) {
                            worst = fmax(worst, fabs(g[5].data[at] - 1.0));
                        }
                        checked++;
                    }
            if (switches[s] == SL_OFF_CONV) worst = conv_off_error(&f, i, g);
            /* ssm: one float product each side (the test's fused into its subtraction) */
            double tol = switches[s] == SL_OFF_CONV ? TOL : switches[s] == SL_OFF_SSM ? 1e-6 : 0;
            CHECK(checked > 0 && worst <= tol,
                  "%s: layer %d with %s off: %.3g from what the switch means", name, i,
                  s == 0 ? "conv" : s == 1 ? "ssm" : "gate", worst);
        }
    free(off);
    for (int k = 0; k < 6; k++) free(g[k].data);
    close_fixture(&f);
}

/* ---- against the PyTorch reference ---- */

static double scale_of(const cJSON *arr)
{
    double s = 1e-3;
    for (int i = 0; i < cJSON_GetArraySize(arr); i++) s = fmax(s, fabs(cJSON_GetArrayItem(arr, i)->valuedouble));
    return s;
}

static void components_vs_reference(fixture *f, const char *name, const cJSON *rows)
{
    long n = f->ds.n;
    float *got = malloc((size_t)n * sizeof *got);
    const cJSON *row;
    int checked = 0;
    cJSON_ArrayForEach(row, rows)
    {
        const char *cname = cJSON_GetObjectItem(row, "component")->valuestring;
        int comp = -1, layer = cJSON_GetObjectItem(row, "layer")->valueint;
        for (int c = 0; c < SL_COMP_COUNT; c++)
            if (!strcmp(SL_COMPONENT_NAMES[c], cname)) comp = c;
        int mode = strcmp(cJSON_GetObjectItem(row, "mode")->valuestring, "mean") ? COMP_ZERO : COMP_MEAN;
        const cJSON *want = cJSON_GetObjectItem(row, "logits");
        sl_ablation_result r;
        sl_error err = {0};
        int rc = sl_ablate_components(&f->m, &f->ds, &f->o, &comp, &layer, 1, mode, 0, 1, &r, got, &err);
        sl_ablation_result_free(&r);
        double worst = 0;
        for (long k = 0; k < n; k++) worst = fmax(worst, fabs(got[k] - cJSON_GetArrayItem(want, (int)k)->valuedouble));
        worst /= scale_of(want);
        CHECK(!rc && worst <= TOL, "%s: %s layer %d mode %d vs PyTorch: %.2e (%s)", name, cname, layer, mode, worst, err.msg);
        checked++;
    }
    CHECK(checked > 0, "%s: no component rows", name);
    free(got);
}

static void patch_vs_reference(fixture *f, const char *name, const cJSON *p)
{
    const cJSON *jp = cJSON_GetObjectItem(p, "pairs"), *jh = cJSON_GetObjectItem(p, "hooks"),
                *jq = cJSON_GetObjectItem(p, "positions"), *cells = cJSON_GetObjectItem(p, "patched");
    int M = cJSON_GetArraySize(jp), H = cJSON_GetArraySize(jh), P = cJSON_GetArraySize(jq);
    long *pairs = malloc((size_t)M * 2 * sizeof *pairs);
    int *points = malloc((size_t)H * sizeof *points), *positions = malloc((size_t)P * sizeof *positions);
    for (int k = 0; k < M; k++)
        for (int side = 0; side < 2; side++) pairs[2 * k + side] = cJSON_GetArrayItem(cJSON_GetArrayItem(jp, k), side)->valueint;
    for (int h = 0; h < H; h++) {
        points[h] = sl_model_find_point(&f->m, cJSON_GetArrayItem(jh, h)->valuestring);
        CHECK(points[h] >= 0, "%s: no hook %s", name, cJSON_GetArrayItem(jh, h)->valuestring);
    }
    for (int q = 0; q < P; q++) positions[q] = cJSON_GetArrayItem(jq, q)->valueint;
    sl_patch_opts o = {points, H, positions, P, pairs, M, 2, 0, 1, NULL, 0};
    sl_patch_result r;
    sl_error err = {0};
    int rc = sl_patch(&f->m, &f->ds, &o, &r, &err);
    CHECK(!rc, "%s: patch: %s", name, err.msg);
    if (!rc) {
        double scale = fmax(scale_of(cJSON_GetObjectItem(p, "base_logits")), scale_of(cJSON_GetObjectItem(p, "source_logits")));
        double worst = 0;
        int nulls = 0, values = 0, mismatched_nulls = 0;
        for (int k = 0; k < M; k++) {
            worst = fmax(worst, fabs(r.base[k] - cJSON_GetArrayItem(cJSON_GetObjectItem(p, "base_logits"), k)->valuedouble));
            worst = fmax(worst, fabs(r.source[k] - cJSON_GetArrayItem(cJSON_GetObjectItem(p, "source_logits"), k)->valuedouble));
            for (int h = 0; h < H; h++)
                for (int q = 0; q < P; q++) {
                    const cJSON *w = cJSON_GetArrayItem(cJSON_GetArrayItem(cJSON_GetArrayItem(cells, k), h), q);
                    float g = r.patched[((size_t)k * H + h) * P + q];
                    if (cJSON_IsNull(w)) {
                        nulls++;
                        mismatched_nulls += !isnan(g);
                    } else {
                        values++;
                        mismatched_nulls += isnan(g);
                        if (!isnan(g)) worst = fmax(worst, fabs(g - w->valuedouble));
                    }
                }
        }
        CHECK(mismatched_nulls == 0, "%s: %d cells valid on one side only", name, mismatched_nulls);
        CHECK(worst / scale <= TOL && values > 0, "%s: patched logits vs PyTorch: %.2e over %d cells (%d null)", name,
              worst / scale, values, nulls);
        sl_patch_result_free(&r);
    }
    free(pairs);
    free(points);
    free(positions);
}

static void reference_fixture(const char *name, const char *path, void *user)
{
    (void)user;
    cJSON *want = read_json(path);
    fixture f;
    if (!want || open_fixture(&f, name, 2, 3)) {
        CHECK(want != NULL, "%s: unreadable", path);
        cJSON_Delete(want);
        return;
    }
    components_vs_reference(&f, name, cJSON_GetObjectItem(want, "components"));
    patch_vs_reference(&f, name, cJSON_GetObjectItem(want, "patch"));
    close_fixture(&f);
    cJSON_Delete(want);
}

static void each_fixture(const char *name, const char *path, void *user)
{
    (void)path, (void)user;
    patch_properties(name);
    gate_switch_equals_hook(name);
    switched_block_equals_whole_pass(name);
    mamba2_switches(name);
}

int main(int argc, char **argv)
{
    (void)argc;
    sl_blas_pick_core(argv); /* the BLAS kernels, and so the restarts' row grain, that seqlens itself runs */
    sl_h5_quiet();
    patch_restarts("tests/trained/mamba_count");
    patch_restarts("tests/trained/mamba2_count");
    int n = for_each_fixture("config.json", each_fixture, NULL);
    CHECK(n >= 10, "only %d fixtures", n);
    n = for_each_fixture("intervene_expected.json", reference_fixture, NULL);
    CHECK(n >= 10, "only %d fixtures have intervene_expected.json", n);
    return TEST_SUMMARY();
}
