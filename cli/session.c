#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/registry.h"
#include "core/dist.h"

static int open_backend(sl_session *s, const sl_args *a, const sl_backend_kind *k, int backward, sl_error *err)
{
    sl_backend_want want = {a->batch, s->data.L, backward};
    if (!(s->run.backend = k->open(&s->model, &want, err))) return err->code;
    const char *notice = k->notice ? k->notice() : NULL;
    if (notice && sl_dist_root()) fprintf(stderr, "seqlens: %s\n", notice);
    s->run.batch = s->run.backend->max_batch;
    return SL_OK;
}

int sl_session_open(sl_session *s, const sl_args *a, const char *model_dir, const char *data_path, sl_error *err)
{
    memset(s, 0, sizeof *s);
    s->data.file = s->data.tokens = s->data.of_position = -1;
    int rc = sl_model_load(&s->model, model_dir, err);
    /* a command that compares logits alone (verify) needs only DATA's /tokens */
    int (*open)(sl_dataset *, const char *, int, int, sl_error *) =
        sl_command_flags(a->cmd) & SL_CMD_TOKENS_ONLY ? sl_dataset_open_tokens : sl_dataset_open;
    if (!rc) rc = open(&s->data, data_path, s->model.c.vocab_size, s->model.c.pad_token_id, err);
    if (rc) return rc;
    long end = a->ex_end < 0 ? s->data.n : a->ex_end;
    if (a->ex_first >= s->data.n || end > s->data.n)
        return sl_fail(err, SL_EINPUT, "%s: --examples %ld:%ld is outside the %ld examples", data_path, a->ex_first,
                       end, s->data.n);
    s->run.first = s->selected_first = a->ex_first;
    s->run.count = end - a->ex_first;
    if (a->sample && a->sample < s->run.count) { /* from here on, the sample is the data */
        rc = sl_dataset_sample(&s->data, s->run.first, s->run.count, a->sample, a->seed, err);
        if (rc) return rc;
        s->run.first = 0;
        s->run.count = a->sample;
    }
    s->run.threads = a->threads;
    /* A command with a backward pass spends some 40 forward passes on each
     * example, and a batch ends when its last example does: at 4 a thread
     * the other thread waited about 2.7% of an IG run (200 x 2,048), at 16
     * about 1%. Its batch holds only tokens and per-token results. */
    int backward = !!(sl_command_flags(a->cmd) & SL_CMD_BACKWARD);
    s->run.batch = a->batch ? a->batch : (backward ? 16 : 4) * a->threads;
    /* batch buffers are sized from it: never more than the examples run */
    if (s->run.batch > s->run.count) s->run.batch = (int)s->run.count;
    /* --device NAME, or without one a device found (sl_backend_kind_auto) */
    const sl_backend_kind *k = !a->device ? sl_backend_kind_auto()
                             : strcmp(a->device, "cpu") ? sl_backend_kind_find(a->device) : NULL;
    if (k) return open_backend(s, a, k, backward, err);
    /* The CPU too: one backend for the command, as a device is, so that
     * every pass of a sweep (ablate, reverse-test, ...) reuses its
     * workspaces. Opened per pass (sl_run without one), each pass paid the
     * kernel's zeroing of about 3,500 fresh pages (the Mamba of bench/,
     * 8 x 2,048): 13% of the family sweep's time (bench/README.md). */
    if (!(s->run.backend = sl_backend_cpu(&s->model, s->run.threads, s->run.batch, s->data.L, err))) return err->code;
    return SL_OK;
}

int sl_session_need_both_classes(const sl_session *s, sl_error *err)
{
    const int32_t *y = s->data.labels + s->run.first;
    long pos = 0;
    for (long i = 0; i < s->run.count; i++) pos += y[i];
    if (pos == 0 || pos == s->run.count)
        return sl_fail(err, SL_EINPUT, "%s: every selected example has label %d: AUC is undefined", s->data.path, y[0]);
    return SL_OK;
}

void sl_session_json_sample(cJSON *j, const sl_session *s)
{
    if (!s->data.rows) return;
    if (!cJSON_HasObjectItem(j, "n")) cJSON_AddNumberToObject(j, "n", (double)s->data.n);
    cJSON_AddNumberToObject(j, "sampled_from", (double)s->data.sampled_from);
}

void sl_session_close(sl_session *s)
{
    sl_backend_free(s->run.backend);
    s->run.backend = NULL;
    sl_model_free(&s->model);
    sl_dataset_close(&s->data);
}

int sl_report(const sl_error *err)
{
    /* under MPI the ranks first agree who failed (sl_dist_settle) */
    if (sl_dist_stash(err)) return err->code ? err->code : SL_ERUNTIME;
    fprintf(stderr, "seqlens: %s\n", err->msg);
    return err->code ? err->code : SL_ERUNTIME;
}

int sl_usage(const char *text, int asked)
{
    if (!sl_dist_root()) return asked ? 0 : SL_EINPUT; /* said once, by rank 0 */
    if (asked) {
        fputs(text, stdout);
        return 0;
    }
    /* an error is one line: the synopsis */
    fprintf(stderr, "seqlens: %.*s\n", (int)strcspn(text, "\n"), text);
    return SL_EINPUT;
}
