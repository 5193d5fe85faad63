/* libFuzzer target: torch.save's format. An input that starts with "PK" is
 * a whole archive for pt_parse (zip container, byteorder, storages, views);
 * anything else is data.pkl for the restricted pickle VM alone. Whatever is
 * accepted must keep what the readers promise: names st_find returns, each
 * tensor's bytes inside the data, as many as its shape says. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/pickle.h"
#include "core/ptfile.h"

#ifndef FUZZ_ENTRY
#define FUZZ_ENTRY LLVMFuzzerTestOneInput
#endif

static void fuzz_pickle_archive(const uint8_t *data, size_t size)
{
    st_file f;
    sl_error err = {0};
    if (pt_parse(&f, "fuzz.pt", data, size, &err) == SL_OK) {
        for (int i = 0; i < f.n; i++) {
            const st_tensor *t = &f.tensors[i];
            size_t es = t->dtype == ST_F32 ? 4 : 2;
            if (st_find(&f, t->name) != t || t->begin > t->end || t->end > f.data_len
                || (uint64_t)st_numel(t) * es != t->end - t->begin)
                abort();
            int64_t n = st_numel(t);
            float *out = n <= (1 << 20) ? malloc((size_t)(n ? n : 1) * sizeof *out) : NULL;
            if (out) st_to_f32(&f, t, out);
            free(out);
        }
    }
    st_close(&f);
}

int FUZZ_ENTRY(const uint8_t *data, size_t size);
int FUZZ_ENTRY(const uint8_t *data, size_t size)
{
    if (size >= 2 && data[0] == 'P' && data[1] == 'K') {
        fuzz_pickle_archive(data, size);
        return 0;
    }
    pk_state_dict sd;
    sl_error err = {0};
    if (pk_load_state_dict(data, size, "fuzz: data.pkl", &sd, &err) == SL_OK) {
        for (int i = 0; i < sd.n; i++) {
            const pk_tensor *t = &sd.t[i];
            if (!t->name || !t->key || t->ndim < 0 || t->ndim > ST_MAX_DIMS || t->offset < 0 || t->storage_numel < 0)
                abort();
            for (int k = 0; k < t->ndim; k++)
                if (t->shape[k] < 0 || t->stride[k] < 0) abort();
        }
    }
    pk_free(&sd);
    return 0;
}
