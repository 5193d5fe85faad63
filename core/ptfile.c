#include "core/ptfile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zip.h>

#include "core/inputfile.h"
#include "core/pickle.h"

typedef struct {
    zip_t *z;
    const char *path;
    size_t file_size;
    char prefix[256]; /* the archive's top folder, with its '/' */
} archive;

static size_t esize_of(int dtype) { return dtype == ST_F32 ? 4 : 2; }

/* torch.save's zip names its top folder after the file (or "archive"): the
 * one folder holding data.pkl. */
static int find_prefix(archive *a, sl_error *err)
{
    zip_int64_t n = zip_get_num_entries(a->z, 0);
    int found = 0;
    for (zip_int64_t i = 0; i < n; i++) {
        const char *name = zip_get_name(a->z, (zip_uint64_t)i, ZIP_FL_ENC_RAW);
        if (!name) continue;
        size_t len = strlen(name);
        const char *slash = strchr(name, '/');
        if (len < 10 || strcmp(name + len - 9, "/data.pkl") || slash != name + len - 9) continue;
        if (found++)
            return sl_fail(err, SL_EINPUT, "%s: holds two data.pkl (%s and %.200s): not one torch.save archive", a->path,
                           a->prefix, name);
        if (len - 8 >= sizeof a->prefix)
            return sl_fail(err, SL_EINPUT, "%s: the archive's folder name is %zu bytes long", a->path, len - 9);
        memcpy(a->prefix, name, len - 8);
        a->prefix[len - 8] = 0;
    }
    if (!found)
        return sl_fail(err, SL_EINPUT, "%s: a zip archive without ARCHIVE/data.pkl: not a file torch.save wrote", a->path);
    return SL_OK;
}

/* Reads the entry prefix+name whole into *out (*n bytes); SL_OK with
 * *out NULL when there is none. Only stored (uncompressed) entries: their
 * size is bounded by the file's, checked before anything is allocated. */
static int read_entry(archive *a, const char *name, size_t max, unsigned char **out, size_t *n, sl_error *err)
{
    *out = NULL;
    *n = 0;
    char full[512];
    snprintf(full, sizeof full, "%s%s", a->prefix, name);
    zip_int64_t idx = zip_name_locate(a->z, full, ZIP_FL_ENC_RAW);
    if (idx < 0) return SL_OK;
    zip_stat_t st;
    zip_stat_init(&st);
    if (zip_stat_index(a->z, (zip_uint64_t)idx, 0, &st) != 0 || !(st.valid & ZIP_STAT_SIZE)
        || !(st.valid & ZIP_STAT_COMP_METHOD))
        return sl_fail(err, SL_EINPUT, "%s: %s: %s", a->path, full, zip_strerror(a->z));
    if (st.comp_method != ZIP_CM_STORE)
        return sl_fail(err, SL_EINPUT, "%s: %s is compressed (torch.save stores entries uncompressed; re-save the file)",
                       a->path, full);
    if (st.size > a->file_size || st.size > max)
        return sl_fail(err, SL_EINPUT, "%s: %s declares %llu bytes (the file has %zu%s)", a->path, full,
                       (unsigned long long)st.size, a->file_size, max < a->file_size ? ", and at most that is read" : "");
    size_t size = (size_t)st.size;
    unsigned char *buf = malloc(size ? size : 1);
    if (!buf) return sl_fail(err, SL_ERUNTIME, "%s: out of memory reading %s (%zu bytes)", a->path, full, size);
    zip_file_t *zf = zip_fopen_index(a->z, (zip_uint64_t)idx, 0);
    if (!zf) {
        free(buf);
        return sl_fail(err, SL_EINPUT, "%s: %s: %s", a->path, full, zip_strerror(a->z));
    }
    int rc = SL_OK;
    zip_int64_t got = size ? zip_fread(zf, buf, size) : 0;
    unsigned char extra;
    /* one more read must find the end: that is where libzip checks the CRC */
    zip_int64_t more = got == (zip_int64_t)size ? zip_fread(zf, &extra, 1) : 0;
    if (got < 0 || more < 0)
        rc = sl_fail(err, SL_EINPUT, "%s: %s: %s", a->path, full, zip_file_strerror(zf));
    else if (got != (zip_int64_t)size || more)
        rc = sl_fail(err, SL_EINPUT, "%s: %s holds other than the %zu bytes its header declares", a->path, full, size);
    int crc = zip_fclose(zf);
    if (!rc && crc) {
        zip_error_t ze;
        zip_error_init_with_code(&ze, crc);
        rc = sl_fail(err, SL_EINPUT, "%s: %s: %s", a->path, full, zip_error_strerror(&ze));
        zip_error_fini(&ze);
    }
    if (rc) {
        free(buf);
        return rc;
    }
    *out = buf;
    *n = size;
    return SL_OK;
}

