/* seqlens capture: hook activations streamed batch by batch into HDF5.
 * Under MPI every rank streams its shard into a file of its own, OUT.partR
 * (rank 0 straight into OUT), and rank 0 copies the other ranks' rows in:
 * one ordinary HDF5 file in the end, with the serial libhdf5 (see the
 * README for why not parallel HDF5 or a virtual dataset). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/registry.h"
#include "core/h5out.h"

static const char USAGE[] =
    "usage: seqlens capture MODEL DATA --hook PATTERN... -o acts.h5 [--reduce none|mean|last] [--dtype f32|f16]\n"
    "                       [--examples A:B] [--threads N] [--batch B] [--device cpu|cuda]\n"
    "  One float dataset per matched hook at the root of acts.h5, named by the hook, plus /logits, /labels\n"
    "  and /lengths. A pattern's `*` matches one name component: blocks.*.resid_post, blocks.0.mixer.*, *.\n"
    "  Positions >= an example's length are 0. --reduce mean|last keeps the mean or the last of the valid\n"
    "  positions (for attn.pattern: over query positions). See `seqlens info MODEL` for the hook points.\n";

/* Memory a batch's buffers may take before the batch is made smaller. */
#define BATCH_BYTES (256L << 20)

typedef struct {
    const sl_hook_point *point;
    int heads, L, reduce;
    size_t row;  /* floats per example in the output */
    float *buf;  /* [batch, row] */
    sl_h5set set;
} captured;

typedef struct {
    captured *c;
    int n;
    long first; /* dataset index of output row 0 */
    sl_h5out out;
    sl_h5set logits;
} capture_job;

static size_t out_row(const sl_hook_point *p, int heads, int L, int reduce)
{
    if (p->per_example) return (size_t)p->width;
    size_t keys = p->kind == HK_ATTN_PATTERN ? (size_t)L : (size_t)p->width;
    size_t rows = p->kind == HK_ATTN_PATTERN ? (size_t)heads * (reduce ? 1 : (size_t)L) : (reduce ? 1 : (size_t)L);
    return rows * keys;
}

/* Copies one example's activation into its slot: rows of `len` positions
 * (per head for the pattern) land at the start of the slot's L rows, or are
 * reduced to one row. */
static int on_hook(void *user, sl_hook_event *ev, sl_error *err)
{
    (void)err;
    captured *c = user;
    float *dst = c->buf + (size_t)ev->slot * c->row;
    if (c->point->per_example) {
        memcpy(dst, ev->data, (size_t)ev->cols * sizeof *dst);
        return SL_OK;
    }
    int blocks = c->point->kind == HK_ATTN_PATTERN ? c->heads : 1, len = ev->len, w = ev->cols;
    int width = c->point->kind == HK_ATTN_PATTERN ? c->L : w;
    for (int b = 0; b < blocks; b++) {
        const float *src = ev->data + (size_t)b * len * ev->ld;
        if (c->reduce == REDUCE_NONE) {
            for (int t = 0; t < len; t++)
                memcpy(dst + ((size_t)b * c->L + t) * width, src + (size_t)t * ev->ld, (size_t)w * sizeof *dst);
        } else if (c->reduce == REDUCE_LAST) {
            memcpy(dst + (size_t)b * width, src + (size_t)(len - 1) * ev->ld, (size_t)w * sizeof *dst);
        } else {
            float *o = dst + (size_t)b * width;
            for (int t = 0; t < len; t++)
                for (int k = 0; k < w; k++) o[k] += src[(size_t)t * ev->ld + k];
            for (int k = 0; k < w; k++) o[k] /= (float)len;
        }
    }
    return SL_OK;
}

static int before_batch(void *user, sl_batch *b, sl_error *err)
{
    (void)err;
    capture_job *j = user;
    for (int i = 0; i < j->n; i++) memset(j->c[i].buf, 0, (size_t)b->count * j->c[i].row * sizeof(float));
    return SL_OK;
}

static int after_batch(void *user, sl_batch *b, sl_error *err)
{
    capture_job *j = user;
    hsize_t row = (hsize_t)(b->first - j->first);
    int rc = sl_h5out_write(&j->out, &j->logits, row, (hsize_t)b->count, b->logits, err);
    for (int i = 0; !rc && i < j->n; i++)
        if (j->c[i].point->kind != HK_LOGITS)
            rc = sl_h5out_write(&j->out, &j->c[i].set, row, (hsize_t)b->count, j->c[i].buf, err);
    return rc;
}

