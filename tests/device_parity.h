/* The device model core against PyTorch (every hook point and the
 * gradient) and against the CPU core, on every fixture (every config
 * variant): logits; every hook point's values for every example; a write
 * at every hook point; key/pooling masks; each Mamba structural ablation. Shared by tests/test_device_model.c (the host grid, in `make
 * test`) and bench/gpu_parity.c (a real GPU, in bench/gpu.sh), so the GPU
 * is held to exactly the checks the CPU suite runs on every change. */
#ifndef SL_DEVICE_PARITY_H
#define SL_DEVICE_PARITY_H

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ablation/component.h"
#include "ablation/family.h"
#include "ablation/layer.h"
#include "ablation/patch.h"
#include "attribution/attribute.h"
#include "attribution/inspect.h"
#include "cuda/device_model.h"
#include "tests/fixture_files.h"

typedef int (*parity_open_fn)(sl_device *dev, sl_error *err);

/* Every hook point's values, per example. */
typedef struct {
    long n;
    int n_points;
    float **v;  /* [point][example] rows x cols, packed */
    long *size; /* floats in each */
} captures;

static int capture_hook(void *user, sl_hook_event *ev, sl_error *err)
{
    captures *c = user;
    long k = (long)ev->id * c->n + ev->example;
    float *p = malloc((size_t)ev->rows * ev->cols * sizeof *p);
    if (!p) return sl_fail(err, SL_ERUNTIME, "out of memory");
    for (int r = 0; r < ev->rows; r++) memcpy(p + (long)r * ev->cols, ev->data + (long)r * ev->ld, (size_t)ev->cols * 4);
    free(c->v[k]);
    c->v[k] = p;
    c->size[k] = (long)ev->rows * ev->cols;
    return SL_OK;
}

/* A write every path must carry the same way: rows 0 and 1 of every
 * example (its one row for pooled and logits) halved and shifted. */
static int write_hook(void *user, sl_hook_event *ev, sl_error *err)
{
    (void)user, (void)err;
    for (int r = 0; r < ev->rows && r < 2; r++)
        for (int j = 0; j < ev->cols; j++) ev->data[(long)r * ev->ld + j] = 0.5f * ev->data[(long)r * ev->ld + j] + 0.25f;
    return SL_OK;
}

/* Keys and pooled positions dropped: every third position from 2 on, in
 * even examples. */
static int mask_batch(void *user, sl_batch *b, sl_error *err)
{
    (void)user, (void)err;
    for (int e = 0; e < b->count; e++)
        if ((b->first + e) % 2 == 0)
            for (int t = 2; t < b->lengths[e]; t += 3) b->keep[(long)e * b->L + t] = 0;
    return SL_OK;
}

typedef struct {
    parity_open_fn open;
    double tol;
    int batch; /* device batch: small, so that batches pad to different lengths */
    int per_arch[3]; /* fixtures run, by ARCH_* */
} parity_opts;

/* Runs the fixture's data through the CPU core and the device with the
 * same hooks, before-batch function and switches; compares the logits. */
static void run_pair(fixture *f, sl_backend *dm, const parity_opts *po, const sl_hooks *hooks, sl_batch_fn before,
                     const char *what, const char *name)
{
    long n = f->ds.n;
    float *cpu = calloc((size_t)n, 4), *dev = calloc((size_t)n, 4);
    sl_error err = {0};
    sl_run_opts o = {.count = n, .batch = 4, .threads = 1};
    int rc = sl_run(&f->m, &f->ds, &o, hooks, before, NULL, NULL, cpu, &err);
    CHECK(!rc, "%s: %s: CPU: %s", name, what, err.msg);
    o.batch = po->batch, o.backend = dm;
    rc = sl_run(&f->m, &f->ds, &o, hooks, before, NULL, NULL, dev, &err);
    CHECK(!rc, "%s: %s: device: %s", name, what, err.msg);
    double e = rel_err(dev, cpu, n);
    CHECK(e <= po->tol, "%s: %s: logits differ by %.2e (relative)", name, what, e);
    free(cpu), free(dev);
}

