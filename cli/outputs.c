#include "cli/outputs.h"

#include <string.h>
#include <sys/stat.h>

#include "cli/registry.h"
#include "core/outpath.h"

/* The page a directory command writes into an existing dir: report and
 * analyze report.html, summarize summary.{html,json,csv}, each beside
 * figures/. A directory or FIFO standing at one of those names is refused
 * now, as for -o FILE, not found by the rename at the end (a FIFO was
 * silently replaced, a directory failed the run after all its work). */
static int page_outputs(const char *cmd, const char *dir, sl_error *err)
{
    static const char *const REPORT[] = {"report.html", NULL}, *const SUMMARY[] = {"summary.html", "summary.json",
                                                                                    "summary.csv", NULL};
    char path[4200];
    struct stat st;
    snprintf(path, sizeof path, "%s/figures", dir);
    if (!stat(path, &st) && !S_ISDIR(st.st_mode))
        return sl_fail(err, SL_EINPUT, "%s: exists and is not a directory (the figures go there)", path);
    for (const char *const *f = strcmp(cmd, "summarize") ? REPORT : SUMMARY; *f; f++) {
        snprintf(path, sizeof path, "%s/%s", dir, *f);
        if (!stat(path, &st) && S_ISDIR(st.st_mode))
            return sl_fail(err, SL_EINPUT, "%s: is a directory; seqlens %s writes its page there", path, cmd);
        if (!stat(path, &st) && !S_ISREG(st.st_mode))
            return sl_fail(err, SL_EINPUT, "%s: exists and is not a regular file; refusing to replace it", path);
    }
    return SL_OK;
}

int sl_args_check_outputs(const sl_args *a, sl_error *err)
{
    const char *in[SL_MAX_POSITIONAL + 3];
    int n = 0;
    for (int i = 0; i < a->n_pos; i++) in[n++] = a->pos[i];
    if (a->pairs_file) in[n++] = a->pairs_file;
    if (a->logits_file) in[n++] = a->logits_file;
    if (a->base_logits) in[n++] = a->base_logits;
    unsigned flags = sl_command_flags(a->cmd);
    if (flags & SL_CMD_DIR_IN_OUT) {
        /* DIR holds the results read and the page written; a DIR that is
         * not there is report's to explain */
        struct stat st;
        if (a->n_pos != 1 || stat(a->pos[0], &st)) return SL_OK;
        int rc = sl_outdir_check(a->pos[0], NULL, 0, err);
        return rc ? rc : page_outputs(a->cmd, a->pos[0], err);
    }
    if (flags & SL_CMD_OUT_DIR) {
        if (a->out && !a->out[0]) return sl_fail(err, SL_EINPUT, "seqlens %s: -o '': an empty output directory name", a->cmd);
        struct stat st;
        if (!a->out) return SL_OK;
        int rc = sl_outdir_check(a->out, in, n, err);
        return rc || stat(a->out, &st) ? rc : page_outputs(a->cmd, a->out, err);
    }
    const char *files[3] = {a->out, a->scores_out, a->tokens_out}, *names[3] = {"-o", "--scores", "--tokens"};
    if (a->out && !strcmp(a->out, "-") && !(flags & SL_CMD_OUT_H5)) files[0] = NULL;
    for (int i = 0; i < 3; i++) {
        if (!files[i]) continue;
        if (!files[i][0]) return sl_fail(err, SL_EINPUT, "seqlens %s: %s '': an empty output file name", a->cmd, names[i]);
        for (int k = 0; k < i; k++)
            if (files[k] && !strcmp(files[k], files[i]))
                return sl_fail(err, SL_EINPUT, "seqlens %s: %s is named as two outputs", a->cmd, files[i]);
        int rc = sl_outpath_check(files[i], in, n, err);
        if (rc) return rc;
    }
    return SL_OK;
}
