/* A batch of examples read from a dataset, as the batch runner
 * (models/run.h) hands it to its callbacks and to a backend
 * (models/backend.h). */
#ifndef SL_BATCH_H
#define SL_BATCH_H

#include <stdint.h>

#include "core/error.h"

typedef struct {
    long first; /* dataset index of slot 0 */
    int count, L;
    int32_t *tokens;        /* [count, L]; `before` may rewrite them */
    uint8_t *keep;          /* [count, L] all 1 unless `before` clears some; NULL: all kept */
    const int32_t *lengths; /* [count] */
    const int32_t *labels;  /* [count] */
    float *logits;          /* [count], filled by the run */
    /* [count] each slot's dataset index, or NULL: first + slot (patching
     * pairs examples from anywhere); hooks and error lines name it */
    const long *index;
} sl_batch;

static inline long sl_batch_index(const sl_batch *b, int slot) { return b->index ? b->index[slot] : b->first + slot; }

typedef int (*sl_batch_fn)(void *user, sl_batch *b, sl_error *err);

#endif
