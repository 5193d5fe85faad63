/* Every hook of every fixture model against PyTorch (tests/reference/, float64
 * reference rounded to float32): relative error max|a-b| / max|b| <= 1e-5.
 * Run through the library with every hook captured (materialised attention
 * pattern), without the pattern (streaming attention), on several threads
 * and batch sizes, and through the command line. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5_hl.h>

#include "core/dataset.h"
#include "models/run.h"
#include "tests/fixture_files.h"
#include "tests/testing.h"

#define TOL 1e-5

typedef struct {
    const sl_hook_point *p;
    int L, heads;
    size_t row;
    float *got; /* [N, row] */
} sink;

static size_t row_size(const sl_hook_point *p, int L, int heads)
{
    if (p->per_example) return (size_t)p->width;
    if (p->kind == HK_ATTN_PATTERN) return (size_t)heads * L * L;
    return (size_t)L * p->width;
}

static int grab(void *user, sl_hook_event *ev, sl_error *err)
{
    (void)err;
    sink *s = user;
    float *dst = s->got + (size_t)ev->example * s->row;
    if (s->p->per_example) {
        memcpy(dst, ev->data, (size_t)ev->cols * sizeof *dst);
        return SL_OK;
    }
    int width = s->p->kind == HK_ATTN_PATTERN ? s->L : ev->cols;
    for (int r = 0; r < ev->rows; r++) {
        int block = r / ev->len, t = r % ev->len;
        memcpy(dst + ((size_t)block * s->L + t) * width, ev->data + (size_t)r * ev->ld, (size_t)ev->cols * sizeof *dst);
    }
    return SL_OK;
}

/* Runs the fixture with the chosen hooks and compares each to expected.h5.
 * Returns the worst relative error. */
static double run_and_compare(const char *name, int with_pattern, int threads, int batch)
{
    char dir[512], data[600], expected[600];
    snprintf(dir, sizeof dir, FIXTURES "/%s", name);
    snprintf(data, sizeof data, "%s/data.h5", dir);
    snprintf(expected, sizeof expected, "%s/expected.h5", dir);
    sl_model m;
    sl_dataset ds;
    sl_error err = {0};
    int rc = sl_model_load(&m, dir, &err);
    CHECK(!rc, "%s: load: %s", name, err.msg);
    if (rc) return INFINITY;
    rc = sl_dataset_open(&ds, data, m.c.vocab_size, m.c.pad_token_id, &err);
    CHECK(!rc, "%s: data: %s", name, err.msg);
    if (rc) { sl_model_free(&m); return INFINITY; }

    sl_hooks hooks;
    sl_hooks_init(&hooks, m.n_points, &err);
    sink *sinks = calloc((size_t)m.n_points, sizeof *sinks);
    for (int i = 0; i < m.n_points; i++) {
        sinks[i] = (sink){&m.points[i], ds.L, m.c.n_heads, row_size(&m.points[i], ds.L, m.c.n_heads), NULL};
        sinks[i].got = calloc((size_t)ds.n * sinks[i].row, sizeof(float));
        if (m.points[i].kind != HK_ATTN_PATTERN || with_pattern) sl_hooks_add(&hooks, i, grab, &sinks[i], &err);
    }
    float *logits = calloc((size_t)ds.n, sizeof *logits);
    sl_run_opts o = {.count = ds.n, .batch = batch, .threads = threads};
    rc = sl_run(&m, &ds, &o, &hooks, NULL, NULL, NULL, logits, &err);
    CHECK(!rc, "%s: run: %s", name, err.msg);

    double worst = 0;
    for (int i = 0; !rc && i < m.n_points; i++) {
        if (m.points[i].kind == HK_ATTN_PATTERN && !with_pattern) continue;
        size_t n = (size_t)ds.n * sinks[i].row;
        /* embed.tokens is embed without an additive positional term */
        int additive_pos = m.c.arch == ARCH_TRANSFORMER && (m.c.positional == POS_LEARNED || m.c.positional == POS_SINUSOIDAL);
        if (m.points[i].kind == HK_EMBED_TOKENS && additive_pos) continue;
        float *want = read_floats(expected, m.points[i].kind == HK_EMBED_TOKENS ? "embed" : m.points[i].name, n);
        /* long fixtures leave their megabyte patterns out; short ones check them */
        if (!want && m.points[i].kind == HK_ATTN_PATTERN && ds.L > 64) continue;
        CHECK(want != NULL, "%s: expected.h5 has no %s of %zu floats", name, m.points[i].name, n);
        if (!want) continue;
        double e = rel_err(sinks[i].got, want, n);
        CHECK(e <= TOL, "%s: hook %s: relative error %.3g > %g (pattern %d, threads %d, batch %d)", name,
              m.points[i].name, e, TOL, with_pattern, threads, batch);
        if (e > worst) worst = e;
        free(want);
    }
    float *want = read_floats(expected, "logits", (size_t)ds.n);
    CHECK(want && rel_err(logits, want, (size_t)ds.n) <= TOL, "%s: returned logits differ from expected", name);
    free(want);
    for (int i = 0; i < m.n_points; i++) free(sinks[i].got);
    free(sinks);
    free(logits);
    sl_hooks_free(&hooks);
    sl_dataset_close(&ds);
    sl_model_free(&m);
    return worst;
}

