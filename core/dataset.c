#include "core/dataset.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/inputfile.h"
#include "core/rng.h"

/* Values per slab in the validation pass: bounded memory, few reads. */
#define SLAB_TOKENS (1L << 22)

/* HDF5 reads a chunk never written as the fill value and inflates a
 * compressed one, so a dataset can declare far more than the file holds.
 * Every dataset read whole or scanned must fit in what is stored: up to
 * FREE_BYTES declared is always read; beyond that the declared size may be
 * at most MAX_RATIO times the bytes stored (deflate, the strongest filter
 * libhdf5 ships, stays near 1000:1). */
#define FREE_BYTES (32.0 * (1 << 20))
#define MAX_RATIO 2048.0

void sl_h5_quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

/* An external link makes HDF5 open a file the link names, which could be
 * anything (a FIFO, a device, a file the user never meant to give): every
 * lookup goes through this link access list, whose callback refuses them. */
static herr_t refuse_external(const char *parent_file, const char *parent_group, const char *child_file,
                              const char *child_object, unsigned *flags, hid_t fapl, void *data)
{
    (void)parent_file, (void)parent_group, (void)child_file, (void)child_object, (void)flags, (void)fapl, (void)data;
    return -1;
}

static hid_t local_links(void)
{
    static hid_t lapl = -1;
    if (lapl < 0) {
        lapl = H5Pcreate(H5P_DATASET_ACCESS); /* a link access list too, for lookups */
        if (lapl >= 0 && H5Pset_elink_cb(lapl, refuse_external, NULL) < 0) {
            H5Pclose(lapl);
            lapl = -1;
        }
    }
    return lapl;
}

/* *found = 1 when name (an absolute path) leads to an object inside DATA;
 * a link to another file on the way is an input error naming it. */
static int find_object(hid_t file, const char *path, const char *name, int *found, sl_error *err)
{
    char part[320];
    size_t n = strlen(name);
    *found = 0;
    if (n >= sizeof part) return SL_OK;
    for (size_t i = 1; i <= n; i++) {
        if (i < n && name[i] != '/') continue;
        memcpy(part, name, i);
        part[i] = 0;
        H5L_info_t info;
        if (H5Lexists(file, part, local_links()) <= 0 || H5Lget_info(file, part, &info, local_links()) < 0) return SL_OK;
        if (info.type != H5L_TYPE_HARD && info.type != H5L_TYPE_SOFT)
            return sl_fail(err, SL_EINPUT, "%s: %s is a link to another file (only what %s itself holds is read)", path,
                           part, path);
    }
    *found = 1;
    return SL_OK;
}

/* Opens a dataset whose data lives in DATA itself: not in external raw
 * files nor a virtual dataset's sources (both read other files). */
static int open_local(hid_t file, const char *path, const char *name, hid_t *out, sl_error *err)
{
    *out = H5Dopen2(file, name, local_links());
    if (*out < 0) return sl_fail(err, SL_EINPUT, "%s: %s is not a readable dataset", path, name);
    hid_t dcpl = H5Dget_create_plist(*out);
    int external = dcpl < 0 ? -1 : H5Pget_external_count(dcpl);
    H5D_layout_t layout = dcpl < 0 ? H5D_LAYOUT_ERROR : H5Pget_layout(dcpl);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (external != 0 || layout == H5D_VIRTUAL || layout == H5D_LAYOUT_ERROR) {
        H5Dclose(*out);
        *out = -1;
        return sl_fail(err, SL_EINPUT, "%s: %s keeps its data outside the file (external or virtual storage)", path, name);
    }
    return SL_OK;
}

static void shape_text(char *buf, size_t n, int rank, const hsize_t *dims)
{
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < rank && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%llu", i ? ", " : "", (unsigned long long)dims[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
}

/* The bound above, checked from the metadata alone, before any read. */
/* Reading a chunk never written still costs HDF5 a lookup, so a small file
 * declaring a million tiny chunks would take seconds per read: beyond
 * FREE_CHUNKS, a dataset must have written at least one chunk in MAX_RATIO
 * of those it declares. */
#define FREE_CHUNKS 65536.0

