/* An HDF5 output file written atomically: everything goes to PATH.tmp, which
 * is created exclusively (never through an existing file or symlink) and
 * renamed to PATH only when the whole file is complete and flushed. Datasets
 * are chunked along the example axis and written one batch of rows at a time.
 * A failed write (a full disk) is reported with the path and the system's
 * reason, and the file is then closed without writing anything more, so
 * that HDF5 holds nothing it could still fail to write at exit. */
#ifndef SL_H5OUT_H
#define SL_H5OUT_H

#include <hdf5.h>

#include "core/error.h"

enum { H5OUT_F32, H5OUT_F16, H5OUT_I32 };

typedef struct {
    hid_t file;
    char *path, *tmp;
    int discarding; /* after a failure: the file's writes go nowhere */
    sl_error fail;  /* the first failure, for sl_h5out_commit to report */
} sl_h5out;

typedef struct {
    hid_t ds;
    int rank, type;
    hsize_t dims[4];
    size_t row_elems; /* elements per example */
    const char *name;
    sl_h5out *out;
} sl_h5set;

int sl_h5out_create(sl_h5out *o, const char *path, sl_error *err);
/* dims[0] is the example axis; a name with slashes creates its groups. */
int sl_h5out_dataset(sl_h5out *o, sl_h5set *s, const char *name, int type, int rank, const hsize_t *dims,
                     sl_error *err);
/* rows first..first+count-1 of the example axis from buf (float or int32, by
 * the set's type; F16 sets take float input and store half precision). */
int sl_h5out_write(sl_h5out *o, sl_h5set *s, hsize_t first, hsize_t count, const void *buf, sl_error *err);
/* Rows first..first+count-1 of the dataset of the same name in the HDF5
 * file src (of the same shape and type, e.g. another MPI rank's part of a
 * capture) copied into s, byte for byte, a slab at a time. */
int sl_h5out_copy_rows(sl_h5out *o, sl_h5set *s, const char *src, hsize_t first, hsize_t count, sl_error *err);
/* Flushes the set's buffered rows, then closes it; a failed flush makes the
 * file's commit fail with that reason. Before sl_h5out_commit or abort. */
void sl_h5set_close(sl_h5set *s);
int sl_h5out_attr_str(sl_h5out *o, const char *name, const char *value, sl_error *err);
int sl_h5out_attr_double(sl_h5out *o, const char *name, double value, sl_error *err);
int sl_h5out_attr_int(sl_h5out *o, const char *name, long value, sl_error *err);
/* A one-dimensional dataset of variable-length UTF-8 strings (h5py's str). */
int sl_h5out_strings(sl_h5out *o, const char *name, const char *const *strs, int n, sl_error *err);
/* Flushes, closes and renames into place; on failure nothing is left
 * under PATH nor at PATH.tmp. */
int sl_h5out_commit(sl_h5out *o, sl_error *err);
/* Closes and removes the temporary file. */
void sl_h5out_abort(sl_h5out *o);

#endif
