#include "core/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A header this large is not a model anyone trains here; refusing it keeps a
 * corrupt length from turning into a huge allocation. */
#define ST_MAX_HEADER (100u << 20)

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

static int cmp_begin(const void *a, const void *b)
{
    const st_tensor *x = *(st_tensor *const *)a, *y = *(st_tensor *const *)b;
    return (x->begin > y->begin) - (x->begin < y->begin);
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
    double numel = 1;
    for (int i = 0; i < t->ndim; i++) {
        uint64_t v;
        if (json_uint(cJSON_GetArrayItem(sh, i), 9.0e15, &v))
            return sl_fail(err, SL_EINPUT, "%s: tensor '%s': shape entry %d is not a non-negative integer", p, nm, i);
        t->shape[i] = (int64_t)v;
        numel *= (double)v;
    }
    uint64_t b, e;
    if (cJSON_GetArraySize(off) != 2 || json_uint(cJSON_GetArrayItem(off, 0), 9.0e15, &b)
        || json_uint(cJSON_GetArrayItem(off, 1), 9.0e15, &e) || b > e)
        return sl_fail(err, SL_EINPUT, "%s: tensor '%s': data_offsets must be [begin, end] with 0 <= begin <= end", p, nm);
    if (e > f->data_len)
        return sl_fail(err, SL_EINPUT, "%s: tensor '%s': data_offsets [%llu, %llu] run past the end of the data (%zu bytes)",
                       p, nm, (unsigned long long)b, (unsigned long long)e, f->data_len);
    if ((double)(e - b) != numel * (double)esize)
        return sl_fail(err, SL_EINPUT, "%s: tensor '%s': %llu bytes for %.0f elements of %s", p, nm,
                       (unsigned long long)(e - b), numel, dt->valuestring);
    t->begin = b;
    t->end = e;
    t->name = strdup(nm);
    if (!t->name) return sl_fail(err, SL_ERUNTIME, "%s: out of memory", p);
    return SL_OK;
}

static int parse_header(st_file *f, const char *json, size_t len, sl_error *err)
{
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return sl_fail(err, SL_EINPUT, "%s: header is not a JSON object", f->path);
    }
    int count = cJSON_GetArraySize(root);
    f->tensors = calloc(count ? (size_t)count : 1, sizeof *f->tensors);
    if (!f->tensors) {
        cJSON_Delete(root);
        return sl_fail(err, SL_ERUNTIME, "%s: out of memory", f->path);
    }
    int rc = SL_OK;
    for (const cJSON *item = root->child; item && rc == SL_OK; item = item->next) {
        if (!strcmp(item->string, "__metadata__")) continue;
        if (st_find(f, item->string)) {
            rc = sl_fail(err, SL_EINPUT, "%s: tensor '%s' appears twice in the header", f->path, item->string);
            break;
        }
        rc = parse_entry(f, item, &f->tensors[f->n], err);
        if (rc == SL_OK) f->n++;
    }
    cJSON_Delete(root);
    if (rc != SL_OK) return rc;

    /* Byte ranges must not overlap: one region read as two tensors means a
     * corrupt or hostile file. */
    st_tensor **order = malloc((f->n ? (size_t)f->n : 1) * sizeof *order);
    if (!order) return sl_fail(err, SL_ERUNTIME, "%s: out of memory", f->path);
    int n = 0;
    for (int i = 0; i < f->n; i++)
        if (f->tensors[i].end > f->tensors[i].begin) order[n++] = &f->tensors[i]; /* empty ones hold no bytes */
    qsort(order, (size_t)n, sizeof *order, cmp_begin);
    for (int i = 1; i < n; i++) {
        if (order[i]->begin < order[i - 1]->end) {
            rc = sl_fail(err, SL_EINPUT, "%s: tensors '%s' and '%s' overlap in the data section", f->path,
                         order[i - 1]->name, order[i]->name);
            break;
        }
    }
    free(order);
    return rc;
}

int st_parse(st_file *f, const char *path, unsigned char *bytes, size_t len, sl_error *err)
{
    memset(f, 0, sizeof *f);
    f->bytes = bytes;
    f->path = strdup(path);
    if (!f->path) return sl_fail(err, SL_ERUNTIME, "%s: out of memory", path);
    if (len < 8)
        return sl_fail(err, SL_EINPUT, "%s: %zu bytes is too short for a safetensors file", path, len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | bytes[i];
    if (hlen > len - 8)
        return sl_fail(err, SL_EINPUT, "%s: header length %llu runs past the end of the file (%zu bytes)", path,
                       (unsigned long long)hlen, len);
    if (hlen > ST_MAX_HEADER)
        return sl_fail(err, SL_EINPUT, "%s: header length %llu is larger than %u bytes", path,
                       (unsigned long long)hlen, ST_MAX_HEADER);
    f->data = bytes + 8 + hlen;
    f->data_len = len - 8 - hlen;
    return parse_header(f, (const char *)bytes + 8, (size_t)hlen, err);
}

int st_open(st_file *f, const char *path, sl_error *err)
{
    memset(f, 0, sizeof *f);
    FILE *fp = fopen(path, "rb");
    if (!fp) return sl_fail(err, SL_EINPUT, "%s: cannot open: %s", path, strerror(errno));
    unsigned char *bytes = NULL;
    long size = -1;
    if (fseek(fp, 0, SEEK_END) == 0) size = ftell(fp);
    if (size < 0 || fseek(fp, 0, SEEK_SET) != 0) {
        fclose(fp);
        return sl_fail(err, SL_EINPUT, "%s: cannot determine the file size", path);
    }
    bytes = malloc(size ? (size_t)size : 1);
    if (!bytes) {
        fclose(fp);
        return sl_fail(err, SL_ERUNTIME, "%s: out of memory reading %ld bytes", path, size);
    }
    size_t got = fread(bytes, 1, (size_t)size, fp);
    fclose(fp);
    if (got != (size_t)size) {
        free(bytes);
        return sl_fail(err, SL_ERUNTIME, "%s: read %zu of %ld bytes", path, got, size);
    }
    return st_parse(f, path, bytes, (size_t)size, err);
}

void st_close(st_file *f)
{
    for (int i = 0; i < f->n; i++) free(f->tensors[i].name);
    free(f->tensors);
    free(f->bytes);
    free(f->path);
    memset(f, 0, sizeof *f);
}

st_tensor *st_find(const st_file *f, const char *name)
{
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->tensors[i].name, name)) return &f->tensors[i];
    return NULL;
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
