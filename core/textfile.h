/* A text file read whole (config.json, result JSON): NUL-terminated. */
#ifndef SL_TEXTFILE_H
#define SL_TEXTFILE_H

#include <stddef.h>

#include "core/error.h"

/* *text receives the file's bytes and a terminating NUL (free it). A file
 * that is not a regular file (core/inputfile.h), cannot be opened or is
 * larger than max_bytes, or holds a NUL byte, is an input error
 * naming the path; what is it describes the file in that message
 * ("a model config"). */
int sl_read_text(const char *path, size_t max_bytes, const char *what, char **text, sl_error *err);

/* Where JSON text escapes a NUL character (\u0000), or len if it does not.
 * cJSON's strings end at a NUL, so "a\u0000b" would read as "a": a name or
 * key the writer never wrote. */
size_t sl_json_escaped_nul_at(const char *json, size_t len);

#endif
