/* libFuzzer target: the .npy reader verify uses for the user's own logits
 * (core/logits_file.c): magic, version, header dict, dtype, shape, data.
 * Whatever is accepted must keep what the reader promises: at least one
 * logit, every one finite, and no more of them than the data could hold
 * (4 bytes each at the least). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/logits_file.h"

#ifndef FUZZ_ENTRY
#define FUZZ_ENTRY LLVMFuzzerTestOneInput
#endif

int FUZZ_ENTRY(const uint8_t *data, size_t size);
int FUZZ_ENTRY(const uint8_t *data, size_t size)
{
    sl_logits_file f;
    sl_error err = {0};
    if (sl_logits_npy_parse("fuzz.npy", data, size, &f, &err) == SL_OK) {
        if (f.n < 1 || !f.z || (size_t)f.n > size / 4) abort();
        for (long i = 0; i < f.n; i++)
            if (!isfinite(f.z[i])) abort();
    }
    sl_logits_file_free(&f);
    return 0;
}