static int check_byteorder(archive *a, sl_error *err)
{
    unsigned char *b;
    size_t n;
    int rc = read_entry(a, "byteorder", 16, &b, &n, err);
    if (rc || !b) return rc; /* older writers left it out: little-endian */
    if (n != 6 || memcmp(b, "little", 6))
        rc = sl_fail(err, SL_EINPUT, "%s: byteorder is '%.*s': only little-endian files are read", a->path, (int)n, b);
    free(b);
    return rc;
}

/* torch names storages by number; anything else could point elsewhere in
 * the archive. */
static int key_ok(const char *k)
{
    size_t n = strlen(k);
    if (!n || n > 64) return 0;
    for (size_t i = 0; i < n; i++)
        if (!(k[i] >= '0' && k[i] <= '9') && !(k[i] >= 'a' && k[i] <= 'z') && !(k[i] >= 'A' && k[i] <= 'Z') && k[i] != '_')
            return 0;
    return 1;
}

/* Checks t's view against its storage's declared size and sets its byte
 * count; all in 64-bit with overflow checks. */
static int check_view(const archive *a, const pk_tensor *t, uint64_t *bytes, sl_error *err)
{
    const char *p = a->path, *nm = t->name;
    if (!key_ok(t->key)) return sl_fail(err, SL_EINPUT, "%s: tensor '%s': storage key '%.80s' is not a name torch writes", p, nm, t->key);
    uint64_t numel = 1, last = (uint64_t)t->offset, es = esize_of(t->dtype), sb;
    if (__builtin_mul_overflow((uint64_t)t->storage_numel, es, &sb))
        return sl_fail(err, SL_EINPUT, "%s: tensor '%s': its storage's size overflows", p, nm);
    for (int k = 0; k < t->ndim; k++) {
        uint64_t step;
        if (__builtin_mul_overflow(numel, (uint64_t)t->shape[k], &numel)
            || (t->shape[k] && (__builtin_mul_overflow((uint64_t)t->shape[k] - 1, (uint64_t)t->stride[k], &step)
                                || __builtin_add_overflow(last, step, &last))))
            return sl_fail(err, SL_EINPUT, "%s: tensor '%s': its shape or strides overflow", p, nm);
    }
    if (__builtin_mul_overflow(numel, es, bytes) || *bytes > (uint64_t)INT64_MAX)
        return sl_fail(err, SL_EINPUT, "%s: tensor '%s': its shape's element count overflows", p, nm);
    if (numel ? last >= (uint64_t)t->storage_numel : (uint64_t)t->offset > (uint64_t)t->storage_numel)
        return sl_fail(err, SL_EINPUT,
                       "%s: tensor '%s': its view (offset %lld, %d dimensions) reaches element %llu of storage '%s', "
                       "which holds %lld",
                       p, nm, (long long)t->offset, t->ndim, (unsigned long long)last, t->key, (long long)t->storage_numel);
    return SL_OK;
}

/* Copies t's view of the storage src, row-major, to dst: amortised O(1)
 * per element (an odometer over the dimensions). */
