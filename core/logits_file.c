#include "core/logits_file.h"

#include <hdf5.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/dataset.h"
#include "core/inputfile.h"

/* 2^31 bytes: 268 million float64 logits, far beyond any dataset run. */
#define MAX_FILE_BYTES (1UL << 31)
/* numpy itself refuses headers past 10,000 bytes on load */
#define MAX_NPY_HEADER 65536
#define MAX_EXAMPLES (1L << 40)

void sl_logits_file_free(sl_logits_file *f)
{
    free(f->z);
    f->z = NULL;
    f->n = 0;
}

/* Values as stored ([n, cols]) into one logit each; every one finite. */
static int finish(const char *path, const double *v, long n, int cols, sl_logits_file *out, sl_error *err)
{
    out->z = malloc((size_t)n * sizeof *out->z);
    if (!out->z) return sl_fail(err, SL_ERUNTIME, "%s: out of memory for %ld logits", path, n);
    out->n = n;
    for (long i = 0; i < n; i++) {
        double a = v[i * cols], b = cols == 2 ? v[i * cols + 1] : 0;
        if (!isfinite(a) || !isfinite(b)) {
            sl_logits_file_free(out);
            return sl_fail(err, SL_EINPUT, "%s: the value for example %ld is %s (every logit must be finite)", path, i,
                           isnan(a) || isnan(b) ? "NaN" : "infinite");
        }
        out->z[i] = cols == 2 ? b - a : a;
    }
    return SL_OK;
}

static int shape_ok(const char *path, long n, int rank, long cols, sl_error *err)
{
    if (n < 1 || (rank == 2 && cols != 1 && cols != 2) || rank < 1 || rank > 2)
        return sl_fail(err, SL_EINPUT, "%s: logits must have shape [n], [n, 1] or [n, 2] with n >= 1", path);
    return SL_OK;
}

/* ---- .npy: a Python dict literal as header, then the raw array ---- */

typedef struct {
    const char *p, *end;
} cursor;

static void skip_space(cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) c->p++;
}

static int take(cursor *c, char ch)
{
    skip_space(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return 1;
    }
    return 0;
}

/* A quoted string without escapes, into buf. */
static int string_lit(cursor *c, char *buf, size_t n)
{
    skip_space(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"')) return -1;
    char q = *c->p++;
    size_t k = 0;
    while (c->p < c->end && *c->p != q) {
        if (*c->p == '\\' || k + 1 >= n) return -1;
        buf[k++] = *c->p++;
    }
    if (c->p >= c->end) return -1;
    c->p++;
    buf[k] = 0;
    return 0;
}

static int word(cursor *c, const char *w)
{
    size_t n = strlen(w);
    skip_space(c);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, w, n)) return 0;
    c->p += n;
    return 1;
}

/* (), (n,), (n, m) ...: at most 2 dimensions are kept, *rank counts all. */
static int tuple_lit(cursor *c, long *dims, int *rank)
{
    *rank = 0;
    if (!take(c, '(')) return -1;
    for (;;) {
        if (take(c, ')')) return 0;
        skip_space(c);
        long v = 0;
        int digits = 0;
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
            if (v > MAX_EXAMPLES) return -1;
            v = 10 * v + (*c->p++ - '0');
            digits++;
        }
        if (!digits || v > MAX_EXAMPLES) return -1;
        if (c->p < c->end && *c->p == 'L') c->p++; /* Python 2's long */
        if (*rank < 2) dims[*rank] = v;
        if (++*rank > 32) return -1;
        if (take(c, ')')) return 0;
        if (!take(c, ',')) return -1;
    }
}

typedef struct {
    char descr[16];
    int fortran, rank;
    long dims[2];
} npy_header;

