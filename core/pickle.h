/* The pickle inside a torch.save archive (data.pkl), read by a restricted
 * virtual machine that knows only what a state_dict needs: the opcodes
 * torch.save's pickler emits for one (protocol 2, and the framing and
 * memo opcodes of protocols 4-5), and the globals collections.OrderedDict,
 * torch._utils._rebuild_tensor_v2 / _rebuild_parameter(_with_state) and the
 * float32 / float16 / bfloat16 storage types (or dtypes). Nothing is ever
 * imported or called: a global is a tag, a REDUCE a check of its arguments.
 * Any other opcode or global, a malformed argument, a memo index out of
 * range or nesting deeper than PK_MAX_DEPTH is an input error. Time and
 * memory are linear in the pickle's length. */
#ifndef SL_PICKLE_H
#define SL_PICKLE_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/safetensors.h"

#define PK_MAX_DEPTH 32

/* One state_dict entry: a view (offset, shape, strides in elements) of a
 * storage that the archive holds as data/<key>. */
typedef struct {
    char *name;
    char *key;
    int dtype;             /* ST_F32, ST_F16 or ST_BF16 */
    int64_t storage_numel; /* elements the pickle says the storage holds */
    int64_t offset;
    int ndim;
    int64_t shape[ST_MAX_DIMS], stride[ST_MAX_DIMS];
} pk_tensor;

typedef struct {
    pk_tensor *t;
    int n;
} pk_state_dict;

/* Runs the pickle bytes[0, len); the result must be a dict (or
 * OrderedDict) of string keys to tensors, or a dict with exactly one such
 * entry (a training checkpoint: {"epoch": 3, "model_state_dict": {...},
 * "optimizer_state_dict": {...}}), which is then the state_dict. what names the pickle in messages
 * ("model.pt: data.pkl"). On failure *out is empty; pk_free it either way. */
int pk_load_state_dict(const unsigned char *bytes, size_t len, const char *what, pk_state_dict *out, sl_error *err);
void pk_free(pk_state_dict *sd);

#endif