static int check_chunks(const char *path, hid_t d, const char *name, int rank, const hsize_t *dims, sl_error *err)
{
    hid_t dcpl = H5Dget_create_plist(d);
    if (dcpl < 0) return sl_fail(err, SL_EINPUT, "%s: %s has no readable layout", path, name);
    hsize_t chunk[H5S_MAX_RANK];
    H5D_layout_t layout = H5Pget_layout(dcpl);
    int crank = layout == H5D_CHUNKED ? H5Pget_chunk(dcpl, H5S_MAX_RANK, chunk) : 0;
    if (H5Pclose(dcpl) < 0 || layout < 0 || crank < 0 || (layout == H5D_CHUNKED && crank != rank))
        return sl_fail(err, SL_EINPUT, "%s: %s has no readable layout", path, name);
    if (layout != H5D_CHUNKED) return SL_OK;
    double declared = 1;
    for (int i = 0; i < rank; i++) declared *= (double)((dims[i] + chunk[i] - 1) / (chunk[i] ? chunk[i] : 1));
    if (declared <= FREE_CHUNKS) return SL_OK;
    hsize_t written = 0;
    hid_t space = H5Dget_space(d);
    herr_t got = space >= 0 ? H5Dget_num_chunks(d, space, &written) : -1;
    if (space >= 0 && H5Sclose(space) < 0) got = -1;
    if (got < 0) return sl_fail(err, SL_EINPUT, "%s: cannot count the chunks of %s", path, name);
    if (declared <= MAX_RATIO * (double)written) return SL_OK;
    return sl_fail(err, SL_EINPUT, "%s: %s declares %.0f chunks but the file has written %llu of them", path, name,
                   declared, (unsigned long long)written);
}

static int check_declared(const char *path, hid_t d, const char *name, int rank, const hsize_t *dims, size_t esize,
                          sl_error *err)
{
    double declared = (double)esize;
    for (int i = 0; i < rank; i++) declared *= (double)dims[i];
    hsize_t stored = declared <= FREE_BYTES ? 0 : H5Dget_storage_size(d);
    if (declared <= FREE_BYTES || declared <= MAX_RATIO * (double)stored)
        return check_chunks(path, d, name, rank, dims, err);
    char shape[96];
    shape_text(shape, sizeof shape, rank, dims);
    return sl_fail(err, SL_EINPUT, "%s: %s declares shape %s (%.0f bytes) but the file stores %llu bytes of it", path,
                   name, shape, declared, (unsigned long long)stored);
}

int sl_h5_open_input(const char *path, hid_t *file, sl_error *err)
{
    *file = -1;
    int rc = sl_input_check(path, err);
    if (rc) return rc;
    if (H5Fis_hdf5(path) <= 0) return sl_fail(err, SL_EINPUT, "%s: not an HDF5 file", path);
    *file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (*file < 0) return sl_fail(err, SL_EINPUT, "%s: cannot open as HDF5", path);
    return SL_OK;
}

int sl_h5_open_checked(hid_t file, const char *path, const char *name, hid_t *out, sl_error *err)
{
    *out = -1;
    int found;
    int rc = find_object(file, path, name, &found, err);
    if (rc || !found) return rc;
    hid_t d;
    rc = open_local(file, path, name, &d, err);
    if (rc) return rc;
    hid_t t = H5Dget_type(d), s = H5Dget_space(d);
    int rank = s >= 0 ? H5Sget_simple_extent_ndims(s) : -1;
    hsize_t dims[H5S_MAX_RANK];
    if (rank < 0 || rank > H5S_MAX_RANK || H5Sget_simple_extent_dims(s, dims, NULL) < 0 || t < 0)
        rc = sl_fail(err, SL_EINPUT, "%s: %s has no readable shape", path, name);
    if (!rc) rc = check_declared(path, d, name, rank, dims, H5Tget_size(t), err);
    if (t >= 0) H5Tclose(t);
    if (s >= 0) H5Sclose(s);
    if (rc) H5Dclose(d);
    else *out = d;
    return rc;
}

/* Opens an integer dataset of the given rank; dims receives its shape.
 * An enum of integers counts (h5py stores numpy's bool as FALSE=0,
 * TRUE=1), read as its values. */
static int open_int(sl_dataset *ds, const char *name, int rank, hsize_t *dims, int required, hid_t *out,
                    sl_error *err)
{
    *out = -1;
    int found;
    int rc = find_object(ds->file, ds->path, name, &found, err);
    if (rc) return rc;
    if (!found) {
        if (required) return sl_fail(err, SL_EINPUT, "%s: missing dataset %s", ds->path, name);
        return SL_OK;
    }
    hid_t d;
    rc = open_local(ds->file, ds->path, name, &d, err);
    if (rc) return rc;
    hid_t t = H5Dget_type(d), s = H5Dget_space(d);
    H5T_class_t cls = t >= 0 ? H5Tget_class(t) : H5T_NO_CLASS;
    int ok_type = cls == H5T_INTEGER || cls == H5T_ENUM;
    size_t esize = t >= 0 ? H5Tget_size(t) : 0;
    int r = s >= 0 ? H5Sget_simple_extent_ndims(s) : -1;
    if (r == rank) H5Sget_simple_extent_dims(s, dims, NULL);
    if (t >= 0) H5Tclose(t);
    if (s >= 0) H5Sclose(s);
    if (!ok_type) rc = sl_fail(err, SL_EINPUT, "%s: %s must hold integers", ds->path, name);
    else if (r != rank) rc = sl_fail(err, SL_EINPUT, "%s: %s has %d dimensions, expected %d", ds->path, name, r, rank);
    else rc = check_declared(ds->path, d, name, rank, dims, esize, err);
    if (rc) {
        H5Dclose(d);
        return rc;
    }
    *out = d;
    return SL_OK;
}

