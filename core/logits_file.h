/* A file of logits written by the user's own PyTorch code, for verify
 * (design.md section 2.3): one logit per example, as seqlens computes it.
 *   .npy          numpy's format, versions 1.0-3.0, little-endian float32 or
 *                 float64, C order, shape [n], [n, 1] or [n, 2]
 *   .h5, .hdf5    the dataset /logits, float, of the same shapes
 *   anything else text, one number a line
 * A [n, 2] file holds two-class outputs: the logit is z1 - z0, as seqlens
 * reads a [2, d] head. Only a regular file is read, and memory is bounded
 * by its real size: a header or shape that claims more than the file holds
 * is an input error. */
#ifndef SL_LOGITS_FILE_H
#define SL_LOGITS_FILE_H

#include <stddef.h>

#include "core/error.h"

typedef struct {
    double *z; /* [n] */
    long n;
} sl_logits_file;

/* Every value finite, n >= 1; free with sl_logits_file_free. */
int sl_logits_file_read(const char *path, sl_logits_file *out, sl_error *err);
void sl_logits_file_free(sl_logits_file *f);

/* The .npy parser alone, on bytes in memory (tests/fuzz/fuzz_npy.c fuzzes it). */
int sl_logits_npy_parse(const char *path, const unsigned char *bytes, size_t size, sl_logits_file *out, sl_error *err);

#endif
