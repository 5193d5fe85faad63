/* Reads a JSON fixture written by tests/reference/ (NULL when absent or not
 * JSON). */
#ifndef SL_JSON_FIXTURE_H
#define SL_JSON_FIXTURE_H

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>

static cJSON *read_json(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = n >= 0 ? malloc((size_t)n + 1) : NULL;
    size_t got = text ? fread(text, 1, (size_t)n, f) : 0;
    fclose(f);
    if (!text) return NULL;
    text[got] = 0;
    cJSON *j = cJSON_Parse(text);
    free(text);
    return j;
}

#endif
