/* libFuzzer target: the safetensors parser on arbitrary bytes, and every
 * tensor it accepts converted to float32.
 *
 * An input that starts with "SYN:" is instead a recipe for a well-formed
 * file that the rest of the input bends: how many entries (up to 4,096, so
 * that the sorted name and offset checks see many), names from a small
 * alphabet (so that repeats come up), each tensor's size, a gap or overlap
 * before it, padding or garbage after the JSON, bytes after the data, and
 * a header length that is off by a little or by gigabytes. Whatever the
 * parser accepts must then satisfy what it promises: distinct names that
 * st_find returns, byte ranges covering the data section exactly. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/safetensors.h"

#ifndef FUZZ_ENTRY
#define FUZZ_ENTRY LLVMFuzzerTestOneInput
#endif

typedef struct {
    const uint8_t *p;
    size_t n, at;
} st_fuzz_bytes;

static int st_fuzz_next(st_fuzz_bytes *b) { return b->at < b->n ? b->p[b->at++] : 0; }

/* Appends to a growing buffer; returns -1 when out of memory. */
static int st_fuzz_put(unsigned char **buf, size_t *len, size_t *cap, const void *src, size_t n)
{
    if (*len + n > *cap) {
        size_t c = (*cap ? *cap * 2 : 4096) + n;
        unsigned char *t = realloc(*buf, c);
        if (!t) return -1;
        *buf = t;
        *cap = c;
    }
    memcpy(*buf + *len, src, n);
    *len += n;
    return 0;
}

static unsigned char *st_fuzz_build(const uint8_t *data, size_t size, size_t *out_len)
{
    st_fuzz_bytes b = {data, size, 4};
    int count = st_fuzz_next(&b) | (st_fuzz_next(&b) & 0x0f) << 8, flags = st_fuzz_next(&b);
    unsigned char *hdr = NULL;
    size_t hl = 0, hc = 0, data_len = 0;
    char text[128];
    int rc = st_fuzz_put(&hdr, &hl, &hc, "{", 1);
    for (int i = 0; i < count && !rc; i++) {
        int name = st_fuzz_next(&b), elems = st_fuzz_next(&b) % 5, shift = st_fuzz_next(&b);
        const char *dtype = (shift & 3) == 0 ? "F16" : (shift & 3) == 1 ? "BF16" : "F32";
        size_t esize = (shift & 3) < 2 ? 2 : 4, begin = data_len;
        if (shift & 0x40) begin += (shift >> 2) & 7;                       /* a gap */
        if ((shift & 0x80) && begin) begin -= begin < 4 ? begin : 4;       /* an overlap */
        size_t end = begin + (size_t)elems * esize;
        int id = (i * 7 + name) % 4096; /* distinct for zero bytes; others may repeat a name */
        snprintf(text, sizeof text, "%s\"%c%c%c\":{\"dtype\":\"%s\",\"shape\":[%d],\"data_offsets\":[%zu,%zu]}",
                 i ? "," : "", 'a' + id % 16, 'a' + id / 16 % 16, 'a' + id / 256, dtype, elems, begin, end);
        rc = st_fuzz_put(&hdr, &hl, &hc, text, strlen(text));
        data_len = end > data_len ? end : data_len;
    }
    if (!rc) rc = st_fuzz_put(&hdr, &hl, &hc, "}", 1);
    int pad = flags & 7;
    for (int i = 0; i < pad && !rc; i++) rc = st_fuzz_put(&hdr, &hl, &hc, flags & 8 ? "x" : " ", 1);
    size_t extra = flags & 16 ? (size_t)(flags >> 5) + 1 : 0, total = 8 + hl + data_len + extra;
    uint64_t declared = hl;
    if (flags & 0x80) declared += (uint64_t)st_fuzz_next(&b) << (8 * (st_fuzz_next(&b) % 5)); /* wrong, maybe huge */
    unsigned char *img = rc ? NULL : calloc(total ? total : 1, 1);
    if (img) {
        for (int i = 0; i < 8; i++) img[i] = (unsigned char)(declared >> (8 * i));
        memcpy(img + 8, hdr, hl);
        for (size_t i = 8 + hl; i < total; i++) img[i] = (unsigned char)st_fuzz_next(&b);
    }
    free(hdr);
    *out_len = total;
    return img;
}

/* What an accepted file promises; a broken promise aborts, which libFuzzer
 * reports like a crash. */
static void st_fuzz_promises(const st_file *f)
{
    size_t covered = 0;
    for (int i = 0; i < f->n; i++) {
        const st_tensor *t = &f->tensors[i];
        if (st_find(f, t->name) != t || t->begin > t->end || t->end > f->data_len) abort();
        covered += t->end - t->begin;
    }
    if (covered != f->data_len) abort(); /* no overlap and no gap: exact cover */
}

int FUZZ_ENTRY(const uint8_t *data, size_t size);
int FUZZ_ENTRY(const uint8_t *data, size_t size)
{
    size_t len = size;
    unsigned char *bytes;
    if (size >= 4 && !memcmp(data, "SYN:", 4)) {
        bytes = st_fuzz_build(data, size, &len);
    } else {
        bytes = malloc(size ? size : 1);
        if (bytes) memcpy(bytes, data, size);
    }
    if (!bytes) return 0;
    st_file f;
    sl_error err = {0};
    if (st_parse(&f, "fuzz.safetensors", bytes, len, &err) == SL_OK) {
        st_fuzz_promises(&f);
        for (int i = 0; i < f.n; i++) {
            int64_t n = st_numel(&f.tensors[i]);
            float *out = n <= (1 << 20) ? malloc((size_t)(n ? n : 1) * sizeof *out) : NULL;
            if (out) st_to_f32(&f, &f.tensors[i], out);
            free(out);
        }
    }
    st_close(&f); /* the parser owns bytes, failed or not */
    return 0;
}
