#include "core/dataset.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Examples per slab in the validation pass: bounded memory, few reads. */
#define SLAB_TOKENS (1L << 22)

void sl_h5_quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

/* Opens an integer dataset of the given rank; dims receives its shape. */
static int open_int(sl_dataset *ds, const char *name, int rank, hsize_t *dims, int required, hid_t *out,
                    sl_error *err)
{
    *out = -1;
    htri_t exists = H5Lexists(ds->file, name, H5P_DEFAULT);
    if (exists <= 0 && strchr(name + 1, '/')) {
        /* H5Lexists fails rather than answering 0 when a parent group is missing */
        char parent[128];
        snprintf(parent, sizeof parent, "%.*s", (int)(strrchr(name, '/') - name), name);
        exists = H5Lexists(ds->file, parent, H5P_DEFAULT) > 0 ? H5Lexists(ds->file, name, H5P_DEFAULT) : 0;
    }
    if (exists <= 0) {
        if (required) return sl_fail(err, SL_EINPUT, "%s: missing dataset %s", ds->path, name);
        return SL_OK;
    }
    hid_t d = H5Dopen2(ds->file, name, H5P_DEFAULT);
    if (d < 0) return sl_fail(err, SL_EINPUT, "%s: %s is not a readable dataset", ds->path, name);
    hid_t t = H5Dget_type(d), s = H5Dget_space(d);
    int ok_type = t >= 0 && H5Tget_class(t) == H5T_INTEGER;
    int r = s >= 0 ? H5Sget_simple_extent_ndims(s) : -1;
    if (r == rank) H5Sget_simple_extent_dims(s, dims, NULL);
    if (t >= 0) H5Tclose(t);
    if (s >= 0) H5Sclose(s);
    if (!ok_type) {
        H5Dclose(d);
        return sl_fail(err, SL_EINPUT, "%s: %s must hold integers", ds->path, name);
    }
    if (r != rank) {
        H5Dclose(d);
        return sl_fail(err, SL_EINPUT, "%s: %s has %d dimensions, expected %d", ds->path, name, r, rank);
    }
    *out = d;
    return SL_OK;
}

/* Reads rows [first, first+count) of a rank-1 or rank-2 integer dataset as
 * int64 (HDF5 converts any integer type), so that range checks see the
 * stored value rather than a clipped one. */
static int read_rows(sl_dataset *ds, hid_t d, const char *name, long first, long count, hsize_t width,
                     int64_t *out, sl_error *err)
{
    hid_t fs = H5Dget_space(d);
    if (fs < 0) return sl_fail(err, SL_ERUNTIME, "%s: cannot read %s", ds->path, name);
    int rank = H5Sget_simple_extent_ndims(fs);
    hsize_t start[2] = {(hsize_t)first, 0}, cnt[2] = {(hsize_t)count, width};
    hid_t ms = H5Screate_simple(rank, cnt, NULL);
    herr_t rc = ms < 0 ? -1 : H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, cnt, NULL);
    if (rc >= 0) rc = H5Dread(d, H5T_NATIVE_INT64, ms, fs, H5P_DEFAULT, out);
    if (ms >= 0) H5Sclose(ms);
    H5Sclose(fs);
    if (rc < 0) return sl_fail(err, SL_ERUNTIME, "%s: reading %s failed", ds->path, name);
    return SL_OK;
}

