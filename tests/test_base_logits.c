/* --base-logits (ablate --family, reverse-test; analyze hands them its eval
 * stage's scores.h5): eval's scores file read back holds the bits sl_run
 * gives; the family ablation and the reversal test given those logits
 * return exactly what they return with a pass of their own, and do use
 * them (a changed baseline changes the baseline AUC); every file that is
 * not eval's scores of these examples of this model is an input error
 * naming the file. */
#include <hdf5.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ablation/family.h"
#include "ablation/reverse.h"
#include "cli/commands.h"
#include "cli/registry.h"
#include "core/metrics.h"
#include "core/scores_file.h"
#include "tests/testing.h"

#define DIR "build/tests/base-logits"
#define MODEL "examples/mamba"
#define DATA "examples/data.h5"
#define FIRST 10
#define COUNT 80

/* seqlens eval MODEL DATA --examples A:B -o path, through its entry */
static int eval_to(const char *model, const char *range, const char *path)
{
    const sl_command *c = sl_command_find("eval");
    char *argv[] = {(char *)model, DATA, "--examples", (char *)range, "--threads", "2", "-o", (char *)path, NULL};
    FILE *keep = stdout;
    stdout = fopen("/dev/null", "w"); /* its JSON line */
    int rc = c ? c->run(8, argv) : -1;
    fclose(stdout);
    stdout = keep;
    return rc;
}

/* in place: an open session must not move (its backend holds its model's address) */
static int open_session(sl_session *s, const char *threads, const char *batch)
{
    sl_args a;
    sl_error err = {0};
    char range[32];
    snprintf(range, sizeof range, "%d:%d", FIRST, FIRST + COUNT);
    char *argv[] = {MODEL, DATA, "--examples", range, "--threads", (char *)threads, "--batch", (char *)batch};
    int rc = sl_parse_args(&a, "ablate", 8, argv, "--examples --threads --batch", &err);
    if (!rc) rc = sl_session_open(s, &a, MODEL, DATA, &err);
    CHECK(!rc, "session: %s", err.msg);
    return rc;
}

/* The scores file read back: sl_run's bits (another batch size and thread
 * count than eval's), and the model's first logit agrees. */
static void read_back(sl_session *s, const char *path, float *base)
{
    sl_error err = {0};
    float *run = malloc(COUNT * sizeof *run);
    int rc = sl_run(&s->model, &s->data, &s->run, NULL, NULL, NULL, NULL, run, &err);
    CHECK(!rc, "sl_run: %s", err.msg);
    rc = sl_scores_file_read(path, &s->data, FIRST, COUNT, base, &err);
    CHECK(!rc, "read %s: %s", path, err.msg);
    CHECK(!rc && !memcmp(run, base, COUNT * sizeof *run), "eval's logits read back are sl_run's bits");
    float *via = NULL;
    rc = sl_session_base_logits(s, path, &via, &err);
    CHECK(!rc && via && !memcmp(via, base, COUNT * sizeof *via), "sl_session_base_logits: %s",
          rc ? err.msg : "the same logits");
    free(via);
    free(run);
}

static int same_rows(const sl_ablation_result *a, const sl_ablation_result *b)
{
    if (a->n != b->n || a->n_rows != b->n_rows || memcmp(&a->baseline_auc, &b->baseline_auc, sizeof a->baseline_auc))
        return 0;
    for (int i = 0; i < a->n_rows; i++) {
        const sl_ablation_row *x = &a->rows[i], *y = &b->rows[i];
        if (x->family != y->family || x->has_ci != y->has_ci || memcmp(&x->auc, &y->auc, sizeof x->auc) ||
            memcmp(&x->delta_auc, &y->delta_auc, sizeof x->delta_auc) || memcmp(x->ci95, y->ci95, sizeof x->ci95) ||
            memcmp(&x->p_value, &y->p_value, sizeof x->p_value) ||
            memcmp(&x->masked_fraction, &y->masked_fraction, sizeof x->masked_fraction))
            return 0;
    }
    return 1;
}

