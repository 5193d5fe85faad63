/* Synthetic event streams with a planted rule, in the dataset format of
 * design.md section 3, so that the tools can be checked against a known
 * truth: which family carries the signal, whether order matters, and the
 * best AUC any model can reach. */
#ifndef SL_GYM_H
#define SL_GYM_H

#include <stdint.h>

#include "core/error.h"

enum { GYM_COUNT, GYM_ORDER, GYM_DISTANT, GYM_RECALL, GYM_TASKS };

typedef struct {
    int task;
    long n;
    int len;
    uint64_t seed;
    double noise; /* probability that an observed label is flipped */
} sl_gym_opts;

typedef struct {
    const char *signal_family;
    int order_matters;
    double bayes_auc;
} sl_gym_truth;

int sl_gym_task(const char *name);
const char *sl_gym_task_name(int task);
/* The truth of a task, computed from its generative model. */
sl_gym_truth sl_gym_truth_of(const sl_gym_opts *o);
/* Writes the dataset to path (PATH.tmp renamed when complete). */
int sl_gym_write(const sl_gym_opts *o, const char *path, sl_error *err);

#define GYM_VOCAB 48

#endif