/* Reads rows [first, first+count) and columns [col, col+width) of a rank-1
 * (width 0) or rank-2 integer dataset as int64 (HDF5 converts any integer
 * type), so that range checks see the stored value rather than a clipped
 * one. */
static herr_t select_sample_rows(hid_t fs, const long *rows, long count, hsize_t col, hsize_t width)
{
    herr_t rc = H5Sselect_none(fs);
    for (long i = 0; rc >= 0 && i < count;) {
        long run = 1;
        while (i + run < count && rows[i + run] == rows[i] + run) run++;
        hsize_t start[2] = {(hsize_t)rows[i], col}, cnt[2] = {(hsize_t)run, width};
        rc = H5Sselect_hyperslab(fs, H5S_SELECT_OR, start, NULL, cnt, NULL);
        i += run;
    }
    return rc;
}

/* HDF5 keeps some state for every chunk a read touches (about 1.6 KB), so
 * a small file that declares a wide dataset in tiny chunks could make one
 * read of a few rows cost gigabytes. Reads touch at most this many chunks
 * at once; an ordinary batch (row chunks, or h5py's automatic ones) is
 * still one read. */
#define CHUNKS_PER_READ 4096

/* Rows and columns of one read, from the dataset's chunk shape: whole rows
 * while their chunks fit, else one row in runs of columns. */
static int read_piece_shape(hid_t d, long count, hsize_t width, int sampled, long *rows, hsize_t *cols)
{
    *rows = count, *cols = width;
    hid_t dcpl = H5Dget_create_plist(d);
    if (dcpl < 0) return -1;
    hsize_t chunk[2] = {1, 1};
    H5D_layout_t layout = H5Pget_layout(dcpl);
    int rank = layout == H5D_CHUNKED ? H5Pget_chunk(dcpl, 2, chunk) : 0;
    if (H5Pclose(dcpl) < 0 || layout < 0 || rank < 0) return -1;
    if (layout != H5D_CHUNKED) return 0;
    hsize_t across = width ? (width + chunk[1] - 1) / chunk[1] + 1 : 1; /* +1: a run may start mid-chunk */
    if (across > CHUNKS_PER_READ) {
        *rows = 1;
        *cols = chunk[1] * (CHUNKS_PER_READ - 1);
        return 0;
    }
    /* a sample's rows may each lie in a different chunk row */
    hsize_t down = (CHUNKS_PER_READ / across) * (sampled ? 1 : chunk[0]);
    if ((hsize_t)count > down) *rows = (long)down;
    return 0;
}

static int read_rows(sl_dataset *ds, hid_t d, const char *name, long first, long count, hsize_t col, hsize_t width,
                     int64_t *out, sl_error *err)
{
    hid_t fs = H5Dget_space(d);
    if (fs < 0) return sl_fail(err, SL_ERUNTIME, "%s: cannot read %s", ds->path, name);
    int rank = H5Sget_simple_extent_ndims(fs);
    long rows;
    hsize_t cols, whole[2] = {(hsize_t)count, width};
    hid_t ms = H5Screate_simple(rank, whole, NULL);
    herr_t rc = ms < 0 || rank < 1 ? -1 : read_piece_shape(d, count, width, ds->rows != NULL, &rows, &cols);
    for (long r = 0; rc >= 0 && r < count; r += rows) {
        long nr = count - r < rows ? count - r : rows;
        for (hsize_t c = 0; rc >= 0 && (c == 0 || c < width); c += cols) {
            hsize_t nc = width - c < cols ? width - c : cols;
            hsize_t at[2] = {(hsize_t)r, c}, cnt[2] = {(hsize_t)nr, nc}, start[2] = {(hsize_t)(first + r), col + c};
            rc = H5Sselect_hyperslab(ms, H5S_SELECT_SET, at, NULL, cnt, NULL);
            /* a sample: its rows, each run of adjacent ones as one block */
            if (rc >= 0)
                rc = ds->rows ? select_sample_rows(fs, ds->rows + first + r, nr, col + c, nc)
                              : H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, cnt, NULL);
            if (rc >= 0) rc = H5Dread(d, H5T_NATIVE_INT64, ms, fs, H5P_DEFAULT, out);
            if (!width) break;
        }
    }
    if (ms >= 0 && H5Sclose(ms) < 0) rc = -1;
    if (H5Sclose(fs) < 0) rc = -1;
    if (rc < 0) return sl_fail(err, SL_ERUNTIME, "%s: reading %s failed", ds->path, name);
    return SL_OK;
}