/* Every hook point captured on both paths, compared point by point. */
static void compare_captures(fixture *f, sl_backend *dm, const parity_opts *po, sl_batch_fn before,
                             const char *what, const char *name)
{
    long n = f->ds.n;
    int np = f->m.n_points;
    captures c[2];
    sl_hooks h[2];
    sl_error err = {0};
    for (int k = 0; k < 2; k++) {
        c[k] = (captures){n, np, calloc((size_t)np * n, sizeof(float *)), calloc((size_t)np * n, sizeof(long))};
        sl_hooks_init(&h[k], np, &err);
        for (int p = 0; p < np; p++) sl_hooks_add(&h[k], p, capture_hook, &c[k], &err);
        sl_run_opts o = {.count = n, .batch = k ? po->batch : 4, .threads = 1, .backend = k ? dm : NULL};
        int rc = sl_run(&f->m, &f->ds, &o, &h[k], before, NULL, NULL, NULL, &err);
        CHECK(!rc, "%s: %s: capture on the %s: %s", name, what, k ? "device" : "CPU", err.msg);
    }
    for (int p = 0; p < np; p++) {
        double worst = 0;
        int same_shape = 1;
        for (long e = 0; e < n; e++) {
            long i = (long)p * n + e;
            if (!c[0].v[i] || !c[1].v[i] || c[0].size[i] != c[1].size[i]) {
                same_shape = 0;
                continue;
            }
            double d = rel_err(c[1].v[i], c[0].v[i], c[0].size[i]);
            if (!(d <= worst)) worst = d;
        }
        CHECK(same_shape, "%s: %s: %s was not handed over the same on both paths", name, what, f->m.points[p].name);
        CHECK(worst <= po->tol, "%s: %s: %s differs by %.2e (relative)", name, what, f->m.points[p].name, worst);
    }
    for (int k = 0; k < 2; k++) {
        for (long i = 0; i < (long)np * n; i++) free(c[k].v[i]);
        free(c[k].v), free(c[k].size);
        sl_hooks_free(&h[k]);
    }
}

/* Row replacements (the write the device does without copying out) at
 * every point they apply to: zeros, then a fixed row, where (slot + t) % 3
 * == 0. */
static void replacements(fixture *f, sl_backend *dm, const parity_opts *po, const char *name)
{
    int L = f->ds.L, widest = 1;
    for (int p = 0; p < f->m.n_points; p++)
        if (f->m.points[p].width > widest) widest = f->m.points[p].width;
    uint8_t *mask = malloc((size_t)4 * L);
    float *row = malloc((size_t)widest * sizeof *row);
    for (int e = 0; e < 4; e++)
        for (int t = 0; t < L; t++) mask[(long)e * L + t] = (e + t) % 3 == 0;
    for (int j = 0; j < widest; j++) row[j] = 0.1f * (float)(j % 7) - 0.3f;
    sl_error err = {0};
    char what[96];
    for (int p = 0; p < f->m.n_points; p++) {
        const sl_hook_point *pt = &f->m.points[p];
        if (pt->per_example || pt->kind == HK_ATTN_PATTERN) continue;
        for (int with_row = 0; with_row < 2; with_row++) {
            sl_row_replace rep = {mask, L, with_row ? row : NULL};
            sl_hooks h;
            sl_hooks_init(&h, f->m.n_points, &err);
            sl_hooks_add_replace(&h, p, &rep, &err);
            snprintf(what, sizeof what, "%s replaced by %s", pt->name, with_row ? "a row" : "zeros");
            run_pair(f, dm, po, &h, NULL, what, name);
            sl_hooks_free(&h);
        }
    }
    free(mask), free(row);
}

/* The family-ablation sweep itself (ablation/family.c), every mode, on both
 * paths: ablated logits and masked fractions. */
