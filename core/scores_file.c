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

/* The first example whose label or length differs from the dataset's. */
static int check_examples(const char *path, const sl_dataset *ds, long first, long count, const int32_t *labels,
                          const int32_t *lengths, sl_error *err)
{
    for (long i = 0; i < count; i++) {
        int lab = labels[i] != ds->labels[first + i];
        if (lab || lengths[i] != ds->lengths[first + i])
            return sl_fail(err, SL_EINPUT, "%s: example %ld has %s %d there and %d in %s: not eval's scores of these "
                                           "examples of this data (--examples %ld:%ld)", path, first + i,
                           lab ? "label" : "length", lab ? labels[i] : lengths[i],
                           lab ? ds->labels[first + i] : ds->lengths[first + i], ds->path, first, first + count);
    }
    return SL_OK;
}

int sl_scores_file_read(const char *path, const sl_dataset *ds, long first, long count, float *logits, sl_error *err)
{
    if (!ds->labels || first < 0 || count < 1 || first + count > ds->n)
        return sl_fail(err, SL_EINPUT, "%s: no examples %ld:%ld in %s to match", path, first, first + count, ds->path);
    int32_t *labels = malloc((size_t)count * sizeof *labels), *lengths = malloc((size_t)count * sizeof *lengths);
    hid_t file = -1;
    int rc = labels && lengths ? SL_OK : sl_fail(err, SL_ERUNTIME, "out of memory for %ld examples", count);
    if (!rc) rc = sl_h5_open_input(path, &file, err);
    if (!rc) rc = read_vector(file, path, "/logits", H5T_FLOAT, H5T_NATIVE_FLOAT, count, logits, err);
    if (!rc) rc = read_vector(file, path, "/labels", H5T_INTEGER, H5T_NATIVE_INT32, count, labels, err);
    if (!rc) rc = read_vector(file, path, "/lengths", H5T_INTEGER, H5T_NATIVE_INT32, count, lengths, err);
    if (!rc) rc = check_examples(path, ds, first, count, labels, lengths, err);
    for (long i = 0; !rc && i < count; i++)
        if (!isfinite(logits[i]))
            rc = sl_fail(err, SL_EINPUT, "%s: the logit of example %ld is %s (eval writes only finite ones)", path,
                         first + i, isnan(logits[i]) ? "NaN" : "infinite");
    if (file >= 0 && H5Fclose(file) < 0 && !rc) rc = sl_fail(err, SL_ERUNTIME, "%s: cannot close", path);
    free(labels);
    free(lengths);
    return rc;
}
