/* compare and linear CKA: CKA against numpy on a small case and its
 * invariances; a model compared with itself; symmetry; the prediction
 * statistics recomputed from each model's logits; Mamba-2 against Mamba-1
 * and a Transformer, its CKA rebuilt from resid_post read by a hook. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/cka.h"
#include "core/metrics.h"
#include "probes/compare.h"
#include "tests/testing.h"

static void cka_cases(void)
{
    /* numpy: ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F) = 0.3397712432574912 */
    const float X[21] = {-0.8019314408302307f, -1.3243589401245117f, -0.24836161732673645f, 0.4204452335834503f,
                         1.1360465288162231f, 0.10970640182495117f, -0.5526472926139832f, -0.7847803831100464f,
                         0.7487457990646362f, 1.6347830295562744f, 0.2727687656879425f, -1.2333287000656128f,
                         -0.9582651853561401f, 1.600019097328186f, 0.20288243889808655f, -1.7321348190307617f,
                         -0.08369619399309158f, -1.1632260084152222f, -0.6292880773544312f, -0.4880058169364929f,
                         -0.7133134007453918f};
    const float Y[14] = {0.002377692610025406f, -0.5742266178131104f, -0.4324931800365448f, -0.3861161172389984f,
                         0.788446843624115f, -1.5357611179351807f, -0.4317779541015625f, 1.5110291242599487f,
                         -1.5031167268753052f, -0.16312360763549805f, -2.5521066188812256f, 2.098588705062866f,
                         -1.2072104215621948f, 1.596932291984558f};
    CHECK(fabs(sl_linear_cka(X, 3, Y, 2, 7) - 0.3397712432574912) < 1e-7, "CKA %.12f vs numpy 0.3397712433",
          sl_linear_cka(X, 3, Y, 2, 7));
    CHECK(fabs(sl_linear_cka(X, 3, X, 3, 7) - 1) < 1e-12, "CKA(X, X) = %.15f", sl_linear_cka(X, 3, X, 3, 7));
    /* a rotation by 0.7 rad in the first two columns, scaled by 3, plus a shift */
    float R[21];
    double c = cos(0.7), s = sin(0.7);
    for (int i = 0; i < 7; i++) {
        R[i * 3] = (float)(3 * (c * X[i * 3] - s * X[i * 3 + 1]) + 5);
        R[i * 3 + 1] = (float)(3 * (s * X[i * 3] + c * X[i * 3 + 1]));
        R[i * 3 + 2] = 3 * X[i * 3 + 2] - 1;
    }
    CHECK(fabs(sl_linear_cka(X, 3, R, 3, 7) - 1) < 1e-6, "CKA under rotation, scale and shift: %.9f",
          sl_linear_cka(X, 3, R, 3, 7));
    const float flat[7] = {1, 1, 1, 1, 1, 1, 1};
    CHECK(isnan(sl_linear_cka(X, 3, flat, 1, 7)), "CKA with a constant side must be NaN");
}

typedef struct {
    sl_model m;
    sl_dataset ds;
} opened;

static int open_pair(opened *o, const char *model, const char *data)
{
    sl_error err = {0};
    int rc = sl_model_load(&o->m, model, &err);
    if (!rc) rc = sl_dataset_open(&o->ds, data, o->m.c.vocab_size, o->m.c.pad_token_id, &err);
    CHECK(!rc, "%s: %s", model, err.msg);
    return rc;
}

/* Each example's resid_post of every layer averaged over its valid
 * positions: [layer][example][d], what compare's CKA reads. */
typedef struct {
    int d, nl;
    long n;
    float *mean;
} layer_means;

static int add_mean(void *user, sl_hook_event *ev, sl_error *err)
{
    (void)err;
    layer_means *lm = user;
    float *dst = lm->mean + ((size_t)ev->point->layer * lm->n + ev->example) * lm->d;
    for (int k = 0; k < lm->d; k++) {
        double s = 0;
        for (int t = 0; t < ev->len; t++) s += ev->data[(long)t * ev->ld + k];
        dst[k] = (float)(s / ev->len);
    }
    return SL_OK;
}