/* A whole rank-1 integer dataset of exactly n entries into int32. */
/* A vector of n integers in [lo, hi]; with shorter_ok it may hold fewer
 * (at least one), and the rest of *out is lo. */
static int read_vector(sl_dataset *ds, const char *name, long n, int required, int shorter_ok, int32_t **out, long lo,
                       long hi, sl_error *err)
{
    hsize_t dims[1];
    hid_t d;
    *out = NULL;
    int rc = open_int(ds, name, 1, dims, required, &d, err);
    if (rc || d < 0) return rc;
    long have = (long)dims[0];
    if (have != n && !(shorter_ok && have >= 1 && have < n)) {
        H5Dclose(d);
        return sl_fail(err, SL_EINPUT, "%s: %s has %llu entries, expected %s%ld", ds->path, name,
                       (unsigned long long)dims[0], shorter_ok ? "at most " : "", n);
    }
    int64_t *tmp = malloc((size_t)(n ? n : 1) * sizeof *tmp);
    *out = malloc((size_t)(n ? n : 1) * sizeof **out);
    if (!tmp || !*out) rc = sl_fail(err, SL_ERUNTIME, "%s: out of memory reading %s", ds->path, name);
    if (!rc && have) rc = read_rows(ds, d, name, 0, have, 0, 0, tmp, err);
    for (long i = have; !rc && i < n; i++) tmp[i] = lo;
    for (long i = 0; !rc && i < n; i++) {
        if (tmp[i] < lo || tmp[i] > hi) {
            rc = sl_fail(err, SL_EINPUT, "%s: %s[%ld] = %lld is outside [%ld, %ld]", ds->path, name, i,
                         (long long)tmp[i], lo, hi);
            break;
        }
        (*out)[i] = (int32_t)tmp[i];
    }
    free(tmp);
    H5Dclose(d);
    if (rc) { free(*out); *out = NULL; }
    return rc;
}

static int cmp_name_at(const void *a, const void *b, void *names)
{
    char **nm = names;
    int x = *(const int *)a, y = *(const int *)b, c = strcmp(nm[x], nm[y]);
    return c ? c : (x > y) - (x < y);
}

/* Empty or repeated family names: sorted once, so that 100,000 names cost
 * n log n comparisons, not n^2. */
static int check_family_names(sl_dataset *ds, const char *name, sl_error *err)
{
    int n = ds->n_families;
    for (int i = 0; i < n; i++)
        if (!ds->family_names[i][0]) return sl_fail(err, SL_EINPUT, "%s: %s[%d] is empty", ds->path, name, i);
    int *order = malloc((size_t)n * sizeof *order);
    if (!order) return sl_fail(err, SL_ERUNTIME, "out of memory");
    for (int i = 0; i < n; i++) order[i] = i;
    qsort_r(order, (size_t)n, sizeof *order, cmp_name_at, ds->family_names);
    int rc = SL_OK;
    for (int i = 1; i < n && !rc; i++)
        if (!strcmp(ds->family_names[order[i - 1]], ds->family_names[order[i]]))
            rc = sl_fail(err, SL_EINPUT, "%s: family name '%s' appears twice in %s", ds->path,
                         ds->family_names[order[i]], name);
    free(order);
    return rc;
}

