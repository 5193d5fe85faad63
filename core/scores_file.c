#include "core/scores_file.h"

#include <hdf5.h>
#include <math.h>
#include <stdlib.h>

/* Dataset `name` of the file: present, a vector of exactly count values
 * of class cls (32-bit when a float), read into buf as `as`. */
static int read_vector(hid_t file, const char *path, const char *name, H5T_class_t cls, hid_t as, long count,
                       void *buf, sl_error *err)
{
    hid_t d;
    int rc = sl_h5_open_checked(file, path, name, &d, err);
    if (rc) return rc;
    if (d < 0)
        return sl_fail(err, SL_EINPUT, "%s: no dataset %s (not a file of seqlens eval -o, which writes /logits, "
                                       "/labels and /lengths)", path, name);
    hid_t t = H5Dget_type(d), s = H5Dget_space(d);
    hsize_t n = 0;
    int rank = s >= 0 ? H5Sget_simple_extent_ndims(s) : -1;
    if (rank != 1 || H5Sget_simple_extent_dims(s, &n, NULL) < 0)
        rc = sl_fail(err, SL_EINPUT, "%s: %s is not a vector (one value per example)", path, name);
    else if ((long)n != count)
        rc = sl_fail(err, SL_EINPUT, "%s: %s holds %llu examples, the %ld selected here: not eval's scores of the "
                                     "same examples (--examples)", path, name, (unsigned long long)n, count);
    else if (t < 0 || H5Tget_class(t) != cls || (cls == H5T_FLOAT && H5Tget_size(t) != 4))
        rc = sl_fail(err, SL_EINPUT, "%s: %s is not stored as %s", path, name,
                     cls == H5T_FLOAT ? "32-bit floats (eval's logits)" : "integers");
    else if (H5Dread(d, as, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
        rc = sl_fail(err, SL_EINPUT, "%s: cannot read %s", path, name);
    if (t >= 0) H5Tclose(t);
    if (s >= 0) H5Sclose(s);
    H5Dclose(d);
    return rc;
}

/* Example i of the run (ds's first + i) is the file's row map[i] (map
 * NULL: row i), and the file's rows are examples file_first.. of the data:
 * each one's label and length must be the dataset's. */
static int check_examples(const char *path, const sl_dataset *ds, long first, long count, const long *map,
                          long file_first, long n_file, const int32_t *labels, const int32_t *lengths, sl_error *err)
{
    for (long i = 0; i < count; i++) {
        long r = map ? map[i] : i;
        int lab = labels[r] != ds->labels[first + i];
        if (lab || lengths[r] != ds->lengths[first + i])
            return sl_fail(err, SL_EINPUT, "%s: example %ld has %s %d there and %d in %s: not eval's scores of these "
                                           "examples of this data (--examples %ld:%ld)", path, file_first + r,
                           lab ? "label" : "length", lab ? labels[r] : lengths[r],
                           lab ? ds->labels[first + i] : ds->lengths[first + i], ds->path, file_first,
                           file_first + n_file);
    }
    return SL_OK;
}

/* The file's n_file rows read, checked and the logits of the run's count
 * examples picked (example i: row map[i], or i). */
static int read_rows(const char *path, const sl_dataset *ds, long first, long count, long file_first, long n_file,
                     const long *map, float *logits, sl_error *err)
{
    if (!ds->labels || first < 0 || count < 1 || first + count > ds->n || n_file < count)
        return sl_fail(err, SL_EINPUT, "%s: no examples %ld:%ld in %s to match", path, first, first + count, ds->path);
    int32_t *labels = malloc((size_t)n_file * sizeof *labels), *lengths = malloc((size_t)n_file * sizeof *lengths);
    float *all = map ? malloc((size_t)n_file * sizeof *all) : logits;
    hid_t file = -1;
    int rc = labels && lengths && all ? SL_OK : sl_fail(err, SL_ERUNTIME, "out of memory for %ld examples", n_file);
    if (!rc) rc = sl_h5_open_input(path, &file, err);
    if (!rc) rc = read_vector(file, path, "/logits", H5T_FLOAT, H5T_NATIVE_FLOAT, n_file, all, err);
    if (!rc) rc = read_vector(file, path, "/labels", H5T_INTEGER, H5T_NATIVE_INT32, n_file, labels, err);
    if (!rc) rc = read_vector(file, path, "/lengths", H5T_INTEGER, H5T_NATIVE_INT32, n_file, lengths, err);
    if (!rc) rc = check_examples(path, ds, first, count, map, file_first, n_file, labels, lengths, err);
    for (long i = 0; !rc && i < count; i++) {
        long r = map ? map[i] : i;
        logits[i] = all[r];
        if (!isfinite(all[r]))
            rc = sl_fail(err, SL_EINPUT, "%s: the logit of example %ld is %s (eval writes only finite ones)", path,
                         file_first + r, isnan(all[r]) ? "NaN" : "infinite");
    }
    if (file >= 0 && H5Fclose(file) < 0 && !rc) rc = sl_fail(err, SL_ERUNTIME, "%s: cannot close", path);
    free(labels);
    free(lengths);
    if (map) free(all);
    return rc;
}

int sl_scores_file_read(const char *path, const sl_dataset *ds, long first, long count, float *logits, sl_error *err)
{
    return read_rows(path, ds, first, count, first, count, NULL, logits, err);
}

int sl_scores_file_read_sample(const char *path, const sl_dataset *ds, long selected_first, float *logits,
                               sl_error *err)
{
    if (!ds->rows) return sl_scores_file_read(path, ds, 0, ds->n, logits, err);
    long *map = malloc((size_t)ds->n * sizeof *map);
    if (!map) return sl_fail(err, SL_ERUNTIME, "out of memory for %ld examples", ds->n);
    for (long i = 0; i < ds->n; i++) map[i] = ds->rows[i] - selected_first;
    int rc = read_rows(path, ds, 0, ds->n, selected_first, ds->sampled_from, map, logits, err);
    free(map);
    return rc;
}
