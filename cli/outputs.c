#include "cli/outputs.h"

#include <string.h>
#include <sys/stat.h>

#include "cli/registry.h"
#include "core/outpath.h"

int sl_args_check_outputs(const sl_args *a, sl_error *err)
{
    const char *in[SL_MAX_POSITIONAL + 2];
    int n = 0;
    for (int i = 0; i < a->n_pos; i++) in[n++] = a->pos[i];
    if (a->pairs_file) in[n++] = a->pairs_file;
    if (a->logits_file) in[n++] = a->logits_file;
    unsigned flags = sl_command_flags(a->cmd);
    if (flags & SL_CMD_DIR_IN_OUT) {
        /* DIR holds the results read and the page written; a DIR that is
         * not there is report's to explain */
        struct stat st;
        return a->n_pos == 1 && !stat(a->pos[0], &st) ? sl_outdir_check(a->pos[0], NULL, 0, err) : SL_OK;
    }
    if (flags & SL_CMD_OUT_DIR) return a->out ? sl_outdir_check(a->out, in, n, err) : SL_OK;
    const char *files[3] = {a->out, a->scores_out, a->tokens_out};
    if (a->out && !strcmp(a->out, "-") && !(flags & SL_CMD_OUT_H5)) files[0] = NULL;
    for (int i = 0; i < 3; i++) {
        if (!files[i]) continue;
        for (int k = 0; k < i; k++)
            if (files[k] && !strcmp(files[k], files[i]))
                return sl_fail(err, SL_EINPUT, "seqlens %s: %s is named as two outputs", a->cmd, files[i]);
        int rc = sl_outpath_check(files[i], in, n, err);
        if (rc) return rc;
    }
    return SL_OK;
}