static int read_family_names(sl_dataset *ds, sl_error *err)
{
    const char *name = "/families/names";
    int found;
    int rc = find_object(ds->file, ds->path, name, &found, err);
    if (rc) return rc;
    if (!found) return sl_fail(err, SL_EINPUT, "%s: missing dataset %s", ds->path, name);
    hid_t d;
    rc = open_local(ds->file, ds->path, name, &d, err);
    if (rc) return rc;
    hid_t ft = H5Dget_type(d), fs = H5Dget_space(d), mt = -1;
    hsize_t n = 0;
    if (ft < 0 || fs < 0 || H5Tget_class(ft) != H5T_STRING)
        rc = sl_fail(err, SL_EINPUT, "%s: %s must hold strings", ds->path, name);
    else if (H5Sget_simple_extent_ndims(fs) != 1)
        rc = sl_fail(err, SL_EINPUT, "%s: %s must be one-dimensional", ds->path, name);
    if (!rc) {
        H5Sget_simple_extent_dims(fs, &n, NULL);
        if (n == 0 || n > 100000) rc = sl_fail(err, SL_EINPUT, "%s: %s has %llu names", ds->path, name, (unsigned long long)n);
        if (!rc) rc = check_declared(ds->path, d, name, 1, &n, H5Tget_size(ft), err);
    }
    if (!rc) {
        ds->n_families = (int)n;
        ds->family_names = calloc(n, sizeof *ds->family_names);
        if (!ds->family_names) rc = sl_fail(err, SL_ERUNTIME, "out of memory");
    }
    if (!rc && H5Tis_variable_str(ft) > 0) {
        char **tmp = calloc(n, sizeof *tmp);
        mt = H5Tcopy(H5T_C_S1);
        /* HDF5 converts no charset into another: read UTF-8 as UTF-8 */
        if (!tmp || mt < 0 || H5Tset_size(mt, H5T_VARIABLE) < 0 || H5Tset_cset(mt, H5Tget_cset(ft)) < 0 || H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, tmp) < 0)
            rc = sl_fail(err, SL_EINPUT, "%s: cannot read %s", ds->path, name);
        for (hsize_t i = 0; !rc && i < n; i++) {
            ds->family_names[i] = strdup(tmp[i] ? tmp[i] : "");
            if (!ds->family_names[i]) rc = sl_fail(err, SL_ERUNTIME, "out of memory");
        }
        if (tmp && mt >= 0 && rc != SL_EINPUT) H5Dvlen_reclaim(mt, fs, H5P_DEFAULT, tmp);
        free(tmp);
    } else if (!rc) {
        size_t w = H5Tget_size(ft);
        char *buf = calloc(n, w + 1);
        mt = H5Tcopy(H5T_C_S1);
        if (!buf || mt < 0 || H5Tset_size(mt, w + 1) < 0 || H5Tset_cset(mt, H5Tget_cset(ft)) < 0 || H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
            rc = sl_fail(err, SL_EINPUT, "%s: cannot read %s", ds->path, name);
        for (hsize_t i = 0; !rc && i < n; i++) {
            ds->family_names[i] = strndup(buf + i * (w + 1), w);
            if (!ds->family_names[i]) rc = sl_fail(err, SL_ERUNTIME, "out of memory");
        }
        free(buf);
    }
    if (!rc) rc = check_family_names(ds, name, err);
    if (mt >= 0) H5Tclose(mt);
    if (ft >= 0) H5Tclose(ft);
    if (fs >= 0) H5Sclose(fs);
    H5Dclose(d);
    return rc;
}

/* The validation pass: ids in range, lengths inferred or checked. Where
 * /lengths gives them only columns [0, longest length) are read, not the
 * padded width; a slab holds at most SLAB_TOKENS values, so a row longer
 * than that is read in pieces. */
static int scan_tokens(sl_dataset *ds, sl_error *err)
{
    long W = ds->L;
    if (ds->has_lengths) {
        W = 1;
        for (long e = 0; e < ds->n; e++) W = ds->lengths[e] > W ? ds->lengths[e] : W;
    }
    long cols = W < SLAB_TOKENS ? W : SLAB_TOKENS, per = SLAB_TOKENS / cols;
    if (per < 1) per = 1;
    if (per > ds->n) per = ds->n;
    int64_t *buf = malloc((size_t)per * (size_t)cols * sizeof *buf);
    long *last = ds->has_lengths ? NULL : malloc((size_t)per * sizeof *last); /* one past the last non-pad */
    int rc = buf && (ds->has_lengths || last) ? SL_OK : sl_fail(err, SL_ERUNTIME, "%s: out of memory scanning /tokens", ds->path);
    for (long first = 0; !rc && first < ds->n; first += per) {
        long cnt = ds->n - first < per ? ds->n - first : per;
        for (long e = 0; last && e < cnt; e++) last[e] = 0;
        for (long c0 = 0; !rc && c0 < W; c0 += cols) {
            long cw = W - c0 < cols ? W - c0 : cols;
            rc = read_rows(ds, ds->tokens, "/tokens", first, cnt, (hsize_t)c0, (hsize_t)cw, buf, err);
            for (long e = 0; !rc && e < cnt; e++) {
                const int64_t *row = buf + e * cw;
                long ex = first + e, end = last ? cw : ds->lengths[ex] - c0 < cw ? ds->lengths[ex] - c0 : cw;
                /* without /lengths every id must be valid: those past the
                 * last non-pad one are the pad id, which is */
                for (long t = 0; t < end; t++) {
                    if (last && row[t] != ds->pad_id) last[e] = c0 + t + 1;
                    if (row[t] < 0 || row[t] >= ds->vocab_size) {
                        rc = sl_fail(err, SL_EINPUT, "%s: /tokens[%ld, %ld] = %lld is outside the vocabulary [0, %d)",
                                     ds->path, ex, c0 + t, (long long)row[t], ds->vocab_size);
                        break;
                    }
                }
            }
        }
        for (long e = 0; !rc && last && e < cnt; e++) {
            if (!last[e])
                rc = sl_fail(err, SL_EINPUT, "%s: example %ld has no non-pad token (and there is no /lengths)", ds->path,
                             first + e);
            else
                ds->lengths[first + e] = (int32_t)last[e];
        }
    }
    free(last);
    free(buf);
    return rc;
}

