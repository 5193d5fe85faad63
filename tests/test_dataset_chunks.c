/* Reading datasets in small chunks (core/dataset.c): HDF5 keeps state for
 * every chunk a read touches, so reads are split to touch at most a few
 * thousand at once. The pieces must put every value where one read would:
 * wide rows in tiny chunks (split along a row), many short rows (split
 * across rows), and a sample of scattered rows. */
#include <hdf5.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/dataset.h"
#include "testing.h"

#define VOCAB 13

static int token_at(long e, long t) { return (int)((e * 7 + t * 3 + t / 5) % VOCAB); }

/* /tokens [n, L] int32 in chunks {chunk_rows, chunk_cols}, every chunk
 * written; /labels alternate; /lengths L - e % 3 (at least 1). */
static int write_chunked(const char *path, long n, long L, hsize_t chunk_rows, hsize_t chunk_cols)
{
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) return -1;
    int32_t *tok = malloc((size_t)n * L * sizeof *tok), *lab = malloc((size_t)n * sizeof *lab),
            *len = malloc((size_t)n * sizeof *len);
    for (long e = 0; e < n; e++) {
        for (long t = 0; t < L; t++) tok[e * L + t] = token_at(e, t);
        lab[e] = (int32_t)(e % 2);
        len[e] = (int32_t)(L - e % 3 > 0 ? L - e % 3 : 1);
    }
    hsize_t dims[2] = {(hsize_t)n, (hsize_t)L}, chunk[2] = {chunk_rows, chunk_cols};
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    herr_t rc = chunk_rows ? H5Pset_chunk(dcpl, 2, chunk) : 0;
    hid_t sp = H5Screate_simple(2, dims, NULL), vs = H5Screate_simple(1, dims, NULL);
    hid_t d = H5Dcreate2(f, "tokens", H5T_NATIVE_INT32, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    rc = rc < 0 || d < 0 ? -1 : H5Dwrite(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, tok);
    if (d >= 0) H5Dclose(d);
    const char *names[2] = {"labels", "lengths"};
    int32_t *vals[2] = {lab, len};
    for (int i = 0; i < 2; i++) {
        d = H5Dcreate2(f, names[i], H5T_NATIVE_INT32, vs, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        rc = rc < 0 || d < 0 ? -1 : H5Dwrite(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, vals[i]);
        if (d >= 0) H5Dclose(d);
    }
    H5Sclose(vs);
    H5Sclose(sp);
    H5Pclose(dcpl);
    if (H5Fclose(f) < 0) rc = -1;
    free(tok), free(lab), free(len);
    return rc < 0 ? -1 : 0;
}

/* Every row of the open dataset (or of its sample) against token_at, with
 * padding past each length. */
static int rows_match(sl_dataset *ds, long first, long count, sl_error *err)
{
    int32_t *tok = malloc((size_t)count * ds->L * sizeof *tok);
    int ok = tok && sl_dataset_read_tokens(ds, first, count, tok, err) == SL_OK;
    for (long i = 0; ok && i < count; i++) {
        long row = ds->rows ? ds->rows[first + i] : first + i;
        for (long t = 0; ok && t < ds->L; t++)
            ok = tok[i * ds->L + t] == (t < ds->lengths[first + i] ? token_at(row, t) : ds->pad_id);
    }
    free(tok);
    return ok;
}

static void chunk_case(const char *what, long n, long L, hsize_t chunk_rows, hsize_t chunk_cols)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/seqlens-chunks-%d.h5", (int)getpid());
    CHECK(!write_chunked(path, n, L, chunk_rows, chunk_cols), "%s: write %s", what, path);
    sl_dataset ds, sample;
    sl_error err = {0};
    int rc = sl_dataset_open_tokens(&ds, path, VOCAB, 0, &err);
    CHECK(!rc && ds.n == n && ds.L == L, "%s: open: %s", what, err.msg);
    if (!rc) {
        CHECK(rows_match(&ds, 0, n, &err), "%s: all rows in one call: %s", what, err.msg);
        CHECK(rows_match(&ds, n / 3, n - n / 3 - 1, &err), "%s: rows %ld.. in one call: %s", what, n / 3, err.msg);
        sl_dataset_close(&ds);
    }
    rc = sl_dataset_open_tokens(&sample, path, VOCAB, 0, &err);
    rc = rc ? rc : sl_dataset_sample(&sample, 0, n, n / 2 + 1, 11, &err);
    CHECK(!rc, "%s: sample: %s", what, err.msg);
    if (!rc) {
        CHECK(rows_match(&sample, 0, sample.n, &err), "%s: a sample's scattered rows: %s", what, err.msg);
        sl_dataset_close(&sample);
    }
    unlink(path);
}

int main(void)
{
    sl_h5_quiet();
    chunk_case("one row is 5,000 chunks", 3, 40000, 1, 8);
    chunk_case("6,000 rows of one chunk", 6000, 6, 1, 6);
    chunk_case("3-row chunks, 2 across", 9001, 10, 3, 7);
    chunk_case("contiguous", 50, 33, 0, 0);
    return TEST_SUMMARY();
}