/* Every family in mean and skip mode, with and without the baseline. */
static void families(sl_session *s, const float *base)
{
    int F = s->data.n_families, all[16];
    for (int f = 0; f < F; f++) all[f] = f;
    float *la = malloc((size_t)F * COUNT * sizeof *la), *lb = malloc((size_t)F * COUNT * sizeof *lb);
    sl_error err = {0};
    for (int mode = FAM_MEAN; mode <= FAM_SKIP; mode += FAM_SKIP - FAM_MEAN) {
        sl_ablation_result a = {0}, b = {0};
        sl_family_opts own = {mode, 7, 200, NULL}, given = {mode, 7, 200, base};
        int rc = sl_ablate_families(&s->model, &s->data, &s->run, all, F, &own, &a, la, &err);
        CHECK(!rc, "%s: %s", sl_family_mode_name(mode), err.msg);
        rc = sl_ablate_families(&s->model, &s->data, &s->run, all, F, &given, &b, lb, &err);
        CHECK(!rc, "%s, given the baseline: %s", sl_family_mode_name(mode), err.msg);
        CHECK(same_rows(&a, &b), "%s: the rows given the baseline differ from a pass of its own", sl_family_mode_name(mode));
        CHECK(!memcmp(la, lb, (size_t)F * COUNT * sizeof *la), "%s: ablated logits differ", sl_family_mode_name(mode));
        sl_ablation_result_free(&a);
        sl_ablation_result_free(&b);
    }
    /* a baseline that is not the model's shows: it is the one scored */
    float shifted[COUNT];
    const int32_t *y = s->data.labels + FIRST;
    for (int i = 0; i < COUNT; i++) shifted[i] = base[i] + (y[i] ? -4.0f : 4.0f);
    sl_ablation_result r = {0};
    sl_family_opts fo = {FAM_MEAN, 7, 0, shifted};
    int rc = sl_ablate_families(&s->model, &s->data, &s->run, all, F, &fo, &r, NULL, &err);
    CHECK(!rc && r.baseline_auc == sl_auc(shifted, y, COUNT) && r.baseline_auc != sl_auc(base, y, COUNT),
          "the given baseline is the one scored: AUC %g (given %g, model %g)", r.baseline_auc, sl_auc(shifted, y, COUNT),
          sl_auc(base, y, COUNT));
    sl_ablation_result_free(&r);
    free(la);
    free(lb);
}

static void reversal(sl_session *s, const float *base)
{
    sl_reverse_result a, b;
    float la[3 * COUNT], lb[3 * COUNT];
    sl_error err = {0};
    int rc = sl_reverse_test(&s->model, &s->data, &s->run, 5, NULL, &a, la, &err);
    CHECK(!rc, "reverse: %s", err.msg);
    rc = sl_reverse_test(&s->model, &s->data, &s->run, 5, base, &b, lb, &err);
    CHECK(!rc, "reverse, given the original logits: %s", err.msg);
    CHECK(!memcmp(&a, &b, sizeof a) && !memcmp(la, lb, sizeof la), "reverse: the same result and logits either way");
    float shifted[COUNT];
    for (int i = 0; i < COUNT; i++) shifted[i] = base[i] + (float)(i % 7);
    rc = sl_reverse_test(&s->model, &s->data, &s->run, 5, shifted, &b, lb, &err);
    CHECK(!rc && b.pearson_r != a.pearson_r && !memcmp(lb, shifted, sizeof shifted),
          "reverse: the given original logits are the ones compared (r %g vs %g)", b.pearson_r, a.pearson_r);
}

/* A file like eval's with what `bad` says changed. */
enum { OK_FILE, SHORT_N, LABEL, LENGTH, NAN_LOGIT, INF_LOGIT, F64_LOGITS, NO_LOGITS, NO_LABELS, MATRIX, INT_LOGITS, N_BAD };
static const char *const BAD_NAMES[N_BAD] = {"ok",  "short", "label",  "length", "nan",   "inf",
                                             "f64", "nologits", "nolabels", "matrix", "intlogits"};
static const char *const NEEDLES[N_BAD] = {"",           "holds 79 examples", "has label", "has length",
                                           "is NaN",     "is infinite",       "32-bit",    "no dataset /logits",
                                           "no dataset /labels", "not a vector", "32-bit"};