/* /families is optional (design.md section 3): absent, the dataset has no
 * families; present, /families/names and /families/of_token are required
 * and checked as before. */
static int read_families_group(sl_dataset *ds, sl_error *err)
{
    int found;
    hsize_t dims[2];
    int rc = find_object(ds->file, ds->path, "/families", &found, err);
    if (rc || !found) return rc;
    rc = read_family_names(ds, err);
    /* shorter than the model's vocabulary: a model may pad its embedding
     * (MambaLMHeadModel rounds vocab_size up to pad_vocab_size_multiple),
     * and the ids past the table belong to no family */
    if (!rc) rc = read_vector(ds, "/families/of_token", ds->vocab_size, 1, 1, &ds->family_of_token, -1,
                              ds->n_families - 1, err);
    if (!rc) rc = open_int(ds, "/families/of_position", 2, dims, 0, &ds->of_position, err);
    if (!rc && ds->of_position >= 0 && ((long)dims[0] != ds->n || (int)dims[1] != ds->L))
        rc = sl_fail(err, SL_EINPUT, "%s: /families/of_position is %llu x %llu, expected %ld x %d (as /tokens)", ds->path,
                     (unsigned long long)dims[0], (unsigned long long)dims[1], ds->n, ds->L);
    return rc;
}

static int open_dataset(sl_dataset *ds, const char *path, int vocab_size, int pad_id, int need_labels, sl_error *err)
{
    memset(ds, 0, sizeof *ds);
    ds->file = ds->tokens = ds->of_position = -1;
    ds->vocab_size = vocab_size;
    ds->pad_id = pad_id;
    ds->path = strdup(path);
    if (!ds->path) return sl_fail(err, SL_ERUNTIME, "out of memory");
    int rc = sl_h5_open_input(path, &ds->file, err);
    if (rc) return rc;

    hsize_t dims[2];
    rc = open_int(ds, "/tokens", 2, dims, 1, &ds->tokens, err);
    if (rc) return rc;
    if (dims[0] == 0 || dims[1] == 0)
        return sl_fail(err, SL_EINPUT, "%s: /tokens is empty (%llu x %llu)", path, (unsigned long long)dims[0],
                       (unsigned long long)dims[1]);
    if (dims[1] > (1u << 30) || dims[0] > (1ull << 40))
        return sl_fail(err, SL_EINPUT, "%s: /tokens shape %llu x %llu is too large", path,
                       (unsigned long long)dims[0], (unsigned long long)dims[1]);
    ds->n = (long)dims[0];
    ds->L = (int)dims[1];

    rc = read_vector(ds, "/labels", ds->n, need_labels, 0, &ds->labels, 0, 1, err);
    if (!rc) rc = read_vector(ds, "/lengths", ds->n, 0, 0, &ds->lengths, 1, ds->L, err);
    if (rc) return rc;
    ds->has_lengths = ds->lengths != NULL;
    if (!ds->lengths && !(ds->lengths = malloc((size_t)ds->n * sizeof *ds->lengths)))
        return sl_fail(err, SL_ERUNTIME, "out of memory");
    rc = read_vector(ds, "/split", ds->n, 0, 0, &ds->split, 0, 1, err);
    if (!rc) rc = read_families_group(ds, err);
    if (!rc) rc = scan_tokens(ds, err);
    return rc;
}

int sl_dataset_open(sl_dataset *ds, const char *path, int vocab_size, int pad_id, sl_error *err)
{
    return open_dataset(ds, path, vocab_size, pad_id, 1, err);
}

int sl_dataset_open_tokens(sl_dataset *ds, const char *path, int vocab_size, int pad_id, sl_error *err)
{
    return open_dataset(ds, path, vocab_size, pad_id, 0, err);
}

int sl_dataset_need_families(const sl_dataset *ds, const char *what, sl_error *err)
{
    if (ds->n_families > 0) return SL_OK;
    return sl_fail(err, SL_EINPUT, "%s: has no /families, which %s needs (/families/names and /families/of_token)",
                   ds->path, what);
}

