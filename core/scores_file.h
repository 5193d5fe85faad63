/* The scores file `seqlens eval -o FILE` writes (/logits float32 [n],
 * /labels and /lengths int32 [n] of the examples it ran), read back as the
 * unablated logits of examples first..first+count-1 of a dataset: what
 * ablate --family, reverse-test and attribute take with --base-logits
 * instead of a pass of their own (analyze hands them its eval stage's
 * DIR/scores.h5).
 *
 * The file must say it holds exactly those examples: n == count, and each
 * example's label and length equal to the dataset's; the logits must be
 * stored as 32-bit floats (what eval computed, bit for bit: no conversion)
 * and every one finite. Anything else is SL_EINPUT naming the file. The
 * file's own shapes bound what is read: no dataset larger than count is
 * read at all. */
#ifndef SL_SCORES_FILE_H
#define SL_SCORES_FILE_H

#include "core/dataset.h"
#include "core/error.h"

/* logits receives count values. */
int sl_scores_file_read(const char *path, const sl_dataset *ds, long first, long count, float *logits, sl_error *err);
/* The same for a dataset narrowed to a sample (sl_dataset_sample) of the
 * examples selected_first.. that the file holds (ds->sampled_from of
 * them): logits receives ds->n values, the sample's, each checked against
 * its own row of the file. Without a sample: every example of ds. */
int sl_scores_file_read_sample(const char *path, const sl_dataset *ds, long selected_first, float *logits,
                               sl_error *err);

#endif
