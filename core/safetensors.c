#include "core/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/inputfile.h"
#include "core/textfile.h"

/* The reference implementation's limit (huggingface/safetensors refuses a
 * longer header): a corrupt length never turns into a huge allocation. */
#define ST_MAX_HEADER 100000000u

static int dtype_from_name(const char *s, size_t *esize)
{
    if (!strcmp(s, "F32")) { *esize = 4; return ST_F32; }
    if (!strcmp(s, "F16")) { *esize = 2; return ST_F16; }
    if (!strcmp(s, "BF16")) { *esize = 2; return ST_BF16; }
    return -1;
}

const char *st_dtype_name(int dtype)
{
    return dtype == ST_F32 ? "F32" : dtype == ST_F16 ? "F16" : "BF16";
}

int64_t st_numel(const st_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

/* Data order, as the reference implementation sorts: by (begin, end). */
static int cmp_offsets(const void *a, const void *b)
{
    const st_tensor *x = *(st_tensor *const *)a, *y = *(st_tensor *const *)b;
    if (x->begin != y->begin) return (x->begin > y->begin) - (x->begin < y->begin);
    return (x->end > y->end) - (x->end < y->end);
}

/* Name order; ties (duplicates) by position in the header, so that the
 * message names the same entry whatever qsort does. */
static int cmp_names(const void *a, const void *b)
{
    const st_tensor *x = *(st_tensor *const *)a, *y = *(st_tensor *const *)b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x > y) - (x < y);
}

/* Reads one JSON number that must be a non-negative integer below limit. */
static int json_uint(const cJSON *v, double limit, uint64_t *out)
{
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (!(d >= 0) || d > limit || d != (double)(uint64_t)d) return -1;
    *out = (uint64_t)d;
    return 0;
}