/* Every hook point matched by some pattern, in the model's order; a pattern
 * that matches nothing is an error, since it is almost always a typo. */
static int resolve(const sl_model *m, const sl_args *a, int *chosen, int *n, sl_error *err)
{
    *n = 0;
    for (int p = 0; p < a->n_hooks; p++) {
        int hit = 0;
        for (int i = 0; i < m->n_points; i++) hit |= sl_hook_match(a->hooks[p], m->points[i].name);
        if (!hit)
            return sl_fail(err, SL_EINPUT, "--hook '%s' matches no hook point of %s (see seqlens info %s)", a->hooks[p],
                           a->pos[0], a->pos[0]);
    }
    for (int i = 0; i < m->n_points; i++)
        for (int p = 0; p < a->n_hooks; p++)
            if (sl_hook_match(a->hooks[p], m->points[i].name)) {
                chosen[(*n)++] = i;
                break;
            }
    return SL_OK;
}

static int create_sets(capture_job *j, const sl_session *s, const sl_args *a, sl_error *err)
{
    hsize_t n = (hsize_t)s->run.count, L = (hsize_t)s->data.L, H = (hsize_t)s->model.c.n_heads;
    int type = a->dtype_f16 ? H5OUT_F16 : H5OUT_F32, rc = SL_OK;
    for (int i = 0; !rc && i < j->n; i++) {
        captured *c = &j->c[i];
        const sl_hook_point *p = c->point;
        if (p->kind == HK_LOGITS) continue; /* the same dataset as /logits */
        hsize_t dims[4] = {n, 0, 0, 0};
        int rank;
        if (p->per_example) { dims[1] = (hsize_t)p->width; rank = 2; }
        else if (p->kind == HK_ATTN_PATTERN) { /* [N, H, L, L], or [N, H, L] reduced over queries */
            dims[1] = H;
            dims[2] = L;
            dims[3] = L;
            rank = a->reduce ? 3 : 4;
        } else if (a->reduce) { dims[1] = (hsize_t)p->width; rank = 2; }
        else { dims[1] = L; dims[2] = (hsize_t)p->width; rank = 3; }
        rc = sl_h5out_dataset(&j->out, &c->set, p->name, type, rank, dims, err);
    }
    if (!rc) rc = sl_h5out_dataset(&j->out, &j->logits, "logits", H5OUT_F32, 1, &n, err);
    return rc;
}

static int write_labels(capture_job *j, const sl_session *s, sl_error *err)
{
    hsize_t n = (hsize_t)s->run.count;
    sl_h5set set = {.ds = -1};
    int rc = sl_h5out_dataset(&j->out, &set, "labels", H5OUT_I32, 1, &n, err);
    if (!rc) rc = sl_h5out_write(&j->out, &set, 0, n, s->data.labels + s->run.first, err);
    sl_h5set_close(&set);
    if (!rc) rc = sl_h5out_dataset(&j->out, &set, "lengths", H5OUT_I32, 1, &n, err);
    if (!rc) rc = sl_h5out_write(&j->out, &set, 0, n, s->data.lengths + s->run.first, err);
    sl_h5set_close(&set);
    return rc;
}

static void part_path(char *p, size_t n, const char *out, int rank) { snprintf(p, n, "%s.part%d", out, rank); }

/* MPI: ranks > 0 close their part, rank 0 copies every part's shard into
 * its rows of OUT, and the parts are removed whatever happened. */
static int gather_parts(capture_job *j, const sl_session *s, const sl_args *a, int rc, sl_error *err)
{
    int me = sl_dist_rank();
    char part[4200];
    if (me) {
        for (int i = 0; i < j->n; i++) sl_h5set_close(&j->c[i].set);
        sl_h5set_close(&j->logits);
        if (!rc) rc = sl_h5out_commit(&j->out, err);
        else sl_h5out_abort(&j->out);
    }
    rc = sl_dist_agree(rc, err);
    for (int r = 1; !rc && !me && r < sl_dist_size(); r++) {
        long f, c;
        sl_dist_shard_of(r, 0, s->run.count, &f, &c);
        part_path(part, sizeof part, a->out, r);
        for (int i = 0; !rc && c && i < j->n; i++)
            if (j->c[i].point->kind != HK_LOGITS)
                rc = sl_h5out_copy_rows(&j->out, &j->c[i].set, part, (hsize_t)f, (hsize_t)c, err);
        if (!rc && c) rc = sl_h5out_copy_rows(&j->out, &j->logits, part, (hsize_t)f, (hsize_t)c, err);
    }
    rc = sl_dist_agree(rc, err); /* rank 0 has read every part */
    if (me) {
        part_path(part, sizeof part, a->out, me);
        unlink(part);
    }
    return rc;
}

