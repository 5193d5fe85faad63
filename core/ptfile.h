/* A state_dict saved with torch.save (its zip format, torch 1.6 and later:
 * ARCHIVE/data.pkl, ARCHIVE/data/KEY for each storage, ARCHIVE/byteorder)
 * read into the same st_file the safetensors reader fills: each tensor's
 * view (storage offset and strides honoured) copied contiguous into
 * f->bytes, named by its state_dict key. The pickle goes through the
 * restricted VM of core/pickle.h; the zip through libzip. Entries must be
 * stored uncompressed, as torch.save writes them, so that no entry can
 * expand beyond the file; all tensors together may take at most
 * PT_MAX_EXPANSION times the file's size (views of one storage repeated). */
#ifndef SL_PTFILE_H
#define SL_PTFILE_H

#include <stddef.h>

#include "core/error.h"
#include "core/safetensors.h"

#define PT_MAX_EXPANSION 4
#define PT_MAX_PICKLE (64u << 20)

/* A regular file only (core/inputfile.h). A legacy (pre-1.6) torch.save
 * file is an input error saying how to re-save it. */
int pt_open(st_file *f, const char *path, sl_error *err);
/* The same from an image in memory (not taken over); the fuzzer's entry. */
int pt_parse(st_file *f, const char *path, const unsigned char *bytes, size_t len, sl_error *err);

#endif