static float *resid_means(opened *x, const sl_run_opts *o)
{
    layer_means lm = {x->m.c.d_model, x->m.c.n_layers, x->ds.n, NULL};
    lm.mean = calloc((size_t)lm.nl * lm.n * lm.d, sizeof *lm.mean);
    sl_hooks h = {0};
    sl_error err = {0};
    int rc = sl_hooks_init(&h, x->m.n_points, &err);
    for (int i = 0; !rc && i < lm.nl; i++) rc = sl_hooks_add(&h, sl_model_point(&x->m, HK_RESID_POST, i), add_mean, &lm, &err);
    if (!rc) rc = sl_run(&x->m, &x->ds, o, &h, NULL, NULL, NULL, NULL, &err);
    CHECK(!rc, "resid_post means: %s", err.msg);
    sl_hooks_free(&h);
    return lm.mean;
}

/* compare of a Mamba-2 against a Mamba-1 and a Transformer on the same data:
 * a layers_a x layers_b CKA table equal to CKA of the resid_post means read
 * by a hook, and the Mamba-2 against itself: r 1, CKA 1 on the diagonal. */
static void mamba2_against_others(void)
{
    const char *data = "tests/fixtures/mamba2_g1_h8_mean_f32/data.h5";
    const char *others[] = {"tests/fixtures/mamba_mean_f32", "tests/fixtures/tf_pre_relu_learned"};
    opened a;
    if (open_pair(&a, "tests/fixtures/mamba2_g1_h8_mean_f32", data)) return;
    CHECK(a.m.c.arch == ARCH_MAMBA2, "the fixture is not a mamba2");
    sl_run_opts o = {.count = a.ds.n, .batch = 3, .threads = 2};
    sl_error err = {0};
    sl_compare_result self;
    CHECK(!sl_compare(&a.m, &a.ds, &a.m, &a.ds, &o, &o, &self, &err), "mamba2 self: %s", err.msg);
    CHECK(self.pearson_r > 1 - 1e-12 && self.agreement == 1, "mamba2 against itself: r %.15f", self.pearson_r);
    for (int i = 0; i < self.layers_a; i++)
        CHECK(fabs(self.cka_layers[i * self.layers_b + i] - 1) < 1e-9, "mamba2 self CKA of layer %d: %.12f", i,
              self.cka_layers[i * self.layers_b + i]);
    sl_compare_free(&self);
    float *ma = resid_means(&a, &o);
    for (size_t k = 0; k < sizeof others / sizeof *others; k++) {
        opened b;
        if (open_pair(&b, others[k], data)) continue;
        sl_compare_result r;
        int rc = sl_compare(&a.m, &a.ds, &b.m, &b.ds, &o, &o, &r, &err);
        CHECK(!rc, "mamba2 against %s: %s", others[k], err.msg);
        if (!rc) {
            CHECK(r.layers_a == a.m.c.n_layers && r.layers_b == b.m.c.n_layers, "%s: CKA table %d x %d", others[k],
                  r.layers_a, r.layers_b);
            float *mb = resid_means(&b, &o);
            long n = a.ds.n;
            for (int i = 0; i < r.layers_a; i++)
                for (int j = 0; j < r.layers_b; j++) {
                    double want = sl_linear_cka(ma + (size_t)i * n * a.m.c.d_model, a.m.c.d_model,
                                                mb + (size_t)j * n * b.m.c.d_model, b.m.c.d_model, n);
                    double got = r.cka_layers[i * r.layers_b + j];
                    CHECK(isfinite(got) && got >= 0 && got <= 1 + 1e-9 && fabs(got - want) < 1e-6,
                          "mamba2 against %s: CKA[%d][%d] %.9f, from the hook's means %.9f", others[k], i, j, got, want);
                }
            CHECK(isfinite(r.cka_pooled) && isfinite(r.pearson_r), "%s: pooled CKA %g, r %g", others[k], r.cka_pooled,
                  r.pearson_r);
            free(mb);
            sl_compare_free(&r);
        }
        sl_dataset_close(&b.ds);
        sl_model_free(&b.m);
    }
    free(ma);
    sl_dataset_close(&a.ds);
    sl_model_free(&a.m);
}

