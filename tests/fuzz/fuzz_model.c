/* libFuzzer target: a whole model directory, so that the checks of tensors
 * against the config are reached. Input: 2 bytes (little-endian) giving the
 * length of config.json, its text, then model.safetensors. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "models/model.h"

#ifndef FUZZ_ENTRY
#define FUZZ_ENTRY LLVMFuzzerTestOneInput
#endif

static int fuzz_model_put(const char *path, const uint8_t *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(data, 1, size, f);
    return fclose(f) || w != size ? -1 : 0;
}

int FUZZ_ENTRY(const uint8_t *data, size_t size);
int FUZZ_ENTRY(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    size_t clen = (size_t)data[0] | (size_t)data[1] << 8;
    if (clen > size - 2) clen = size - 2;
    char dir[64], cfg[96], st[96];
    snprintf(dir, sizeof dir, "/tmp/seqlens-fuzz-model-%d", (int)getpid());
    snprintf(cfg, sizeof cfg, "%s/config.json", dir);
    snprintf(st, sizeof st, "%s/model.safetensors", dir);
    mkdir(dir, 0700);
    if (fuzz_model_put(cfg, data + 2, clen) || fuzz_model_put(st, data + 2 + clen, size - 2 - clen)) return 0;
    sl_model m;
    sl_error err = {0};
    sl_model_load(&m, dir, &err);
    sl_model_free(&m);
    return 0;
}