static int parse_header(const char *path, const char *text, size_t n, npy_header *h, sl_error *err)
{
    cursor c = {text, text + n};
    int seen[3] = {0, 0, 0};
    if (!take(&c, '{')) return sl_fail(err, SL_EINPUT, "%s: .npy header is not a dict", path);
    for (;;) {
        if (take(&c, '}')) break;
        char key[32];
        if (string_lit(&c, key, sizeof key) || !take(&c, ':'))
            return sl_fail(err, SL_EINPUT, "%s: .npy header: expected 'key': value", path);
        int k = !strcmp(key, "descr") ? 0 : !strcmp(key, "fortran_order") ? 1 : !strcmp(key, "shape") ? 2 : -1;
        if (k < 0) return sl_fail(err, SL_EINPUT, "%s: .npy header: unexpected key '%s'", path, key);
        if (seen[k]++) return sl_fail(err, SL_EINPUT, "%s: .npy header: key '%s' appears twice", path, key);
        int bad = 0;
        if (k == 0) bad = string_lit(&c, h->descr, sizeof h->descr);
        else if (k == 1) {
            if (word(&c, "True")) h->fortran = 1;
            else if (word(&c, "False")) h->fortran = 0;
            else bad = 1;
        } else bad = tuple_lit(&c, h->dims, &h->rank);
        if (bad) return sl_fail(err, SL_EINPUT, "%s: .npy header: cannot read the value of '%s'", path, key);
        if (take(&c, '}')) break;
        if (!take(&c, ',')) return sl_fail(err, SL_EINPUT, "%s: .npy header: expected ',' or '}'", path);
    }
    skip_space(&c);
    if (c.p != c.end) return sl_fail(err, SL_EINPUT, "%s: .npy header: text after the dict", path);
    if (!seen[0] || !seen[1] || !seen[2])
        return sl_fail(err, SL_EINPUT, "%s: .npy header lacks '%s'", path,
                       !seen[0] ? "descr" : !seen[1] ? "fortran_order" : "shape");
    return SL_OK;
}

static uint64_t le(const unsigned char *b, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = v << 8 | b[i];
    return v;
}

int sl_logits_npy_parse(const char *path, const unsigned char *b, size_t size, sl_logits_file *out, sl_error *err)
{
    memset(out, 0, sizeof *out);
    if (size < 10 || memcmp(b, "\x93NUMPY", 6))
        return sl_fail(err, SL_EINPUT, "%s: not a .npy file (no \\x93NUMPY magic)", path);
    int major = b[6], minor = b[7];
    if (major < 1 || major > 3 || minor != 0)
        return sl_fail(err, SL_EINPUT, "%s: .npy format version %d.%d (1.0, 2.0 and 3.0 are read)", path, major, minor);
    size_t off = major == 1 ? 10 : 12;
    if (size < off) return sl_fail(err, SL_EINPUT, "%s: .npy file ends inside its header", path);
    uint64_t hlen = le(b + 8, major == 1 ? 2 : 4);
    if (hlen > MAX_NPY_HEADER) return sl_fail(err, SL_EINPUT, "%s: .npy header of %llu bytes (at most %d)", path,
                                              (unsigned long long)hlen, MAX_NPY_HEADER);
    if (hlen > size - off) return sl_fail(err, SL_EINPUT, "%s: .npy file ends inside its header", path);
    if (memchr(b + off, 0, hlen)) return sl_fail(err, SL_EINPUT, "%s: .npy header holds a NUL byte", path);
    npy_header h = {0};
    int rc = parse_header(path, (const char *)b + off, hlen, &h, err);
    if (rc) return rc;
    int esize = !strcmp(h.descr, "<f4") ? 4 : !strcmp(h.descr, "<f8") ? 8 : 0;
    if (!esize)
        return sl_fail(err, SL_EINPUT, "%s: .npy dtype '%s': expected little-endian float32 or float64 ('<f4', '<f8')",
                       path, h.descr);
    if (h.fortran && h.rank == 2 && h.dims[1] == 2)
        return sl_fail(err, SL_EINPUT, "%s: .npy array in Fortran order (save np.ascontiguousarray of it)", path);
    long n = h.rank >= 1 ? h.dims[0] : 0, cols = h.rank == 2 ? h.dims[1] : 1;
    rc = shape_ok(path, n, h.rank, cols, err);
    if (rc) return rc;
    size_t data = size - off - (size_t)hlen, want = (size_t)n * (size_t)cols * (size_t)esize;
    if (data != want)
        return sl_fail(err, SL_EINPUT, "%s: .npy shape needs %zu bytes of data, the file holds %zu", path, want, data);
    const unsigned char *p = b + off + hlen;
    size_t count = (size_t)n * (size_t)cols;
    double *v = malloc(count * sizeof *v);
    if (!v) return sl_fail(err, SL_ERUNTIME, "%s: out of memory for %ld logits", path, n);
    for (size_t i = 0; i < count; i++) {
        uint64_t bits = le(p + i * (size_t)esize, esize);
        if (esize == 4) {
            uint32_t w = (uint32_t)bits;
            float f;
            memcpy(&f, &w, 4);
            v[i] = f;
        } else memcpy(&v[i], &bits, 8);
    }
    rc = finish(path, v, n, (int)cols, out, err);
    free(v);
    return rc;
}