static void gather(unsigned char *dst, const unsigned char *src, const pk_tensor *t)
{
    size_t es = esize_of(t->dtype);
    int64_t numel = 1, want = 1;
    int contiguous = 1;
    for (int k = t->ndim - 1; k >= 0; k--) {
        if (t->shape[k] != 1 && t->stride[k] != want) contiguous = 0;
        want *= t->shape[k];
        numel *= t->shape[k];
    }
    if (!numel) return;
    if (contiguous) {
        memcpy(dst, src + (size_t)t->offset * es, (size_t)numel * es);
        return;
    }
    int64_t idx[ST_MAX_DIMS] = {0}, pos = t->offset;
    for (int64_t i = 0; i < numel; i++) {
        memcpy(dst + (size_t)i * es, src + (size_t)pos * es, es);
        for (int k = t->ndim - 1; k >= 0; k--) {
            if (++idx[k] < t->shape[k]) {
                pos += t->stride[k];
                break;
            }
            pos -= (idx[k] - 1) * t->stride[k];
            idx[k] = 0;
        }
    }
}

static const pk_state_dict *sort_sd;
static int by_key(const void *x, const void *y)
{
    int i = *(const int *)x, j = *(const int *)y;
    int c = strcmp(sort_sd->t[i].key, sort_sd->t[j].key);
    return c ? c : (i > j) - (i < j);
}

/* Reads each storage once, for all the tensors that view it. */
static int fill(archive *a, const pk_state_dict *sd, st_file *f, sl_error *err)
{
    int *order = malloc((size_t)(sd->n ? sd->n : 1) * sizeof *order);
    if (!order) return sl_fail(err, SL_ERUNTIME, "%s: out of memory", a->path);
    for (int i = 0; i < sd->n; i++) order[i] = i;
    sort_sd = sd;
    qsort(order, (size_t)sd->n, sizeof *order, by_key);
    int rc = SL_OK;
    for (int g = 0; g < sd->n && !rc;) {
        const char *key = sd->t[order[g]].key;
        char name[96];
        snprintf(name, sizeof name, "data/%s", key);
        unsigned char *s;
        size_t n;
        rc = read_entry(a, name, a->file_size, &s, &n, err);
        if (!rc && !s)
            rc = sl_fail(err, SL_EINPUT, "%s: tensor '%s': its storage %s%s is not in the archive", a->path,
                         sd->t[order[g]].name, a->prefix, name);
        for (; g < sd->n && !strcmp(sd->t[order[g]].key, key); g++) {
            const pk_tensor *t = &sd->t[order[g]];
            uint64_t want = (uint64_t)t->storage_numel * esize_of(t->dtype); /* checked in check_view */
            if (!rc && want != n)
                rc = sl_fail(err, SL_EINPUT, "%s: tensor '%s': storage %s holds %zu bytes, the pickle says %lld elements of %s",
                             a->path, t->name, name, n, (long long)t->storage_numel, st_dtype_name(t->dtype));
            if (!rc) gather(f->bytes + f->tensors[order[g]].begin, s, t);
        }
        free(s);
    }
    free(order);
    return rc;
}

static int read_archive(archive *a, st_file *f, sl_error *err)
{
    int rc = find_prefix(a, err);
    if (!rc) rc = check_byteorder(a, err);
    unsigned char *pkl = NULL;
    size_t pkl_len = 0;
    if (!rc) rc = read_entry(a, "data.pkl", PT_MAX_PICKLE, &pkl, &pkl_len, err);
    pk_state_dict sd = {0};
    char what[600];
    snprintf(what, sizeof what, "%s: %sdata.pkl", a->path, a->prefix);
    if (!rc) rc = pk_load_state_dict(pkl, pkl_len, what, &sd, err);
    free(pkl);
    f->tensors = rc ? NULL : calloc((size_t)(sd.n ? sd.n : 1), sizeof *f->tensors);
    if (!rc && !f->tensors) rc = sl_fail(err, SL_ERUNTIME, "%s: out of memory", a->path);
    uint64_t total = 0, cap = (uint64_t)PT_MAX_EXPANSION * a->file_size + (1u << 20);
    for (int i = 0; !rc && i < sd.n; i++) {
        pk_tensor *t = &sd.t[i];
        uint64_t bytes = 0;
        rc = check_view(a, t, &bytes, err);
        if (!rc && (total += bytes) > cap)
            rc = sl_fail(err, SL_EINPUT, "%s: its tensors would take more than %d times the file's %zu bytes (one storage viewed many times?)",
                         a->path, PT_MAX_EXPANSION, a->file_size);
        if (rc) break;
        st_tensor *s = &f->tensors[f->n++];
        s->name = t->name; /* f's from here: taken out of sd below */
        s->dtype = t->dtype;
        s->ndim = t->ndim;
        memcpy(s->shape, t->shape, sizeof s->shape);
        s->begin = (size_t)(total - bytes);
        s->end = (size_t)total;
    }
    if (!rc) {
        f->bytes = malloc(total ? (size_t)total : 1);
        f->data = f->bytes;
        f->data_len = (size_t)total;
        if (!f->bytes) rc = sl_fail(err, SL_ERUNTIME, "%s: out of memory for %llu bytes of tensors", a->path, (unsigned long long)total);
    }
    if (!rc) rc = fill(a, &sd, f, err);
    if (!rc) rc = st_index(f, err);
    for (int i = 0; i < f->n; i++) sd.t[i].name = NULL; /* f's, freed by st_close */
    pk_free(&sd);
    return rc;
}

