/* libFuzzer target: config.json handling on arbitrary text. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"

#ifndef FUZZ_ENTRY
#define FUZZ_ENTRY LLVMFuzzerTestOneInput
#endif

int FUZZ_ENTRY(const uint8_t *data, size_t size);
int FUZZ_ENTRY(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = 0;
    sl_config c;
    sl_error err = {0};
    sl_config_parse(&c, "fuzz/config.json", text, &err);
    free(text);
    return 0;
}