static int parse_entry(st_file *f, const cJSON *item, st_tensor *t, sl_error *err)
{
    const char *p = f->path, *nm = item->string;
    if (!cJSON_IsObject(item))
        return sl_fail(err, SL_EINPUT, "%s: tensor '%s': header entry is not an object", p, nm);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(item, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    if (!cJSON_IsString(dt) || !cJSON_IsArray(sh) || !cJSON_IsArray(off))
        return sl_fail(err, SL_EINPUT, "%s: tensor '%s': header entry needs dtype, shape and data_offsets", p, nm);
    size_t esize;
    t->dtype = dtype_from_name(dt->valuestring, &esize);
    if (t->dtype < 0)
        return sl_fail(err, SL_EINPUT, "%s: tensor '%s': unsupported dtype %s (F32, F16 and BF16 are read)", p, nm, dt->valuestring);
    t->ndim = cJSON_GetArraySize(sh);
    if (t->ndim > ST_MAX_DIMS)
        return sl_fail(err, SL_EINPUT, "%s: tensor '%s': %d dimensions (at most %d)", p, nm, t->ndim, ST_MAX_DIMS);
    uint64_t numel = 1;
    int i = 0;
    for (const cJSON *v = sh->child; v; v = v->next, i++) {
        uint64_t d;
        if (json_uint(v, 9.0e15, &d))
            return sl_fail(err, SL_EINPUT, "%s: tensor '%s': shape entry %d is not a non-negative integer", p, nm, i);
        t->shape[i] = (int64_t)d;
        /* every partial product must fit, as st_numel forms them (the
         * reference implementation refuses an overflow even before a 0) */
        if (__builtin_mul_overflow(numel, d, &numel) || numel > (uint64_t)INT64_MAX)
            return sl_fail(err, SL_EINPUT, "%s: tensor '%s': the shape's element count overflows", p, nm);
    }
    uint64_t b, e;
    if (cJSON_GetArraySize(off) != 2 || json_uint(off->child, 9.0e15, &b)
        || json_uint(off->child->next, 9.0e15, &e) || b > e)
        return sl_fail(err, SL_EINPUT, "%s: tensor '%s': data_offsets must be [begin, end] with 0 <= begin <= end", p, nm);
    if (e > f->data_len)
        return sl_fail(err, SL_EINPUT, "%s: tensor '%s': data_offsets [%llu, %llu] run past the end of the data (%zu bytes)",
                       p, nm, (unsigned long long)b, (unsigned long long)e, f->data_len);
    uint64_t bytes;
    if (__builtin_mul_overflow(numel, (uint64_t)esize, &bytes) || e - b != bytes)
        return sl_fail(err, SL_EINPUT, "%s: tensor '%s': %llu bytes for %llu elements of %s", p, nm,
                       (unsigned long long)(e - b), (unsigned long long)numel, dt->valuestring);
    t->begin = b;
    t->end = e;
    t->name = strdup(nm);
    if (!t->name) return sl_fail(err, SL_ERUNTIME, "%s: out of memory", p);
    return SL_OK;
}

/* __metadata__ is a map of strings to strings, nothing else. */
static int check_metadata(const st_file *f, const cJSON *item, sl_error *err)
{
    int ok = cJSON_IsObject(item);
    for (const cJSON *v = ok ? item->child : NULL; v && ok; v = v->next) ok = cJSON_IsString(v);
    return ok ? SL_OK : sl_fail(err, SL_EINPUT, "%s: __metadata__ must map strings to strings", f->path);
}

size_t st_bad_text_at(const unsigned char *s, size_t len, int names)
{
    for (size_t i = 0; i < len;) {
        unsigned c = s[i];
        if (c < 0x80) {
            if (names ? c == 0 : c < 0x20 && c != '\t' && c != '\n' && c != '\r') return i;
            i++;
            continue;
        }
        size_t n = c >= 0xc2 && c <= 0xdf ? 1 : c >= 0xe0 && c <= 0xef ? 2 : c >= 0xf0 && c <= 0xf4 ? 3 : 0;
        if (!n || n > len - 1 - i) return i;
        unsigned c1 = s[i + 1];
        /* overlong forms, surrogates and code points past U+10FFFF */
        if ((c == 0xe0 && c1 < 0xa0) || (c == 0xed && c1 > 0x9f) || (c == 0xf0 && c1 < 0x90) || (c == 0xf4 && c1 > 0x8f))
            return i;
        for (size_t k = 1; k <= n; k++)
            if ((s[i + k] & 0xc0) != 0x80) return i;
        i += n + 1;
    }
    return len;
}

static int is_json_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* Every byte of the data section belongs to exactly one tensor, in order:
 * no overlap (one region read as two tensors), no gap, nothing after the
 * last tensor. This is the reference implementation's rule (its
 * InvalidOffset and MetadataIncompleteBuffer errors). */
static int check_coverage(st_file *f, sl_error *err)
{
    st_tensor **order = malloc((f->n ? (size_t)f->n : 1) * sizeof *order);
    if (!order) return sl_fail(err, SL_ERUNTIME, "%s: out of memory", f->path);
    for (int i = 0; i < f->n; i++) order[i] = &f->tensors[i];
    qsort(order, (size_t)f->n, sizeof *order, cmp_offsets);
    int rc = SL_OK;
    size_t at = 0;
    const st_tensor *last = NULL;
    for (int i = 0; i < f->n && !rc; i++) {
        const st_tensor *t = order[i];
        if (t->begin < at)
            rc = sl_fail(err, SL_EINPUT, "%s: tensors '%s' and '%s' overlap in the data section", f->path, last->name,
                         t->name);
        else if (t->begin > at)
            rc = sl_fail(err, SL_EINPUT, "%s: bytes [%zu, %zu) of the data section belong to no tensor (before '%s')",
                         f->path, at, t->begin, t->name);
        at = t->end;
        last = t;
    }
    if (!rc && at != f->data_len)
        rc = sl_fail(err, SL_EINPUT, "%s: %zu bytes after the last tensor's data (the data section is %zu bytes, its tensors end at %zu)",
                     f->path, f->data_len - at, f->data_len, at);
    free(order);
    return rc;
}