/* The command line's capture file, compared hook by hook (f16 at its own
 * precision), and --reduce checked against the expected full tensors. */
static void cli_capture(const char *name, const char *seqlens)
{
    char cmd[2048], out[512], expected[512];
    snprintf(out, sizeof out, "build/tests/parity_%s.h5", name);
    snprintf(expected, sizeof expected, FIXTURES "/%s/expected.h5", name);
    const char *modes[][3] = {{"none", "f32", "1e-5"}, {"none", "f16", "2e-3"}};
    for (int k = 0; k < 2; k++) {
        snprintf(cmd, sizeof cmd, "%s capture " FIXTURES "/%s " FIXTURES "/%s/data.h5 --hook '*' 'blocks.*.*' 'blocks.*.*.*' "
                 "--reduce %s --dtype %s --threads 2 --batch 3 -o %s", seqlens, name, name, modes[k][0], modes[k][1], out);
        int status = system(cmd);
        CHECK(status == 0, "%s: `%s` exited %d", name, cmd, status);
        if (status) continue;
        hid_t f = H5Fopen(expected, H5F_ACC_RDONLY, H5P_DEFAULT), g = H5Fopen(out, H5F_ACC_RDONLY, H5P_DEFAULT);
        hsize_t count = 0;
        H5Gget_num_objs(f, &count);
        int compared = 0;
        for (hsize_t i = 0; i < count; i++) {
            char hook[128];
            H5Gget_objname_by_idx(f, i, hook, sizeof hook);
            hid_t d = H5Dopen2(f, hook, H5P_DEFAULT), s = H5Dget_space(d);
            size_t n = (size_t)H5Sget_simple_extent_npoints(s);
            hid_t t = H5Dget_type(d);
            int is_float = H5Tget_class(t) == H5T_FLOAT;
            H5Tclose(t);
            H5Sclose(s);
            H5Dclose(d);
            if (!is_float) continue;
            float *want = read_floats(expected, hook, n), *got = read_floats(out, hook, n);
            CHECK(got != NULL, "%s: %s lacks %s of %zu values", name, out, hook, n);
            if (got && want) {
                double e = rel_err(got, want, n);
                CHECK(e <= atof(modes[k][2]), "%s: capture --dtype %s: %s relative error %.3g", name, modes[k][1], hook, e);
                compared++;
            }
            free(want);
            free(got);
        }
        CHECK(compared > 8, "%s: only %d datasets compared", name, compared);
        H5Fclose(f);
        H5Fclose(g);
    }
    remove(out);
}

/* --reduce mean and last of one position hook, computed here from the
 * expected full tensor. */
static void cli_reduce(const char *name, const char *hook, const char *seqlens)
{
    char cmd[2048], out[512], expected[512];
    snprintf(out, sizeof out, "build/tests/reduce_%s.h5", name);
    snprintf(expected, sizeof expected, FIXTURES "/%s/expected.h5", name);
    hsize_t dims[3] = {0, 0, 0};
    hid_t f = H5Fopen(expected, H5F_ACC_RDONLY, H5P_DEFAULT);
    H5LTget_dataset_info(f, hook, dims, NULL, NULL);
    H5Fclose(f);
    int N = (int)dims[0], L = (int)dims[1], width = (int)dims[2];
    CHECK(N > 0 && L > 0 && width > 0, "%s: no [N, L, d] %s in expected.h5", name, hook);
    float *full = read_floats(expected, hook, (size_t)N * L * width);
    float *lens = read_floats(expected, "lengths", (size_t)N);
    CHECK(full && lens, "%s: cannot read %s and lengths", name, hook);
    for (int mode = 0; full && lens && mode < 2; mode++) {
        snprintf(cmd, sizeof cmd, "%s capture " FIXTURES "/%s " FIXTURES "/%s/data.h5 --hook %s --reduce %s -o %s", seqlens, name,
                 name, hook, mode ? "last" : "mean", out);
        int status = system(cmd);
        CHECK(status == 0, "%s: `%s` exited %d", name, cmd, status);
        float *got = read_floats(out, hook, (size_t)N * width);
        CHECK(got != NULL, "%s: --reduce %s wrote no [N, width] %s", name, mode ? "last" : "mean", hook);
        float *want = calloc((size_t)N * width, sizeof *want);
        for (int e = 0; e < N; e++) {
            int len = (int)lens[e];
            for (int k = 0; k < width; k++) {
                double acc = 0;
                for (int t = 0; t < len; t++) acc += full[((size_t)e * L + t) * width + k];
                want[e * width + k] = mode ? full[((size_t)e * L + len - 1) * width + k] : (float)(acc / len);
            }
        }
        if (got) CHECK(rel_err(got, want, (size_t)N * width) <= TOL, "%s: --reduce %s of %s", name, mode ? "last" : "mean", hook);
        free(got);
        free(want);
    }
    free(full);
    free(lens);
    remove(out);
}

