/* A validated, in-memory view of a .safetensors file: an 8-byte little-endian
 * header length, a JSON header naming each tensor's dtype, shape and byte
 * range, then the raw data. Validation follows the reference implementation
 * (huggingface/safetensors): header at most 100,000,000 bytes of UTF-8 JSON
 * with only whitespace after the object, and the tensors' byte ranges
 * covering the data section exactly, without gap or overlap. */
#ifndef SL_SAFETENSORS_H
#define SL_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

enum { ST_F32, ST_F16, ST_BF16 };
#define ST_MAX_DIMS 8

typedef struct {
    char *name;
    int dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    size_t begin, end; /* byte range within the data section */
    int used;          /* set by whoever consumes it, to find extras */
} st_tensor;

typedef struct {
    char *path;
    unsigned char *bytes; /* whole file */
    const unsigned char *data;
    size_t data_len;
    st_tensor *tensors;
    st_tensor **by_name; /* tensors sorted by name, for st_find */
    int n;
} st_file;

/* A regular file only (core/inputfile.h); the header length is checked
 * against the file's size before the rest is read. */
int st_open(st_file *f, const char *path, sl_error *err);
/* Parses an in-memory image (takes ownership of bytes); the fuzzer's entry. */
int st_parse(st_file *f, const char *path, unsigned char *bytes, size_t len,
             sl_error *err);
void st_close(st_file *f);

/* Builds f->by_name from f->tensors[0, n) (for st_find); a name that
 * appears twice is an input error. Other readers filling an st_file call it. */
int st_index(st_file *f, sl_error *err);
/* The offset of the first byte of s[0, len) that is not well-formed UTF-8,
 * or len. The header's JSON text (names 0) also refuses the control bytes
 * JSON does not allow raw; a tensor name from elsewhere (names 1) only NUL. */
size_t st_bad_text_at(const unsigned char *s, size_t len, int names);
st_tensor *st_find(const st_file *f, const char *name);
int64_t st_numel(const st_tensor *t);
const char *st_dtype_name(int dtype);
/* "[2, 8]": a shape for messages, cut to fit n bytes. */
void st_shape_text(char *buf, size_t n, int ndim, const int64_t *shape);
/* Converts to float32; out holds st_numel(t) floats. */
void st_to_f32(const st_file *f, const st_tensor *t, float *out);

#endif