/* ---- text: one number a line ---- */

static int parse_text(const char *path, const char *t, size_t size, sl_logits_file *out, sl_error *err)
{
    if (memchr(t, 0, size)) return sl_fail(err, SL_EINPUT, "%s: not a text file of numbers (it holds a NUL byte)", path);
    long lines = 0;
    for (size_t i = 0; i < size; i++) lines += t[i] == '\n';
    if (size && t[size - 1] != '\n') lines++;
    if (lines < 1) return sl_fail(err, SL_EINPUT, "%s: no logits (one number a line)", path);
    double *v = malloc((size_t)lines * sizeof *v);
    if (!v) return sl_fail(err, SL_ERUNTIME, "%s: out of memory for %ld logits", path, lines);
    const char *p = t, *end = t + size;
    int rc = SL_OK;
    for (long k = 0; k < lines && !rc; k++) {
        while (p < end && (*p == ' ' || *p == '\t')) p++;
        char *stop = (char *)p;
        /* never from a space: strtod would skip a line break to the next
         * line's number; it stops at the NUL that ends the buffer */
        v[k] = p < end && !strchr(" \t\r\n\v\f", *p) ? strtod(p, &stop) : 0;
        const char *q = stop;
        while (q < end && (*q == ' ' || *q == '\t' || *q == '\r')) q++;
        if (stop == p || (q < end && *q != '\n'))
            rc = sl_fail(err, SL_EINPUT, "%s: line %ld is not one number", path, k + 1);
        p = q + 1;
    }
    if (!rc) rc = finish(path, v, lines, 1, out, err);
    free(v);
    return rc;
}

/* ---- .h5: the dataset /logits ---- */

static int read_h5(const char *path, sl_logits_file *out, sl_error *err)
{
    hid_t f, d = -1, t = -1, s = -1;
    int rc = sl_h5_open_input(path, &f, err);
    if (rc) return rc;
    rc = sl_h5_open_checked(f, path, "/logits", &d, err);
    if (!rc && d < 0) rc = sl_fail(err, SL_EINPUT, "%s: no dataset /logits", path);
    if (!rc) {
        t = H5Dget_type(d);
        s = H5Dget_space(d);
        if (t < 0 || H5Tget_class(t) != H5T_FLOAT) rc = sl_fail(err, SL_EINPUT, "%s: /logits must hold floats", path);
    }
    hsize_t dims[2] = {0, 1};
    int rank = rc ? 0 : H5Sget_simple_extent_ndims(s);
    if (!rc && rank >= 1 && rank <= 2) H5Sget_simple_extent_dims(s, dims, NULL);
    if (!rc) rc = shape_ok(path, dims[0] > (hsize_t)MAX_EXAMPLES ? 0 : (long)dims[0], rank, (long)dims[1], err);
    double *v = NULL;
    if (!rc && !(v = malloc((size_t)dims[0] * (size_t)dims[1] * sizeof *v)))
        rc = sl_fail(err, SL_ERUNTIME, "%s: out of memory for %llu logits", path, (unsigned long long)dims[0]);
    if (!rc && H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) < 0)
        rc = sl_fail(err, SL_EINPUT, "%s: cannot read /logits", path);
    if (!rc) rc = finish(path, v, (long)dims[0], (int)dims[1], out, err);
    free(v);
    if (s >= 0) H5Sclose(s);
    if (t >= 0) H5Tclose(t);
    if (d >= 0) H5Dclose(d);
    if (H5Fclose(f) < 0 && !rc) rc = sl_fail(err, SL_ERUNTIME, "%s: cannot close", path);
    return rc;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcasecmp(s + n - k, suffix);
}

int sl_logits_file_read(const char *path, sl_logits_file *out, sl_error *err)
{
    memset(out, 0, sizeof *out);
    if (ends_with(path, ".h5") || ends_with(path, ".hdf5")) return read_h5(path, out, err);
    char *buf;
    size_t size;
    int rc = sl_input_read_all(path, MAX_FILE_BYTES, "a logits file", &buf, &size, err);
    if (rc) return rc;
    if (ends_with(path, ".npy")) rc = sl_logits_npy_parse(path, (const unsigned char *)buf, size, out, err);
    else rc = parse_text(path, buf, size, out, err);
    free(buf);
    return rc;
}