static void family_sweeps(fixture *f, sl_backend *dm, const parity_opts *po, const char *name)
{
    int F = f->ds.n_families;
    if (F < 1) return;
    int *fams = malloc((size_t)F * sizeof *fams);
    for (int i = 0; i < F; i++) fams[i] = i;
    long n = f->ds.n;
    float *lg[2] = {malloc((size_t)F * n * 4), malloc((size_t)F * n * 4)};
    /* skip (Mamba and Mamba-2): delta's rows zeroed by row replacements */
    int last = sl_arch_is_mamba(f->m.c.arch) ? FAM_SKIP : FAM_RESAMPLE;
    for (int mode = FAM_MEAN; mode <= last; mode++) {
        sl_family_opts fo = {mode, 7, 0, NULL};
        sl_ablation_result res[2];
        int ok = 1;
        for (int k = 0; k < 2; k++) {
            sl_error err = {0};
            sl_run_opts o = {.count = n, .batch = k ? po->batch : 4, .threads = 1, .backend = k ? dm : NULL};
            int rc = sl_ablate_families(&f->m, &f->ds, &o, fams, F, &fo, &res[k], lg[k], &err);
            CHECK(!rc, "%s: family ablation (%s) on the %s: %s", name, sl_family_mode_name(mode), k ? "device" : "CPU",
                  err.msg);
            ok &= !rc;
        }
        if (ok) {
            double e = rel_err(lg[1], lg[0], (long)F * n);
            CHECK(e <= po->tol, "%s: family ablation (%s): ablated logits differ by %.2e", name,
                  sl_family_mode_name(mode), e);
            int same = res[0].n_rows == res[1].n_rows;
            for (int i = 0; same && i < res[0].n_rows; i++)
                same = res[0].rows[i].masked_fraction == res[1].rows[i].masked_fraction;
            CHECK(same, "%s: family ablation (%s): rows or masked fractions differ", name, sl_family_mode_name(mode));
        }
        sl_ablation_result_free(&res[0]);
        sl_ablation_result_free(&res[1]);
    }
    free(lg[0]), free(lg[1]), free(fams);
}

/* Layer and component ablation (prefix reuse: the device keeps the
 * residuals), every layer, component and mode, on both paths. */
static void variant_sweeps(fixture *f, sl_backend *dm, const parity_opts *po, const char *name)
{
    int nl = f->m.c.n_layers, nc = 0;
    long n = f->ds.n;
    int layers[64], comps[64], comp_layers[64];
    for (int i = 0; i < nl && i < 64; i++) layers[i] = i;
    for (int c = 0; c < SL_COMP_COUNT; c++)
        for (int i = 0; sl_component_valid(&f->m, c) && i < nl && nc < 64; i++) comps[nc] = c, comp_layers[nc++] = i;
    float *lg[2] = {malloc((size_t)64 * n * 4), malloc((size_t)64 * n * 4)};
    for (int what = 0; what < 4; what++) {
        int ok = 1, rows = what < 2 ? nl : nc;
        for (int k = 0; k < 2; k++) {
            sl_error err = {0};
            sl_ablation_result res;
            sl_run_opts o = {.count = n, .batch = k ? po->batch : 4, .threads = 1, .backend = k ? dm : NULL};
            int rc = what < 2 ? sl_ablate_layers(&f->m, &f->ds, &o, layers, nl, what ? LAYER_MEAN : LAYER_SKIP, 0, 1,
                                                 &res, lg[k], &err)
                              : sl_ablate_components(&f->m, &f->ds, &o, comps, comp_layers, nc,
                                                     what == 2 ? COMP_ZERO : COMP_MEAN, 0, 1, &res, lg[k], &err);
            CHECK(!rc, "%s: %s ablation on the %s: %s", name, what < 2 ? "layer" : "component", k ? "device" : "CPU",
                  err.msg);
            ok &= !rc;
            if (!rc) sl_ablation_result_free(&res);
        }
        double e = ok ? rel_err(lg[1], lg[0], (long)rows * n) : INFINITY;
        CHECK(e <= po->tol, "%s: %s ablation (mode %d): ablated logits differ by %.2e", name,
              what < 2 ? "layer" : "component", what % 2, e);
    }
    free(lg[0]), free(lg[1]);
}

/* Per-token attributions, kept row by row ([n][L]) through tokens_fn. */
typedef struct {
    float *rows;
    long L;
} token_rows;

static int keep_rows(void *user, long row, int count, int L, const float *attr, sl_error *err)
{
    (void)err;
    token_rows *t = user;
    memcpy(t->rows + row * t->L, attr, (size_t)count * L * sizeof *attr);
    return SL_OK;
}

/* Attribution (the backward pass) on both paths: gradient x input and
 * integrated gradients from both baselines; per-token attributions and the
 * totals. Gradients are held to 1e-4 (the CPU core's own tolerance against
 * PyTorch's gradients), or to the parity tolerance if that is looser. */