/* Sorted by name once: duplicates are neighbours, and st_find a binary
 * search, so that a header of many entries costs n log n, not n^2. */
int st_index(st_file *f, sl_error *err)
{
    f->by_name = malloc((f->n ? (size_t)f->n : 1) * sizeof *f->by_name);
    if (!f->by_name) return sl_fail(err, SL_ERUNTIME, "%s: out of memory", f->path);
    for (int i = 0; i < f->n; i++) f->by_name[i] = &f->tensors[i];
    qsort(f->by_name, (size_t)f->n, sizeof *f->by_name, cmp_names);
    for (int i = 1; i < f->n; i++)
        if (!strcmp(f->by_name[i - 1]->name, f->by_name[i]->name))
            return sl_fail(err, SL_EINPUT, "%s: tensor '%s' appears twice in the header", f->path, f->by_name[i]->name);
    return SL_OK;
}

static int parse_header(st_file *f, const char *json, size_t len, sl_error *err)
{
    size_t nul = sl_json_escaped_nul_at(json, len);
    if (nul < len) return sl_fail(err, SL_EINPUT, "%s: header byte %zu escapes a NUL character (\\u0000)", f->path, 8 + nul);
    size_t bad = st_bad_text_at((const unsigned char *)json, len, 0);
    if (bad < len)
        return sl_fail(err, SL_EINPUT, "%s: header byte %zu (0x%02x) is not UTF-8 JSON text", f->path, 8 + bad,
                       (unsigned char)json[bad]);
    const char *end = NULL;
    cJSON *root = len && json[0] == '{' ? cJSON_ParseWithLengthOpts(json, len, &end, 0) : NULL;
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return sl_fail(err, SL_EINPUT, "%s: header is not a JSON object", f->path);
    }
    /* only whitespace may follow the object (writers pad with spaces to
     * align the data to 8 bytes); anything else is not what was written */
    size_t tail = (size_t)(end - json);
    while (tail < len && is_json_space(json[tail])) tail++;
    if (tail < len) {
        cJSON_Delete(root);
        return sl_fail(err, SL_EINPUT, "%s: header has %zu bytes after its JSON object that are not whitespace", f->path,
                       len - (size_t)(end - json));
    }
    int count = cJSON_GetArraySize(root);
    f->tensors = calloc(count ? (size_t)count : 1, sizeof *f->tensors);
    if (!f->tensors) {
        cJSON_Delete(root);
        return sl_fail(err, SL_ERUNTIME, "%s: out of memory", f->path);
    }
    int rc = SL_OK;
    for (const cJSON *item = root->child; item && rc == SL_OK; item = item->next) {
        if (!strcmp(item->string, "__metadata__")) {
            rc = check_metadata(f, item, err);
            continue;
        }
        rc = parse_entry(f, item, &f->tensors[f->n], err);
        if (rc == SL_OK) f->n++;
    }
    cJSON_Delete(root);
    if (!rc) rc = st_index(f, err);
    if (!rc) rc = check_coverage(f, err);
    return rc;
}

/* The 8-byte little-endian header length, checked against the file's
 * size before anything else is read or allocated. */
static int header_length(const char *path, const unsigned char *prefix, size_t size, uint64_t *hlen, sl_error *err)
{
    if (size < 8) return sl_fail(err, SL_EINPUT, "%s: %zu bytes is too short for a safetensors file", path, size);
    *hlen = 0;
    for (int i = 7; i >= 0; i--) *hlen = (*hlen << 8) | prefix[i];
    if (*hlen > size - 8)
        return sl_fail(err, SL_EINPUT, "%s: header length %llu runs past the end of the file (%zu bytes)", path,
                       (unsigned long long)*hlen, size);
    if (*hlen > ST_MAX_HEADER)
        return sl_fail(err, SL_EINPUT, "%s: header length %llu is larger than %u bytes", path,
                       (unsigned long long)*hlen, ST_MAX_HEADER);
    return SL_OK;
}