/* --reduce mean|last of an attention pattern: over the valid query rows,
 * giving [N, H, L]. */
static void cli_reduce_pattern(const char *name, const char *seqlens)
{
    char cmd[2048], out[512], expected[512];
    const char *hook = "blocks.0.attn.pattern";
    snprintf(out, sizeof out, "build/tests/reduce_pattern_%s.h5", name);
    snprintf(expected, sizeof expected, FIXTURES "/%s/expected.h5", name);
    hsize_t dims[4] = {0, 0, 0, 0};
    hid_t f = H5Fopen(expected, H5F_ACC_RDONLY, H5P_DEFAULT);
    int present = H5LTfind_dataset(f, hook) && H5LTget_dataset_info(f, hook, dims, NULL, NULL) >= 0;
    H5Fclose(f);
    if (!present) return; /* Mamba, or a long fixture without the pattern */
    int N = (int)dims[0], H = (int)dims[1], L = (int)dims[2];
    float *full = read_floats(expected, hook, (size_t)N * H * L * L);
    float *lens = read_floats(expected, "lengths", (size_t)N);
    for (int mode = 0; full && lens && mode < 2; mode++) {
        snprintf(cmd, sizeof cmd, "%s capture " FIXTURES "/%s " FIXTURES "/%s/data.h5 --hook %s --reduce %s -o %s", seqlens, name,
                 name, hook, mode ? "last" : "mean", out);
        CHECK(system(cmd) == 0, "%s: `%s` failed", name, cmd);
        float *got = read_floats(out, hook, (size_t)N * H * L);
        CHECK(got != NULL, "%s: --reduce %s wrote no [N, H, L] pattern", name, mode ? "last" : "mean");
        float *want = calloc((size_t)N * H * L, sizeof *want);
        for (int e = 0; e < N; e++)
            for (int h = 0; h < H; h++) {
                int len = (int)lens[e];
                const float *p = full + ((size_t)e * H + h) * L * L;
                for (int j = 0; j < L; j++) {
                    double acc = 0;
                    for (int t = 0; t < len; t++) acc += p[(size_t)t * L + j];
                    want[((size_t)e * H + h) * L + j] = mode ? p[(size_t)(len - 1) * L + j] : (float)(acc / len);
                }
            }
        if (got) CHECK(rel_err(got, want, (size_t)N * H * L) <= TOL, "%s: pattern --reduce %s", name, mode ? "last" : "mean");
        free(got);
        free(want);
    }
    free(full);
    free(lens);
    remove(out);
}

typedef struct {
    const char *seqlens;
} parity_run;

static void parity_fixture(const char *name, const char *path, void *user)
{
    (void)path;
    const parity_run *r = user;
    double w1 = run_and_compare(name, 1, 1, 4);
    double w2 = run_and_compare(name, 0, 2, 3);
    double w3 = run_and_compare(name, 0, 2, 1);
    printf("%-32s worst relative error: pattern path %.2g, streaming %.2g / %.2g\n", name, w1, w2, w3);
    cli_capture(name, r->seqlens);
    cli_reduce(name, "blocks.1.resid_post", r->seqlens);
    cli_reduce_pattern(name, r->seqlens);
}

int main(void)
{
    sl_h5_quiet();
    parity_run r = {getenv("SEQLENS") ? getenv("SEQLENS") : "bin/seqlens"};
    CHECK(access(FIXTURES, R_OK) == 0, "cannot open " FIXTURES);
    /* model fixtures only: those with a config.json */
    int fixtures = for_each_fixture("config.json", parity_fixture, &r);
    CHECK(fixtures >= 10, "only %d fixtures", fixtures);
    return TEST_SUMMARY();
}