static void attributions(fixture *f, sl_backend *dm, const parity_opts *po, const char *name)
{
    long n = f->ds.n, L = f->ds.L;
    double tol = po->tol > 1e-4 ? po->tol : 1e-4;
    sl_attr_opts cases[3] = {{ATTR_GRAD_INPUT, 0, BASELINE_PAD, 0, 0, NULL}, {ATTR_IG, 4, BASELINE_PAD, 0, 0, NULL},
                             {ATTR_IG, 4, BASELINE_ZERO, 0, 0, NULL}};
    const char *names[3] = {"gradient x input", "ig from pad", "ig from zeros"};
    for (int k = 0; k < 3; k++) {
        token_rows t[2] = {{calloc((size_t)n * L, 4), L}, {calloc((size_t)n * L, 4), L}};
        sl_attr_result res[2];
        int ok = 1;
        for (int side = 0; side < 2; side++) {
            sl_error err = {0};
            sl_run_opts o = {.count = n, .batch = side ? po->batch : 4, .threads = 1, .backend = side ? dm : NULL};
            int rc = sl_attribute(&f->m, &f->ds, &o, &cases[k], &res[side], keep_rows, &t[side], &err);
            CHECK(!rc, "%s: %s on the %s: %s", name, names[k], side ? "device" : "CPU", err.msg);
            ok &= !rc;
        }
        if (ok) {
            double e = rel_err(t[1].rows, t[0].rows, n * L);
            CHECK(e <= tol, "%s: %s: per-token attributions differ by %.2e", name, names[k], e);
            double te = fabs(res[1].total - res[0].total) / fmax(fabs(res[0].total), 1e-30);
            CHECK(te <= tol, "%s: %s: total |attribution| differs by %.2e", name, names[k], te);
            CHECK(res[0].valid == res[1].valid, "%s: %s: valid counts differ", name, names[k]);
            double ce = fabs(res[1].completeness_mean - res[0].completeness_mean);
            CHECK(ce <= tol * fmax(1.0, fabs(res[0].completeness_mean)) + 1e-6,
                  "%s: %s: completeness %.3g on the device, %.3g on the CPU", name, names[k],
                  res[1].completeness_mean, res[0].completeness_mean);
        }
        for (int side = 0; side < 2; side++) {
            if (ok) sl_attr_result_free(&res[side]);
            free(t[side].rows);
        }
    }
}

/* Activation patching at every patchable point and a mix of positions
 * (absolute, from the end, and one past most lengths), over pairs that
 * include a pair of equal examples: base, source and every patched logit,
 * with the same cells left NaN on both paths. */
static void patches(fixture *f, sl_backend *dm, const parity_opts *po, const char *name)
{
    int points[64], np = 0;
    for (int i = 0; i < f->m.n_points && np < 64; i++)
        if (sl_patchable(&f->m, i)) points[np++] = i;
    int positions[] = {0, 2, -1, -3, 11};
    long n = f->ds.n, pairs[] = {0, 1, 1, 2 % n, n - 1, 0, 2 % n, 2 % n, 1, n - 1};
    long M = 5, cells = (long)np * 5;
    sl_patch_result res[2];
    int ok = 1;
    for (int side = 0; side < 2; side++) {
        sl_patch_opts o = {points, np, positions, 5, pairs, M, 1, 0, 1, side ? dm : NULL, 0};
        sl_error err = {0};
        int rc = sl_patch(&f->m, &f->ds, &o, &res[side], &err);
        CHECK(!rc, "%s: patch on the %s: %s", name, side ? "device" : "CPU", err.msg);
        ok &= !rc;
    }
    if (!ok) return;
    int same_nan = 1;
    double worst = 0, scale = 1e-3;
    for (long k = 0; k < M; k++) scale = fmax(scale, fmax(fabs(res[0].base[k]), fabs(res[0].source[k])));
    for (long i = 0; i < M * cells; i++) {
        float a = res[0].patched[i], b = res[1].patched[i];
        if (isnan(a) || isnan(b)) same_nan &= isnan(a) && isnan(b);
        else worst = fmax(worst, fabs((double)a - b) / scale);
    }
    CHECK(same_nan, "%s: patch: the NaN cells differ", name);
    CHECK(worst <= po->tol, "%s: patch: patched logits differ by %.2e (relative)", name, worst);
    double e = fmax(rel_err(res[1].base, res[0].base, M), rel_err(res[1].source, res[0].source, M));
    CHECK(e <= po->tol, "%s: patch: base or source logits differ by %.2e", name, e);
    sl_patch_result_free(&res[0]);
    sl_patch_result_free(&res[1]);
}

