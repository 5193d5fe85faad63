/* Which file of a model directory holds its weights (design.md 2.0):
 * model.safetensors, pytorch_model.bin, or one *.pt / *.pth, and exactly
 * one of these; all of them read into an st_file. */
#ifndef SL_WEIGHTS_H
#define SL_WEIGHTS_H

#include <stddef.h>

#include "core/error.h"
#include "core/safetensors.h"

/* Sets path (size bytes) to model_dir's weights file. None, or several
 * (a model.safetensors beside a .pt, two .pt files), is an input error
 * listing what was found. */
int sl_weights_find(const char *model_dir, char *path, size_t size, sl_error *err);
/* Reads path with the reader its name calls for: .safetensors as
 * safetensors, anything else as a torch.save archive. */
int sl_weights_read(st_file *f, const char *path, sl_error *err);
/* Both: f->path names the file used. */
int sl_weights_open(st_file *f, const char *model_dir, sl_error *err);

#endif