static int zip_failed(const char *path, zip_error_t *ze, sl_error *err)
{
    int rc = sl_fail(err, SL_EINPUT, "%s: not a readable zip archive: %s", path, zip_error_strerror(ze));
    zip_error_fini(ze);
    return rc;
}

/* The first bytes say what the file is before libzip looks at it: a
 * legacy torch.save (a bare pickle, or a tar before that) is refused with
 * what to do about it. */
static int check_magic(const char *path, const unsigned char *b, size_t n, sl_error *err)
{
    if (n >= 2 && b[0] == 'P' && b[1] == 'K') return SL_OK;
    if ((n >= 2 && b[0] == 0x80 && b[1] >= 2 && b[1] <= 5) || (n >= 262 && !memcmp(b + 257, "ustar", 5)))
        return sl_fail(err, SL_EINPUT,
                       "%s: torch.save's legacy format (before torch 1.6, or _use_new_zipfile_serialization=False) is not "
                       "read: re-save it with a current torch (torch.save(torch.load(F), F))",
                       path);
    return sl_fail(err, SL_EINPUT, "%s: not a torch.save file (no zip archive)", path);
}

static int finish(archive *a, st_file *f, sl_error *err)
{
    int rc = read_archive(a, f, err);
    if (zip_close(a->z) != 0) {
        if (!rc) rc = sl_fail(err, SL_ERUNTIME, "%s: closing: %s", a->path, zip_strerror(a->z));
        zip_discard(a->z);
    }
    return rc;
}

static int start(st_file *f, const char *path, sl_error *err)
{
    memset(f, 0, sizeof *f);
    f->path = strdup(path);
    return f->path ? SL_OK : sl_fail(err, SL_ERUNTIME, "%s: out of memory", path);
}

int pt_parse(st_file *f, const char *path, const unsigned char *bytes, size_t len, sl_error *err)
{
    int rc = start(f, path, err);
    if (!rc) rc = check_magic(path, bytes, len, err);
    if (rc) return rc;
    zip_error_t ze;
    zip_error_init(&ze);
    zip_source_t *src = zip_source_buffer_create(bytes, len, 0, &ze);
    zip_t *z = src ? zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS, &ze) : NULL;
    if (!z) {
        if (src) zip_source_free(src);
        return zip_failed(path, &ze, err);
    }
    zip_error_fini(&ze);
    archive a = {.z = z, .path = path, .file_size = len};
    return finish(&a, f, err);
}

int pt_open(st_file *f, const char *path, sl_error *err)
{
    int rc = start(f, path, err);
    int fd = -1;
    size_t size = 0;
    if (!rc) rc = sl_input_open(path, &fd, &size, err);
    unsigned char head[512];
    size_t nh = size < sizeof head ? size : sizeof head;
    if (!rc) rc = sl_input_read(fd, path, head, nh, err);
    if (!rc) rc = check_magic(path, head, nh, err);
    if (rc) {
        if (fd >= 0) close(fd);
        return rc;
    }
    int code = 0;
    zip_t *z = zip_fdopen(fd, ZIP_CHECKCONS, &code);
    if (!z) {
        close(fd);
        zip_error_t ze;
        zip_error_init_with_code(&ze, code);
        return zip_failed(path, &ze, err);
    }
    archive a = {.z = z, .path = path, .file_size = size};
    return finish(&a, f, err);
}