/* 1 when a and b agree within tol relative to max(1, |a|), NaN with NaN. */
static int close_or_nan(double a, double b, double tol)
{
    if (isnan(a) || isnan(b)) return isnan(a) && isnan(b);
    return fabs(a - b) <= tol * fmax(1.0, fabs(a));
}

/* inspect (attribution/inspect.c: its hooks read delta, B, C, gate, y and
 * the pattern as the device hands them over) on both paths: every
 * statistic of every layer and family, Mamba-2's per head included. */
static void inspections(fixture *f, sl_backend *dm, const parity_opts *po, const char *name)
{
    if (f->ds.n_families < 1) return;
    long n = f->ds.n;
    sl_inspect_result res[2];
    int ok = 1;
    for (int side = 0; side < 2; side++) {
        sl_error err = {0};
        sl_run_opts o = {.count = n, .batch = side ? po->batch : 4, .threads = 1, .backend = side ? dm : NULL};
        int rc = sl_inspect(&f->m, &f->ds, &o, &res[side], &err);
        CHECK(!rc, "%s: inspect on the %s: %s", name, side ? "device" : "CPU", err.msg);
        ok &= !rc;
    }
    if (!ok) return;
    const sl_inspect_result *a = &res[0], *b = &res[1];
    int same = a->n_layers == b->n_layers && a->n_families == b->n_families && a->n_heads == b->n_heads
               && a->selectivity == b->selectivity && a->ssm_heads == b->ssm_heads;
    CHECK(same, "%s: inspect: shapes differ between the CPU and the device", name);
    double tol = po->tol * 10; /* memory lengths divide by 1 - retention */
    int worst_layer = -1;
    for (int k = 0; same && k < a->n_layers * a->n_families; k++) {
        const sl_inspect_family *x = &a->fam[k], *y = &b->fam[k];
        int good = x->count == y->count && close_or_nan(x->mean_delta, y->mean_delta, tol)
                   && close_or_nan(x->mean_gate, y->mean_gate, tol) && close_or_nan(x->mean_write, y->mean_write, tol)
                   && close_or_nan(x->mean_retention, y->mean_retention, tol)
                   && close_or_nan(x->memory_length, y->memory_length, tol)
                   && close_or_nan(x->attention_mass, y->attention_mass, tol)
                   && close_or_nan(x->token_share, y->token_share, tol) && close_or_nan(x->ratio, y->ratio, tol);
        for (int q = 0; good && q < SL_PH_COUNT && a->ssm_heads; q++)
            for (int hh = 0; good && hh < a->ssm_heads; hh++)
                good = close_or_nan(x->per_head[q][hh], y->per_head[q][hh], tol);
        for (int hh = 0; good && x->attention_mass_per_head && hh < a->n_heads; hh++)
            good = close_or_nan(x->attention_mass_per_head[hh], y->attention_mass_per_head[hh], tol);
        if (!good && worst_layer < 0) worst_layer = k / a->n_families;
    }
    for (int k = 0; same && a->head && k < a->n_layers * a->n_heads; k++)
        if (!close_or_nan(a->head[k].entropy, b->head[k].entropy, tol)
            || !close_or_nan(a->head[k].mean_distance, b->head[k].mean_distance, tol))
            if (worst_layer < 0) worst_layer = k / a->n_heads;
    CHECK(worst_layer < 0, "%s: inspect: statistics of layer %d differ between the CPU and the device", name,
          worst_layer);
    sl_inspect_free(&res[0]);
    sl_inspect_free(&res[1]);
}

/* The device against PyTorch itself (tests/reference/'s expected.h5 and
 * grad_expected.h5), not only against the CPU core: every hook point
 * ([N][L][width], [N][H][L][L], [N][width]; 0 past each length) and the
 * logits within the tolerance, and gradient x input per position within
 * 1e-4 of autograd's d logit / d embed . embed. */
