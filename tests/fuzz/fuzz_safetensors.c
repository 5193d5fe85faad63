/* libFuzzer target: the safetensors parser on arbitrary bytes, and every
 * tensor it accepts converted to float32. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/safetensors.h"

#ifndef FUZZ_ENTRY
#define FUZZ_ENTRY LLVMFuzzerTestOneInput
#endif

int FUZZ_ENTRY(const uint8_t *data, size_t size);
int FUZZ_ENTRY(const uint8_t *data, size_t size)
{
    unsigned char *bytes = malloc(size ? size : 1);
    if (!bytes) return 0;
    memcpy(bytes, data, size);
    st_file f;
    sl_error err = {0};
    if (st_parse(&f, "fuzz.safetensors", bytes, size, &err) == SL_OK) {
        for (int i = 0; i < f.n; i++) {
            int64_t n = st_numel(&f.tensors[i]);
            float *out = n <= (1 << 20) ? malloc((size_t)(n ? n : 1) * sizeof *out) : NULL;
            if (out) st_to_f32(&f, &f.tensors[i], out);
            free(out);
            st_find(&f, f.tensors[i].name);
        }
    }
    st_close(&f); /* the parser owns bytes, failed or not */
    return 0;
}