int st_parse(st_file *f, const char *path, unsigned char *bytes, size_t len, sl_error *err)
{
    memset(f, 0, sizeof *f);
    f->bytes = bytes;
    f->path = strdup(path);
    if (!f->path) return sl_fail(err, SL_ERUNTIME, "%s: out of memory", path);
    uint64_t hlen = 0;
    int rc = header_length(path, bytes, len, &hlen, err);
    if (rc) return rc;
    f->data = bytes + 8 + hlen;
    f->data_len = len - 8 - hlen;
    return parse_header(f, (const char *)bytes + 8, (size_t)hlen, err);
}

int st_open(st_file *f, const char *path, sl_error *err)
{
    memset(f, 0, sizeof *f);
    int fd;
    size_t size;
    int rc = sl_input_open(path, &fd, &size, err);
    if (rc) return rc;
    unsigned char prefix[8];
    uint64_t hlen = 0;
    if (size >= 8) rc = sl_input_read(fd, path, prefix, 8, err);
    if (!rc) rc = header_length(path, prefix, size, &hlen, err);
    unsigned char *bytes = rc ? NULL : malloc(size);
    if (!rc && !bytes) rc = sl_fail(err, SL_ERUNTIME, "%s: out of memory reading %zu bytes", path, size);
    if (!rc) {
        memcpy(bytes, prefix, 8);
        rc = sl_input_read(fd, path, bytes + 8, size - 8, err);
    }
    close(fd);
    if (rc) {
        free(bytes);
        return rc;
    }
    return st_parse(f, path, bytes, size, err);
}

void st_close(st_file *f)
{
    for (int i = 0; i < f->n; i++) free(f->tensors[i].name);
    free(f->tensors);
    free(f->by_name);
    free(f->bytes);
    free(f->path);
    memset(f, 0, sizeof *f);
}

st_tensor *st_find(const st_file *f, const char *name)
{
    if (!f->by_name) return NULL; /* the header failed to parse */
    int lo = 0, hi = f->n;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (strcmp(f->by_name[mid]->name, name) < 0) lo = mid + 1;
        else hi = mid;
    }
    return lo < f->n && !strcmp(f->by_name[lo]->name, name) ? f->by_name[lo] : NULL;
}

static float half_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ffu, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13);
    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    } else if (man == 0) {
        bits = sign;
    } else { /* subnormal: man * 2^-24 is exact in float32 */
        float v = ldexpf((float)man, -24);
        return sign ? -v : v;
    }
    float out;
    memcpy(&out, &bits, 4);
    return out;
}

void st_to_f32(const st_file *f, const st_tensor *t, float *out)
{
    const unsigned char *src = f->data + t->begin;
    int64_t n = st_numel(t);
    for (int64_t i = 0; i < n; i++) {
        uint32_t bits;
        if (t->dtype == ST_F32) {
            bits = (uint32_t)src[4 * i] | (uint32_t)src[4 * i + 1] << 8 | (uint32_t)src[4 * i + 2] << 16
                 | (uint32_t)src[4 * i + 3] << 24;
            memcpy(&out[i], &bits, 4);
        } else {
            uint16_t h = (uint16_t)(src[2 * i] | src[2 * i + 1] << 8);
            if (t->dtype == ST_F16) {
                out[i] = half_to_f32(h);
            } else {
                bits = (uint32_t)h << 16;
                memcpy(&out[i], &bits, 4);
            }
        }
    }
}

void st_shape_text(char *buf, size_t n, int ndim, const int64_t *shape)
{
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && k < n; i++) k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
}
