/* Hostile and valid torch.save images built byte by byte, for the tests
 * of the pickle reader (tests/test_ptfile.c) and of the binary on model
 * directories holding them (tests/test_inputs.c). Include after
 * tests/testing.h (archive_with CHECKs). Nothing here is ever unpickled
 * by Python. */
#ifndef SEQLENS_TESTS_PT_BUILDERS_H
#define SEQLENS_TESTS_PT_BUILDERS_H

#include <stdint.h>
#include <string.h>
#include <zip.h>

/* ---- a pickle, byte by byte ---- */

typedef struct {
    unsigned char b[1 << 16];
    size_t n;
} pkb;

static inline void op(pkb *p, int c) { p->b[p->n++] = (unsigned char)c; }
static inline void put(pkb *p, const void *s, size_t n)
{
    memcpy(p->b + p->n, s, n);
    p->n += n;
}
static inline void le32(pkb *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) op(p, (int)(v >> (8 * i)) & 0xff);
}
static inline void ustr(pkb *p, const char *s)
{
    op(p, 'X');
    le32(p, (uint32_t)strlen(s));
    put(p, s, strlen(s));
}
static inline void glob(pkb *p, const char *module, const char *name)
{
    op(p, 'c');
    put(p, module, strlen(module));
    op(p, '\n');
    put(p, name, strlen(name));
    op(p, '\n');
}
static inline void pint(pkb *p, long v)
{
    op(p, 'J');
    le32(p, (uint32_t)v);
}

typedef struct {
    const char *storage, *key;
    long numel, offset;
    int ndim;
    long shape[10], stride[10];
} view;

/* _rebuild_tensor_v2 as torch.save writes it */
static inline void tensor(pkb *p, const view *v)
{
    glob(p, "torch._utils", "_rebuild_tensor_v2");
    op(p, '(');
    op(p, '(');
    ustr(p, "storage");
    glob(p, "torch", v->storage);
    ustr(p, v->key);
    ustr(p, "cpu");
    pint(p, v->numel);
    op(p, 't');
    op(p, 'Q');
    pint(p, v->offset);
    op(p, '(');
    for (int k = 0; k < v->ndim; k++) pint(p, v->shape[k]);
    op(p, 't');
    op(p, '(');
    for (int k = 0; k < v->ndim; k++) pint(p, v->stride[k]);
    op(p, 't');
    op(p, 0x89);
    glob(p, "collections", "OrderedDict");
    op(p, ')');
    op(p, 'R');
    op(p, 't');
    op(p, 'R');
}

static const view A23 = {"FloatStorage", "0", 6, 0, 2, {2, 3}, {3, 1}};

/* {"a": v} */
static inline void one_tensor(pkb *p, const view *v)
{
    p->n = 0;
    op(p, 0x80);
    op(p, 2);
    op(p, '}');
    ustr(p, "a");
    tensor(p, v);
    op(p, 's');
    op(p, '.');
}

typedef struct {
    const char *name;
    const void *data;
    size_t n;
    int deflate;
} entry;

static inline int make_zip(const char *path, const entry *e, int n)
{
    remove(path);
    int ze = 0;
    zip_t *z = zip_open(path, ZIP_CREATE | ZIP_TRUNCATE, &ze);
    if (!z) return -1;
    for (int i = 0; i < n; i++) {
        zip_source_t *s = zip_source_buffer(z, e[i].data, e[i].n, 0);
        zip_int64_t idx = s ? zip_file_add(z, e[i].name, s, ZIP_FL_OVERWRITE) : -1;
        if (idx < 0 || zip_set_file_compression(z, (zip_uint64_t)idx, e[i].deflate ? ZIP_CM_DEFLATE : ZIP_CM_STORE, 0)) {
            zip_discard(z);
            return -1;
        }
    }
    return zip_close(z);
}

static const float SIX[6] = {0, 1, 2, 3, 4, 5};

/* An archive holding the pickle p and storage 0 (bytes of SIX, n of them). */
static inline void archive_with(const char *path, const pkb *p, size_t storage_bytes, const char *byteorder, int deflate)
{
    entry e[4] = {{"archive/data.pkl", p->b, p->n, deflate}, {"archive/data/0", SIX, storage_bytes, 0}};
    int n = 2;
    if (byteorder) e[n++] = (entry){"archive/byteorder", byteorder, strlen(byteorder), 0};
    CHECK(make_zip(path, e, n) == 0, "cannot write %s", path);
}

#endif