void sl_dataset_close(sl_dataset *ds)
{
    if (ds->tokens >= 0) H5Dclose(ds->tokens);
    if (ds->of_position >= 0) H5Dclose(ds->of_position);
    if (ds->file >= 0) H5Fclose(ds->file);
    for (int i = 0; i < ds->n_families; i++) free(ds->family_names ? ds->family_names[i] : NULL);
    free(ds->family_names);
    free(ds->family_of_token);
    free(ds->labels);
    free(ds->lengths);
    free(ds->split);
    free(ds->rows);
    free(ds->path);
    memset(ds, 0, sizeof *ds);
    ds->file = ds->tokens = ds->of_position = -1;
}

/* Reads a slab as int64 and narrows it; ids were range-checked on open. */
static int read_narrow(sl_dataset *ds, hid_t d, const char *name, long first, long count, int32_t *out,
                       sl_error *err)
{
    if (first < 0 || count < 0 || first + count > ds->n)
        return sl_fail(err, SL_ERUNTIME, "%s: examples %ld..%ld are outside [0, %ld)", ds->path, first,
                       first + count, ds->n);
    size_t total = (size_t)count * (size_t)ds->L;
    int64_t *buf = malloc((total ? total : 1) * sizeof *buf);
    if (!buf) return sl_fail(err, SL_ERUNTIME, "%s: out of memory reading %s", ds->path, name);
    int rc = count ? read_rows(ds, d, name, first, count, 0, (hsize_t)ds->L, buf, err) : SL_OK;
    /* saturate, so that a later range check still sees an out-of-range id */
    for (size_t i = 0; !rc && i < total; i++)
        out[i] = buf[i] > INT32_MAX ? INT32_MAX : buf[i] < INT32_MIN ? INT32_MIN : (int32_t)buf[i];
    free(buf);
    return rc;
}

static int cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

/* rows[i] = v[rows[i]]: a per-example vector narrowed to the sample. */
static void narrow_vector(int32_t *v, const long *rows, long n)
{
    for (long i = 0; v && i < n; i++) v[i] = v[rows[i]];
}

int sl_dataset_sample(sl_dataset *ds, long first, long count, long size, uint64_t seed, sl_error *err)
{
    if (ds->rows || first < 0 || count < 1 || first + count > ds->n || size < 1 || size > count)
        return sl_fail(err, SL_ERUNTIME, "%s: cannot sample %ld of examples %ld..%ld", ds->path, size, first,
                       first + count);
    long *pick = malloc((size_t)count * sizeof *pick);
    if (!pick) return sl_fail(err, SL_ERUNTIME, "%s: out of memory for a sample of %ld examples", ds->path, size);
    /* the first `size` steps of a seeded Fisher-Yates shuffle, then file order */
    sl_rng r = sl_rng_seed(seed);
    for (long i = 0; i < count; i++) pick[i] = first + i;
    for (long i = 0; i < size; i++) {
        long j = i + (long)sl_rng_below(&r, (uint64_t)(count - i)), t = pick[i];
        pick[i] = pick[j];
        pick[j] = t;
    }
    qsort(pick, (size_t)size, sizeof *pick, cmp_long);
    long *rows = realloc(pick, (size_t)size * sizeof *rows);
    ds->rows = rows ? rows : pick;
    narrow_vector(ds->labels, ds->rows, size); /* ascending rows: each read is at or after its write */
    narrow_vector(ds->lengths, ds->rows, size);
    narrow_vector(ds->split, ds->rows, size);
    ds->sampled_from = count;
    ds->n = size;
    return SL_OK;
}

int sl_dataset_read_tokens(sl_dataset *ds, long first, long count, int32_t *tokens, sl_error *err)
{
    int rc = read_narrow(ds, ds->tokens, "/tokens", first, count, tokens, err);
    /* Padding beyond each length is replaced by the pad id, so that no
     * consumer ever sees an unchecked id. */
    for (long e = 0; !rc && e < count; e++)
        for (int t = ds->lengths[first + e]; t < ds->L; t++) tokens[e * ds->L + t] = ds->pad_id;
    return rc;
}

int sl_dataset_read_families(sl_dataset *ds, long first, long count, const int32_t *tokens, int32_t *fam,
                             sl_error *err)
{
    int rc = sl_dataset_need_families(ds, "a token family", err);
    if (rc) return rc;
    size_t total = (size_t)count * (size_t)ds->L;
    for (size_t i = 0; i < total; i++) fam[i] = ds->family_of_token[tokens[i]];
    if (ds->of_position < 0) return SL_OK;
    int32_t *pos = malloc((total ? total : 1) * sizeof *pos);
    if (!pos) return sl_fail(err, SL_ERUNTIME, "out of memory");
    rc = read_narrow(ds, ds->of_position, "/families/of_position", first, count, pos, err);
    for (size_t i = 0; !rc && i < total; i++) {
        if (pos[i] >= ds->n_families) {
            rc = sl_fail(err, SL_EINPUT, "%s: /families/of_position[%ld, %ld] = %d is not a family index (%d families)",
                         ds->path, first + (long)(i / ds->L), (long)(i % ds->L), pos[i], ds->n_families);
            break;
        }
        if (pos[i] >= 0) fam[i] = pos[i];
    }
    free(pos);
    return rc;
}