static void golden(fixture *f, sl_backend *dm, const parity_opts *po, const char *name)
{
    char expected[600], grads[600];
    snprintf(expected, sizeof expected, FIXTURES "/%s/expected.h5", name);
    snprintf(grads, sizeof grads, FIXTURES "/%s/grad_expected.h5", name);
    const sl_model *m = &f->m;
    long n = f->ds.n, L = f->ds.L;
    int np = m->n_points, H = m->c.n_heads, d = m->c.d_model;
    captures c = {n, np, calloc((size_t)np * n, sizeof(float *)), calloc((size_t)np * n, sizeof(long))};
    sl_hooks h;
    sl_error err = {0};
    sl_hooks_init(&h, np, &err);
    for (int p = 0; p < np; p++) sl_hooks_add(&h, p, capture_hook, &c, &err);
    float *logits = calloc((size_t)n, sizeof *logits);
    sl_run_opts o = {.count = n, .batch = po->batch, .threads = 1, .backend = dm};
    int rc = sl_run(&f->m, &f->ds, &o, &h, NULL, NULL, NULL, logits, &err);
    CHECK(!rc, "%s: golden: device run: %s", name, err.msg);
    for (int p = 0; !rc && p < np; p++) {
        const sl_hook_point *pt = &m->points[p];
        int pattern = pt->kind == HK_ATTN_PATTERN;
        /* embed.tokens is the embedding before an additive positional term */
        int additive = m->c.arch == ARCH_TRANSFORMER && (m->c.positional == POS_LEARNED || m->c.positional == POS_SINUSOIDAL);
        if (pt->kind == HK_EMBED_TOKENS && additive) continue;
        size_t row = pt->per_example ? (size_t)pt->width : pattern ? (size_t)H * L * L : (size_t)L * pt->width;
        float *want = read_floats(expected, pt->kind == HK_EMBED_TOKENS ? "embed" : pt->name, (size_t)n * row);
        if (!want && pattern && L > 64) continue; /* long fixtures leave their patterns out */
        CHECK(want != NULL, "%s: golden: expected.h5 has no %s of %zu floats", name, pt->name, (size_t)n * row);
        float *got = calloc((size_t)n * row, sizeof *got);
        for (long e = 0; want && e < n; e++) {
            const float *v = c.v[(long)p * n + e];
            int len = f->ds.lengths[e], w = pattern ? len : pt->width;
            int rows = pt->per_example ? 1 : pattern ? H * len : len;
            for (int r = 0; v && r < rows; r++) {
                /* the pattern's row r is head r / len, query r % len, in [H][L][L] */
                size_t at = pattern ? ((size_t)(r / len) * L + r % len) * L : (size_t)r * w;
                memcpy(got + e * row + at, v + (size_t)r * w, (size_t)w * sizeof *got);
            }
        }
        double e = want ? rel_err(got, want, (size_t)n * row) : INFINITY;
        CHECK(e <= po->tol, "%s: golden: %s differs from PyTorch by %.2e (relative)", name, pt->name, e);
        free(want), free(got);
    }
    float *want = read_floats(expected, "logits", (size_t)n);
    CHECK(want && rel_err(logits, want, (size_t)n) <= po->tol, "%s: golden: logits differ from PyTorch", name);
    free(want), free(logits);
    for (long i = 0; i < (long)np * n; i++) free(c.v[i]);
    free(c.v), free(c.size);
    sl_hooks_free(&h);

    /* gradient x input: sum_j d logit / d embed[t][j] * embed[t][j] */
    float *g = read_floats(grads, "blocks.0.resid_pre", (size_t)n * L * d);
    float *x = read_floats(expected, "embed", (size_t)n * L * d);
    CHECK(g && x, "%s: golden: no d logit / d blocks.0.resid_pre or no embed", name);
    token_rows t = {calloc((size_t)n * L, 4), L};
    float *wanted = calloc((size_t)n * L, sizeof *wanted);
    sl_attr_opts ao = {ATTR_GRAD_INPUT, 0, BASELINE_PAD, 0, 0, NULL};
    sl_attr_result res;
    rc = g && x ? sl_attribute(&f->m, &f->ds, &o, &ao, &res, keep_rows, &t, &err) : SL_EINPUT;
    CHECK(!rc, "%s: golden: gradient x input on the device: %s", name, err.msg);
    if (!rc) {
        for (long e = 0; e < n; e++)
            for (int q = 0; q < f->ds.lengths[e]; q++) {
                double s = 0;
                for (int j = 0; j < d; j++) s += (double)g[(e * L + q) * d + j] * x[(e * L + q) * d + j];
                wanted[e * L + q] = (float)s;
            }
        double e = rel_err(t.rows, wanted, (size_t)n * L), tol = po->tol > 1e-4 ? po->tol : 1e-4;
        CHECK(e <= tol, "%s: golden: gradient x input differs from autograd's by %.2e (relative)", name, e);
        sl_attr_result_free(&res);
    }
    free(g), free(x), free(t.rows), free(wanted);
}

