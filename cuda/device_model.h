/* The model core on a device (cuda/device.h): the weights copied there
 * once, then whole batches run at a time, every projection one GEMM over
 * all the batch's rows and every other step one launch. Hooks are the CPU
 * core's (core/hooks.h): where a hook is registered, the activation is
 * copied to the host, each example's rows are handed to the hooks exactly
 * as sl_forward would, and the (possibly rewritten) block is copied back,
 * so capture, ablation and patching hooks work unchanged. The structural
 * switches of hooks->knockout are honoured. */
#ifndef SL_DEVICE_MODEL_H
#define SL_DEVICE_MODEL_H

#include <stdint.h>

#include "cuda/device.h"
#include "core/batch.h"
#include "models/backend.h"
#include "models/model.h"

typedef struct sl_dev_model sl_dev_model;

/* Copies m's weights to dev (the model takes over dev and closes it) for
 * batches of up to max_batch examples of up to L positions. Fails, naming
 * the limit, where a dimension exceeds what the kernels hold in registers
 * (d_state 64, Mamba-2's 128, d_head 128). */
sl_dev_model *sl_dev_model_new(const sl_model *m, const sl_device *dev, int max_batch, int L, sl_error *err);
void sl_dev_model_free(sl_dev_model *dm);

/* A batch size that keeps one batch's activations (and, with backward,
 * the backward pass's buffers) near budget bytes. */
int sl_dev_batch_for(const sl_config *c, int L, int backward, double budget);

/* The forward pass of a batch (b->keep may be NULL: every position
 * kept); hooks see sl_batch_index(b, slot) as the example. logits
 * receives b->count values. */
int sl_dev_forward(sl_dev_model *dm, const sl_batch *b, const sl_hooks *hooks, float *logits, sl_error *err);

/* Prefix reuse on the device (sl_backend_ops.variants): the batch runs
 * once, keeping the residual at every block's input and after the last
 * block, base receiving its logits; then each variant k restores one of
 * those, hands each example's rows to edit on the host (when edit is set),
 * runs again from its start block with its hooks, and writes its logits to
 * out + k * ld_out. */
int sl_dev_forward_variants(sl_dev_model *dm, const sl_batch *b, const sl_variant *v, int n, sl_variant_edit edit,
                            void *user, float *base, float *out, long ld_out, sl_error *err);

/* The embedding gradient along a path (sl_backend_ops.embed_gradient):
 * steps 0 is gradient x input, otherwise integrated gradients with that
 * many midpoint steps from the baseline (zeros, or the embedding of
 * pad_tokens [count][L]). attr [count][L] receives each valid position's
 * attribution (its row of the embedding-level attribution summed), logits
 * the logits (NULL: not computed, where the caller has them), base_logits
 * (steps > 0) the baseline's. */
int sl_dev_attribute(sl_dev_model *dm, const sl_batch *b, int steps, const int32_t *pad_tokens, int zero_baseline,
                     float *attr, float *logits, float *base_logits, sl_error *err);

/* The device model behind the backend interface (models/backend.h): the
 * backend takes over dm and frees it. What the command line reaches
 * through the registry as --device cuda (cuda/device_backend.c). */
sl_backend *sl_dev_backend(sl_dev_model *dm, sl_error *err);

#endif