int main(void)
{
    sl_h5_quiet();
    cka_cases();
    mamba2_against_others();
    const char *data = "tests/trained/count_test.h5";
    opened a, b;
    if (open_pair(&a, "tests/trained/tf_count", data) || open_pair(&b, "tests/trained/mamba_count", data))
        return TEST_SUMMARY();
    sl_run_opts o = {.count = a.ds.n, .batch = 16, .threads = 2};
    sl_error err = {0};
    sl_compare_result self, ab, ba;
    CHECK(!sl_compare(&a.m, &a.ds, &a.m, &a.ds, &o, &o, &self, &err), "%s", err.msg);
    CHECK(self.pearson_r > 1 - 1e-12 && self.agreement == 1 && self.auc_a == self.auc_b && self.auc_ensemble == self.auc_a,
          "a model against itself: r %.15f, agreement %g", self.pearson_r, self.agreement);
    for (int i = 0; i < self.layers_a; i++)
        CHECK(fabs(self.cka_layers[i * self.layers_b + i] - 1) < 1e-9, "self CKA of layer %d: %.12f", i,
              self.cka_layers[i * self.layers_b + i]);
    CHECK(!sl_compare(&a.m, &a.ds, &b.m, &b.ds, &o, &o, &ab, &err) && !sl_compare(&b.m, &b.ds, &a.m, &a.ds, &o, &o, &ba, &err),
          "%s", err.msg);
    CHECK(ab.pearson_r == ba.pearson_r && ab.auc_ensemble == ba.auc_ensemble && ab.error_overlap == ba.error_overlap,
          "compare is not symmetric");
    for (int i = 0; i < ab.layers_a; i++)
        for (int j = 0; j < ab.layers_b; j++)
            CHECK(fabs(ab.cka_layers[i * ab.layers_b + j] - ba.cka_layers[j * ba.layers_b + i]) < 1e-12,
                  "CKA[%d][%d] is not the transpose", i, j);
    /* the prediction statistics, recomputed from each model's own logits */
    long n = a.ds.n, same = 0, both = 0, either = 0;
    float *la = malloc((size_t)n * sizeof *la), *lb = malloc((size_t)n * sizeof *lb), *ens = malloc((size_t)n * sizeof *ens);
    sl_run(&a.m, &a.ds, &o, NULL, NULL, NULL, NULL, la, &err);
    sl_run(&b.m, &b.ds, &o, NULL, NULL, NULL, NULL, lb, &err);
    for (long i = 0; i < n; i++) {
        int ya = la[i] > 0, yb = lb[i] > 0, y = a.ds.labels[i];
        same += ya == yb;
        both += ya != y && yb != y;
        either += ya != y || yb != y;
        ens[i] = (float)((1 / (1 + exp(-(double)la[i])) + 1 / (1 + exp(-(double)lb[i]))) / 2);
    }
    CHECK(ab.agreement == (double)same / n && ab.error_overlap == (double)both / either, "agreement %g / %g, overlap %g / %g",
          ab.agreement, (double)same / n, ab.error_overlap, (double)both / either);
    CHECK(fabs(ab.auc_ensemble - sl_auc(ens, a.ds.labels, n)) < 1e-12, "ensemble AUC");
    CHECK(ab.cka_pooled > 0.5 && ab.cka_pooled < 1, "two count models: pooled CKA %.4f", ab.cka_pooled);
    printf("tf_count vs mamba_count: r %.4f, agreement %.4f, overlap %.4f, ensemble AUC %.4f, pooled CKA %.4f\n",
           ab.pearson_r, ab.agreement, ab.error_overlap, ab.auc_ensemble, ab.cka_pooled);
    free(la);
    free(lb);
    free(ens);
    sl_compare_free(&self);
    sl_compare_free(&ab);
    sl_compare_free(&ba);
    sl_dataset_close(&a.ds);
    sl_dataset_close(&b.ds);
    sl_model_free(&a.m);
    sl_model_free(&b.m);
    return TEST_SUMMARY();
}