static int run_capture(capture_job *j, sl_session *s, const sl_args *a, sl_error *err)
{
    const sl_model *m = &s->model;
    int *chosen = malloc((size_t)m->n_points * sizeof *chosen), n = 0;
    sl_hooks hooks = {0};
    if (!chosen) return sl_fail(err, SL_ERUNTIME, "out of memory");
    int rc = resolve(m, a, chosen, &n, err);
    if (!rc) rc = sl_hooks_init(&hooks, m->n_points, err);
    if (!rc && !(j->c = calloc((size_t)n, sizeof *j->c))) rc = sl_fail(err, SL_ERUNTIME, "out of memory");
    size_t per_example = 0;
    for (int i = 0; !rc && i < n; i++) {
        captured *c = &j->c[j->n++];
        c->set.ds = -1;
        c->point = &m->points[chosen[i]];
        c->heads = m->c.n_heads;
        c->L = s->data.L;
        c->reduce = a->reduce;
        c->row = out_row(c->point, c->heads, c->L, a->reduce);
        per_example += c->row * sizeof(float);
        rc = sl_hooks_add(&hooks, chosen[i], on_hook, c, err);
    }
    /* the batch shrinks so that its buffers stay within BATCH_BYTES */
    if (!a->batch && per_example * (size_t)s->run.batch > BATCH_BYTES) {
        long fit = BATCH_BYTES / (long)(per_example ? per_example : 1);
        s->run.batch = fit < 1 ? 1 : (int)fit;
    }
    for (int i = 0; !rc && i < j->n; i++) {
        size_t b = (size_t)(s->run.batch < s->run.count ? s->run.batch : s->run.count);
        if (!(j->c[i].buf = malloc(b * j->c[i].row * sizeof(float))))
            rc = sl_fail(err, SL_ERUNTIME, "out of memory for a batch of %zu x %zu floats%s", b, j->c[i].row,
                         b > 1 ? " (try --batch 1)" : "");
    }
    char part[4200];
    part_path(part, sizeof part, a->out, sl_dist_rank());
    if (!rc) rc = sl_h5out_create(&j->out, sl_dist_root() ? a->out : part, err);
    if (!rc) rc = create_sets(j, s, a, err);
    if (!rc) rc = sl_run(m, &s->data, &s->run, &hooks, before_batch, after_batch, j, NULL, err);
    if (!rc && sl_dist_root()) rc = write_labels(j, s, err);
    if (sl_dist_size() > 1) rc = gather_parts(j, s, a, rc, err);
    sl_hooks_free(&hooks);
    free(chosen);
    return rc;
}

static int cmd_capture(int argc, char **argv)
{
    sl_args a;
    sl_error err = {0};
    if (sl_parse_args(&a, "capture", argc, argv, "-o --hook --reduce --dtype --examples --threads --batch --device", &err))
        return sl_report(&err);
    if (a.help || a.n_pos != 2) return sl_usage(USAGE, a.help);
    if (!a.n_hooks) return sl_report(&(sl_error){SL_EINPUT, "seqlens capture: --hook PATTERN is required"});
    if (!a.out) return sl_report(&(sl_error){SL_EINPUT, "seqlens capture: -o OUT.h5 is required"});

    sl_session s;
    capture_job j = {0};
    j.out.file = -1;
    j.logits.ds = -1;
    int rc = sl_session_open(&s, &a, a.pos[0], a.pos[1], &err);
    j.first = s.run.first;
    if (!rc) rc = run_capture(&j, &s, &a, &err);
    for (int i = 0; i < j.n; i++) {
        sl_h5set_close(&j.c[i].set);
        free(j.c[i].buf);
    }
    sl_h5set_close(&j.logits);
    if (!rc) rc = sl_h5out_commit(&j.out, &err);
    else sl_h5out_abort(&j.out);
    free(j.c);
    sl_session_close(&s);
    return rc ? sl_report(&err) : 0;
}

static sl_command capture_command = {
    .name = "capture",
    .summary = "  capture MODEL DATA --hook PATTERN... -o acts.h5\n"
               "                              activations at hook points, streamed to HDF5\n",
    .order = 40,
    .flags = SL_CMD_SHARDED | SL_CMD_OUT_H5,
    .run = cmd_capture,
};
SL_REGISTER_COMMAND(capture_command)