int sl_dataset_concept(sl_dataset *ds, const char *name, int *per_token, sl_error *err)
{
    char path[300];
    snprintf(path, sizeof path, "/concepts/%s", name);
    int found = 0;
    int rc = strchr(name, '/') ? SL_OK : find_object(ds->file, ds->path, path, &found, err);
    if (rc) return rc;
    if (!found) return sl_fail(err, SL_EINPUT, "%s: no dataset %s (a --target needs /concepts/NAME)", ds->path, path);
    /* [N] per example or [N, L] per position: the rank decides */
    hid_t probe;
    rc = open_local(ds->file, ds->path, path, &probe, err);
    if (rc) return rc;
    hid_t space = H5Dget_space(probe);
    int rank = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
    if (space >= 0) H5Sclose(space);
    if (probe >= 0) H5Dclose(probe);
    if (rank != 1 && rank != 2)
        return sl_fail(err, SL_EINPUT, "%s: %s must be [N] or [N, L] integers", ds->path, path);
    hsize_t dims[2];
    hid_t d;
    rc = open_int(ds, path, rank, dims, 1, &d, err);
    *per_token = rank == 2;
    if (!rc && (long)dims[0] != ds->n)
        rc = sl_fail(err, SL_EINPUT, "%s: %s has %llu rows, expected %ld", ds->path, path, (unsigned long long)dims[0], ds->n);
    if (!rc && rank == 2 && (int)dims[1] != ds->L)
        rc = sl_fail(err, SL_EINPUT, "%s: %s is %llu x %llu, expected %ld x %d", ds->path, path,
                     (unsigned long long)dims[0], (unsigned long long)dims[1], ds->n, ds->L);
    if (d >= 0) H5Dclose(d);
    return rc;
}

int sl_dataset_read_concept(sl_dataset *ds, const char *name, long first, long count, int32_t *out, sl_error *err)
{
    char path[300];
    int per_token = 0;
    snprintf(path, sizeof path, "/concepts/%s", name);
    int rc = sl_dataset_concept(ds, name, &per_token, err);
    hid_t d = -1;
    if (!rc) rc = open_local(ds->file, ds->path, path, &d, err);
    size_t total = (size_t)count * (per_token ? (size_t)ds->L : 1);
    int64_t *buf = rc ? NULL : malloc((total ? total : 1) * sizeof *buf);
    if (!rc && !buf) rc = sl_fail(err, SL_ERUNTIME, "out of memory");
    if (!rc) rc = read_rows(ds, d, path, first, count, 0, per_token ? (hsize_t)ds->L : 0, buf, err);
    for (size_t i = 0; !rc && i < total; i++) {
        if (buf[i] < INT32_MIN || buf[i] > INT32_MAX)
            rc = sl_fail(err, SL_EINPUT, "%s: %s holds %lld, outside 32-bit integers", ds->path, path, (long long)buf[i]);
        out[i] = (int32_t)buf[i];
    }
    free(buf);
    if (d >= 0) H5Dclose(d);
    return rc;
}

int sl_dataset_vocab(const char *path, int *vocab, sl_error *err)
{
    const char *name = "/families/of_token";
    hid_t f;
    int rc = sl_h5_open_input(path, &f, err);
    if (rc) return rc;
    int found;
    hsize_t n = 0;
    hid_t d = -1;
    rc = find_object(f, path, name, &found, err);
    if (!rc && found) rc = open_local(f, path, name, &d, err);
    if (d >= 0) {
        hid_t s = H5Dget_space(d);
        if (s >= 0 && H5Sget_simple_extent_ndims(s) == 1) H5Sget_simple_extent_dims(s, &n, NULL);
        if (s >= 0) H5Sclose(s);
        H5Dclose(d);
    }
    H5Fclose(f);
    if (rc) return rc;
    if (n < 1)
        return sl_fail(err, SL_EINPUT, "%s: missing dataset %s: baseline's bag of families needs /families, and its "
                                       "vocabulary size comes from /families/of_token", path, name);
    if (n > (1u << 30))
        return sl_fail(err, SL_EINPUT, "%s: %s has %llu entries, more than a vocabulary of 2^30 tokens", path, name,
                       (unsigned long long)n);
    *vocab = (int)n;
    return SL_OK;
}