static int put(hid_t f, const char *name, hid_t type, hid_t mem, int rank, hsize_t n, const void *v)
{
    hsize_t dims[2] = {n, 1};
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    hid_t d = H5Dcreate2(f, name, type, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int bad = sp < 0 || d < 0 || H5Dwrite(d, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) < 0;
    if (d >= 0) H5Dclose(d);
    if (sp >= 0) H5Sclose(sp);
    return bad;
}

static int write_bad(const char *path, int bad, const sl_dataset *ds, const float *base)
{
    hsize_t n = bad == SHORT_N ? COUNT - 1 : COUNT;
    float z[COUNT];
    double z64[COUNT];
    int32_t lab[COUNT], len[COUNT], zi[COUNT];
    for (int i = 0; i < COUNT; i++) {
        z[i] = base[i], z64[i] = base[i], zi[i] = (int32_t)base[i];
        lab[i] = ds->labels[FIRST + i], len[i] = ds->lengths[FIRST + i];
    }
    if (bad == LABEL) lab[33] = !lab[33];
    if (bad == LENGTH) len[50] = len[50] > 1 ? len[50] - 1 : 2;
    if (bad == NAN_LOGIT) z[41] = NAN;
    if (bad == INF_LOGIT) z[79] = -INFINITY;
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) return 1;
    int e = 0;
    if (bad == F64_LOGITS) e |= put(f, "logits", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, n, z64);
    else if (bad == INT_LOGITS) e |= put(f, "logits", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, n, zi);
    else if (bad != NO_LOGITS) e |= put(f, "logits", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, bad == MATRIX ? 2 : 1, n, z);
    if (bad != NO_LABELS) e |= put(f, "labels", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, n, lab);
    e |= put(f, "lengths", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, n, len);
    return H5Fclose(f) < 0 || e;
}

static void hostile_files(sl_session *s, const float *base)
{
    float got[COUNT];
    sl_error err = {0};
    for (int bad = 0; bad < N_BAD; bad++) {
        char path[256];
        snprintf(path, sizeof path, DIR "/%s.h5", BAD_NAMES[bad]);
        CHECK(!write_bad(path, bad, &s->data, base), "%s: cannot write", path);
        memset(&err, 0, sizeof err);
        int rc = sl_scores_file_read(path, &s->data, FIRST, COUNT, got, &err);
        if (bad == OK_FILE) {
            CHECK(!rc && !memcmp(got, base, sizeof got), "%s: read as written: %s", path, err.msg);
            continue;
        }
        CHECK(rc == SL_EINPUT && strstr(err.msg, path) && strstr(err.msg, NEEDLES[bad]),
              "%s: SL_EINPUT naming the file and '%s', got %d: %s", path, NEEDLES[bad], rc, err.msg);
    }
    /* the right file for other examples, or for the same ones of another model */
    static const struct {
        const char *path, *needle;
    } OTHER[] = {{DIR "/scores-11-91.h5", "not eval's scores of these examples"}, /* shifted by one */
                 {DIR "/transformer.h5", "not eval's scores of this model"},
                 {DIR, "is a directory"},
                 {DIR "/missing.h5", "missing.h5"},
                 {DATA, "no dataset /logits"},
                 {"tests/testing.h", "not an HDF5 file"}};
    CHECK(!eval_to(MODEL, "11:91", OTHER[0].path), "eval 11:91");
    CHECK(!eval_to("examples/transformer", "10:90", OTHER[1].path), "eval of the transformer");
    for (size_t k = 0; k < sizeof OTHER / sizeof *OTHER; k++) {
        memset(&err, 0, sizeof err);
        float *taken = NULL;
        int rc = sl_session_base_logits(s, OTHER[k].path, &taken, &err);
        CHECK(rc == SL_EINPUT && !taken && strstr(err.msg, OTHER[k].path) && strstr(err.msg, OTHER[k].needle),
              "%s: SL_EINPUT naming it and '%s', got %d: %s", OTHER[k].path, OTHER[k].needle, rc, err.msg);
        free(taken);
    }
}

int main(void)
{
    sl_h5_quiet();
    mkdir("build/tests", 0777);
    mkdir(DIR, 0777);
    char range[32];
    snprintf(range, sizeof range, "%d:%d", FIRST, FIRST + COUNT);
    CHECK(!eval_to(MODEL, range, DIR "/scores.h5"), "seqlens eval -o " DIR "/scores.h5");
    sl_session s;
    if (open_session(&s, "1", "3")) return TEST_SUMMARY();
    float base[COUNT];
    read_back(&s, DIR "/scores.h5", base);
    families(&s, base);
    reversal(&s, base);
    hostile_files(&s, base);
    sl_session_close(&s);
    return TEST_SUMMARY();
}