/* A whole rank-1 integer dataset of exactly n entries into int32. */
static int read_vector(sl_dataset *ds, const char *name, long n, int required, int32_t **out, long lo, long hi,
                       sl_error *err)
{
    hsize_t dims[1];
    hid_t d;
    *out = NULL;
    int rc = open_int(ds, name, 1, dims, required, &d, err);
    if (rc || d < 0) return rc;
    if ((long)dims[0] != n) {
        H5Dclose(d);
        return sl_fail(err, SL_EINPUT, "%s: %s has %llu entries, expected %ld", ds->path, name,
                       (unsigned long long)dims[0], n);
    }
    int64_t *tmp = malloc((size_t)(n ? n : 1) * sizeof *tmp);
    *out = malloc((size_t)(n ? n : 1) * sizeof **out);
    if (!tmp || !*out) rc = sl_fail(err, SL_ERUNTIME, "%s: out of memory reading %s", ds->path, name);
    if (!rc && n) rc = read_rows(ds, d, name, 0, n, 0, tmp, err);
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

static int read_family_names(sl_dataset *ds, sl_error *err)
{
    const char *name = "/families/names";
    if (H5Lexists(ds->file, "/families", H5P_DEFAULT) <= 0 || H5Lexists(ds->file, name, H5P_DEFAULT) <= 0)
        return sl_fail(err, SL_EINPUT, "%s: missing dataset %s", ds->path, name);
    hid_t d = H5Dopen2(ds->file, name, H5P_DEFAULT);
    if (d < 0) return sl_fail(err, SL_EINPUT, "%s: %s is not a readable dataset", ds->path, name);
    hid_t ft = H5Dget_type(d), fs = H5Dget_space(d), mt = -1;
    int rc = SL_OK;
    hsize_t n = 0;
    if (ft < 0 || fs < 0 || H5Tget_class(ft) != H5T_STRING)
        rc = sl_fail(err, SL_EINPUT, "%s: %s must hold strings", ds->path, name);
    else if (H5Sget_simple_extent_ndims(fs) != 1)
        rc = sl_fail(err, SL_EINPUT, "%s: %s must be one-dimensional", ds->path, name);
    if (!rc) {
        H5Sget_simple_extent_dims(fs, &n, NULL);
        if (n == 0 || n > 100000) rc = sl_fail(err, SL_EINPUT, "%s: %s has %llu names", ds->path, name, (unsigned long long)n);
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
    for (int i = 0; !rc && i < ds->n_families; i++) {
        if (!ds->family_names[i][0]) rc = sl_fail(err, SL_EINPUT, "%s: %s[%d] is empty", ds->path, name, i);
        for (int j = 0; !rc && j < i; j++)
            if (!strcmp(ds->family_names[i], ds->family_names[j]))
                rc = sl_fail(err, SL_EINPUT, "%s: family name '%s' appears twice in %s", ds->path,
                             ds->family_names[i], name);
    }
    if (mt >= 0) H5Tclose(mt);
    if (ft >= 0) H5Tclose(ft);
    if (fs >= 0) H5Sclose(fs);
    H5Dclose(d);
    return rc;
}

/* The validation pass: ids in range, lengths inferred or checked. */
static int scan_tokens(sl_dataset *ds, sl_error *err)
{
    long per = SLAB_TOKENS / ds->L;
    if (per < 1) per = 1;
    if (per > ds->n) per = ds->n;
    int64_t *buf = malloc((size_t)per * (size_t)ds->L * sizeof *buf);
    if (!buf) return sl_fail(err, SL_ERUNTIME, "%s: out of memory scanning /tokens", ds->path);
    int rc = SL_OK;
    for (long first = 0; !rc && first < ds->n; first += per) {
        long cnt = ds->n - first < per ? ds->n - first : per;
        rc = read_rows(ds, ds->tokens, "/tokens", first, cnt, (hsize_t)ds->L, buf, err);
        for (long e = 0; !rc && e < cnt; e++) {
            const int64_t *row = buf + e * ds->L;
            long ex = first + e;
            int len = ds->L;
            if (!ds->has_lengths) {
                while (len > 0 && row[len - 1] == ds->pad_id) len--;
                if (len == 0) {
                    rc = sl_fail(err, SL_EINPUT, "%s: example %ld has no non-pad token (and there is no /lengths)",
                                 ds->path, ex);
                    break;
                }
                ds->lengths[ex] = len;
            }
            len = ds->lengths[ex];
            for (int t = 0; t < len; t++)
                if (row[t] < 0 || row[t] >= ds->vocab_size) {
                    rc = sl_fail(err, SL_EINPUT, "%s: /tokens[%ld, %d] = %lld is outside the vocabulary [0, %d)",
                                 ds->path, ex, t, (long long)row[t], ds->vocab_size);
                    break;
                }
        }
    }
    free(buf);
    return rc;
}

int sl_dataset_open(sl_dataset *ds, const char *path, int vocab_size, int pad_id, sl_error *err)
{
    memset(ds, 0, sizeof *ds);
    ds->file = ds->tokens = ds->of_position = -1;
    ds->vocab_size = vocab_size;
    ds->pad_id = pad_id;
    ds->path = strdup(path);
    if (!ds->path) return sl_fail(err, SL_ERUNTIME, "out of memory");
    FILE *probe = fopen(path, "rb");
    if (!probe) return sl_fail(err, SL_EINPUT, "%s: cannot open", path);
    fclose(probe);
    if (H5Fis_hdf5(path) <= 0) return sl_fail(err, SL_EINPUT, "%s: not an HDF5 file", path);
    ds->file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (ds->file < 0) return sl_fail(err, SL_EINPUT, "%s: cannot open as HDF5", path);

    hsize_t dims[2];
    int rc = open_int(ds, "/tokens", 2, dims, 1, &ds->tokens, err);
    if (rc) return rc;
    if (dims[0] == 0 || dims[1] == 0)
        return sl_fail(err, SL_EINPUT, "%s: /tokens is empty (%llu x %llu)", path, (unsigned long long)dims[0],
                       (unsigned long long)dims[1]);
    if (dims[1] > (1u << 30) || dims[0] > (1ull << 40))
        return sl_fail(err, SL_EINPUT, "%s: /tokens shape %llu x %llu is too large", path,
                       (unsigned long long)dims[0], (unsigned long long)dims[1]);
    ds->n = (long)dims[0];
    ds->L = (int)dims[1];

    rc = read_vector(ds, "/labels", ds->n, 1, &ds->labels, 0, 1, err);
    if (!rc) rc = read_vector(ds, "/lengths", ds->n, 0, &ds->lengths, 1, ds->L, err);
    if (rc) return rc;
    ds->has_lengths = ds->lengths != NULL;
    if (!ds->lengths && !(ds->lengths = malloc((size_t)ds->n * sizeof *ds->lengths)))
        return sl_fail(err, SL_ERUNTIME, "out of memory");
    rc = read_vector(ds, "/split", ds->n, 0, &ds->split, 0, 1, err);
    if (!rc) rc = read_family_names(ds, err);
    if (!rc) rc = read_vector(ds, "/families/of_token", vocab_size, 1, &ds->family_of_token, -1,
                              ds->n_families - 1, err);
    if (!rc) rc = open_int(ds, "/families/of_position", 2, dims, 0, &ds->of_position, err);
    if (!rc && ds->of_position >= 0 && ((long)dims[0] != ds->n || (int)dims[1] != ds->L))
        rc = sl_fail(err, SL_EINPUT, "%s: /families/of_position is %llu x %llu, expected %ld x %d (as /tokens)", path,
                     (unsigned long long)dims[0], (unsigned long long)dims[1], ds->n, ds->L);
    if (!rc) rc = scan_tokens(ds, err);
    return rc;
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
    int rc = count ? read_rows(ds, d, name, first, count, (hsize_t)ds->L, buf, err) : SL_OK;
    /* saturate, so that a later range check still sees an out-of-range id */
    for (size_t i = 0; !rc && i < total; i++)
        out[i] = buf[i] > INT32_MAX ? INT32_MAX : buf[i] < INT32_MIN ? INT32_MIN : (int32_t)buf[i];
    free(buf);
    return rc;
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
    size_t total = (size_t)count * (size_t)ds->L;
    for (size_t i = 0; i < total; i++) fam[i] = ds->family_of_token[tokens[i]];
    if (ds->of_position < 0) return SL_OK;
    int32_t *pos = malloc((total ? total : 1) * sizeof *pos);
    if (!pos) return sl_fail(err, SL_ERUNTIME, "out of memory");
    int rc = read_narrow(ds, ds->of_position, "/families/of_position", first, count, pos, err);
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
    if (strchr(name, '/') || H5Lexists(ds->file, "/concepts", H5P_DEFAULT) <= 0
        || H5Lexists(ds->file, path, H5P_DEFAULT) <= 0)
        return sl_fail(err, SL_EINPUT, "%s: no dataset %s (a --target needs /concepts/NAME)", ds->path, path);
    /* [N] per example or [N, L] per position: the rank decides */
    hid_t probe = H5Dopen2(ds->file, path, H5P_DEFAULT), space = probe >= 0 ? H5Dget_space(probe) : -1;
    int rank = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
    if (space >= 0) H5Sclose(space);
    if (probe >= 0) H5Dclose(probe);
    if (rank != 1 && rank != 2)
        return sl_fail(err, SL_EINPUT, "%s: %s must be [N] or [N, L] integers", ds->path, path);
    hsize_t dims[2];
    hid_t d;
    int rc = open_int(ds, path, rank, dims, 1, &d, err);
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
    hid_t d = rc ? -1 : H5Dopen2(ds->file, path, H5P_DEFAULT);
    if (!rc && d < 0) rc = sl_fail(err, SL_EINPUT, "%s: cannot open %s", ds->path, path);
    size_t total = (size_t)count * (per_token ? (size_t)ds->L : 1);
    int64_t *buf = rc ? NULL : malloc((total ? total : 1) * sizeof *buf);
    if (!rc && !buf) rc = sl_fail(err, SL_ERUNTIME, "out of memory");
    if (!rc) rc = read_rows(ds, d, path, first, count, per_token ? (hsize_t)ds->L : 0, buf, err);
    for (size_t i = 0; !rc && i < total; i++) {
        if (buf[i] < INT32_MIN || buf[i] > INT32_MAX)
            rc = sl_fail(err, SL_EINPUT, "%s: %s holds %lld, outside 32-bit integers", ds->path, path, (long long)buf[i]);
        out[i] = (int32_t)buf[i];
    }
    free(buf);
    if (d >= 0) H5Dclose(d);
    return rc;
}