static void parity_fixture(const char *name, const char *path, void *user)
{
    (void)path;
    parity_opts *po = user;
    fixture f;
    if (open_fixture(&f, name, 1, 4)) return;
    if (f.m.c.arch >= 0 && f.m.c.arch < 3) po->per_arch[f.m.c.arch]++;
    sl_device dev;
    sl_error err = {0};
    sl_backend *dm = NULL;
    int rc = po->open(&dev, &err);
    sl_dev_model *core = rc ? NULL : sl_dev_model_new(&f.m, &dev, po->batch, f.ds.L, &err);
    if (core) dm = sl_dev_backend(core, &err);
    CHECK(dm != NULL, "%s: device model: %s", name, err.msg);
    if (!dm) {
        close_fixture(&f);
        return;
    }
    golden(&f, dm, po, name);
    run_pair(&f, dm, po, NULL, NULL, "plain", name);
    compare_captures(&f, dm, po, NULL, "every hook", name);
    compare_captures(&f, dm, po, mask_batch, "every hook, masked", name);
    run_pair(&f, dm, po, NULL, mask_batch, "masked", name);

    char what[96];
    for (int p = 0; p < f.m.n_points; p++) {
        sl_hooks h;
        sl_hooks_init(&h, f.m.n_points, &err);
        sl_hooks_add(&h, p, write_hook, NULL, &err);
        snprintf(what, sizeof what, "write at %s", f.m.points[p].name);
        run_pair(&f, dm, po, &h, NULL, what, name);
        sl_hooks_free(&h);
    }
    replacements(&f, dm, po, name);
    family_sweeps(&f, dm, po, name);
    inspections(&f, dm, po, name);
    variant_sweeps(&f, dm, po, name);
    attributions(&f, dm, po, name);
    patches(&f, dm, po, name);
    if (sl_arch_is_mamba(f.m.c.arch)) {
        unsigned *off = calloc((size_t)f.m.c.n_layers, sizeof *off);
        sl_hooks h;
        sl_hooks_init(&h, f.m.n_points, &err);
        h.knockout = off;
        for (int layer = 0; layer < f.m.c.n_layers; layer++)
            for (unsigned bits = 1; bits < 8; bits++) {
                memset(off, 0, (size_t)f.m.c.n_layers * sizeof *off);
                off[layer] = bits;
                snprintf(what, sizeof what, "layer %d ablation %s%s%s", layer, bits & SL_OFF_CONV ? "conv " : "",
                         bits & SL_OFF_SSM ? "ssm " : "", bits & SL_OFF_GATE ? "gate" : "");
                run_pair(&f, dm, po, &h, NULL, what, name);
            }
        sl_hooks_free(&h);
        free(off);
    }
    sl_backend_free(dm);
    close_fixture(&f);
}

/* Every fixture; returns how many there were. Each architecture must have
 * had several (Mamba-2's five: ngroups 1 to 4, headdim 4 to 64, D per
 * head and channel, both norms, dt_limit, no gated norm). */
static int parity_all(parity_open_fn open, double tol, int batch)
{
    parity_opts po = {open, tol, batch, {0}};
    int n = for_each_fixture("config.json", parity_fixture, &po);
    CHECK(po.per_arch[ARCH_MAMBA] >= 5 && po.per_arch[ARCH_TRANSFORMER] >= 5 && po.per_arch[ARCH_MAMBA2] >= 5,
          "fixtures run: %d Mamba, %d Transformer, %d Mamba-2", po.per_arch[ARCH_MAMBA], po.per_arch[ARCH_TRANSFORMER],
          po.per_arch[ARCH_MAMBA2]);
    return n;
}

#endif
