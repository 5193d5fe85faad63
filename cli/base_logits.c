/* --base-logits FILE (ablate --family, reverse-test, attribute): the unablated logits
 * that `seqlens eval -o FILE` computed, instead of a pass of the command's
 * own. The CPU runs each example alone, so eval's logits are the bits the
 * command's own pass would give, and its results are the same. */
#include <math.h>
#include <stdlib.h>

#include "cli/commands.h"
#include "core/scores_file.h"

/* how far the file's logit of the example run again may be from the
 * model's (verify's default tolerance, relative): a device may round a
 * batch of one differently in the last bits, another model is far off */
#define SPOT_TOLERANCE 1e-4

int sl_session_base_logits(sl_session *s, const char *path, float **out, sl_error *err)
{
    *out = NULL;
    if (!path) return SL_OK;
    float *logits = malloc((size_t)s->run.count * sizeof *logits);
    if (!logits) return sl_fail(err, SL_ERUNTIME, "out of memory for %ld logits", s->run.count);
    /* a sample's examples are rows of eval's file of the whole selection */
    int rc = s->data.rows ? sl_scores_file_read_sample(path, &s->data, s->selected_first, logits, err)
                          : sl_scores_file_read(path, &s->data, s->run.first, s->run.count, logits, err);
    /* the file says it holds these examples; one of them run again says
     * that it holds this model's logits of them (1/count of a pass) */
    sl_run_opts one = s->run;
    one.count = 1;
    one.batch = 1;
    float z = 0;
    if (!rc) rc = sl_run(&s->model, &s->data, &one, NULL, NULL, NULL, NULL, &z, err);
    if (!rc && !(fabs((double)logits[0] - z) <= SPOT_TOLERANCE * fmax(1, fabs(z))))
        rc = sl_fail(err, SL_EINPUT, "%s: its logit of example %ld is %.9g, the model gives %.9g: not eval's scores of "
                                     "this model", path, s->run.first, logits[0], z);
    if (rc) free(logits);
    else *out = logits;
    return rc;
}
