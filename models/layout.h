/* Which tensor of a weights file is which (design.md section 2.2): each
 * file name is given a seqlens name by layout (seqlens's own after `prefix`,
 * torch.nn.TransformerEncoder under any module path, mamba_ssm's MixerModel
 * with Mamba or Mamba2 layers, Hugging Face's MambaModel and Mamba2Model), by role outside the layers (the embedding, the
 * head, a positional table or sinusoidal buffer) or by config.json's
 * `names`; and every config key the shapes determine is read off them. */
#ifndef SL_LAYOUT_H
#define SL_LAYOUT_H

#include <stdint.h>

#include <cjson/cJSON.h>

#include "core/config.h"
#include "core/error.h"
#include "core/safetensors.h"

typedef struct {
    char *name;       /* seqlens name, NULL: no role claims the tensor */
    int computed;     /* a sinusoidal buffer equal to the table seqlens computes: read, not loaded */
    int ndim;         /* the shape seqlens reads it as ([1, L, d] buffers as [L, d]) */
    int64_t shape[4];
    const char *how;  /* how it was found, for `seqlens info` */
} sl_layout_entry;

typedef struct {
    sl_layout_entry *e; /* [f->n], in file order */
    int n;
    cJSON *facts, *facts_from; /* key -> value, key -> "tensor 'x' [shape]" */
} sl_layout;

int sl_layout_detect(sl_layout *L, const st_file *f, const sl_config_doc *d, sl_error *err);
void sl_layout_free(sl_layout *L);

#endif
