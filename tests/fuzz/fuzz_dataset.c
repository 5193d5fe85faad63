/* libFuzzer target: the dataset validator. Raw bytes would mostly fuzz
 * libhdf5's own file parser, which is not seqlens' code; instead the input
 * describes a dataset (shapes, integer types, which optional parts exist,
 * and small values) that is written as a real HDF5 file and then opened,
 * validated and read the way every command does. */
#include <hdf5.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/dataset.h"

#ifndef FUZZ_ENTRY
#define FUZZ_ENTRY LLVMFuzzerTestOneInput
#endif

#define FUZZ_VOCAB 11

typedef struct {
    const uint8_t *p;
    size_t n, at;
} fuzz_bytes;

static int fuzz_next(fuzz_bytes *b) { return b->at < b->n ? b->p[b->at++] : 0; }

/* The integer (and one float) types a user's file might hold. */
static hid_t fuzz_type(int k)
{
    static const int TYPES = 8;
    switch (k % TYPES) {
    case 0: return H5T_NATIVE_INT8;
    case 1: return H5T_NATIVE_UINT8;
    case 2: return H5T_NATIVE_INT16;
    case 3: return H5T_NATIVE_UINT16;
    case 4: return H5T_NATIVE_INT32;
    case 5: return H5T_NATIVE_UINT32;
    case 6: return H5T_NATIVE_INT64;
    }
    return H5T_NATIVE_FLOAT;
}

/* A dataset of count small values (from the input, shifted so that both
 * valid ids and out-of-range ones come up) converted to type on write. */
static void fuzz_put(hid_t loc, const char *name, int type, int rank, const hsize_t *dims, fuzz_bytes *b, int lo)
{
    hsize_t count = 1;
    for (int i = 0; i < rank; i++) count *= dims[i];
    int32_t *v = malloc((size_t)(count ? count : 1) * sizeof *v);
    if (!v) return;
    for (hsize_t i = 0; i < count; i++) v[i] = lo + fuzz_next(b) % 16;
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    hid_t d = H5Dcreate2(loc, name, fuzz_type(type), sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (d >= 0) {
        H5Dwrite(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
        H5Dclose(d);
    }
    H5Sclose(sp);
    free(v);
}

static void fuzz_names(hid_t loc, int count, fuzz_bytes *b)
{
    char store[8][6];
    const char *names[8];
    for (int i = 0; i < count; i++) {
        int len = fuzz_next(b) % 5;
        for (int k = 0; k < len; k++) store[i][k] = (char)('a' + fuzz_next(b) % 26);
        store[i][len] = 0;
        names[i] = store[i];
    }
    hsize_t dims[1] = {(hsize_t)count};
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    hid_t sp = H5Screate_simple(1, dims, NULL);
    hid_t d = H5Dcreate2(loc, "names", t, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (d >= 0) {
        if (count) H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, names);
        H5Dclose(d);
    }
    H5Sclose(sp);
    H5Tclose(t);
}

int FUZZ_ENTRY(const uint8_t *data, size_t size);
int FUZZ_ENTRY(const uint8_t *data, size_t size)
{
    static int quiet;
    if (!quiet) sl_h5_quiet(), quiet = 1;
    fuzz_bytes b = {data, size, 0};
    int n = 1 + fuzz_next(&b) % 6, L = 1 + fuzz_next(&b) % 12;
    int tok_type = fuzz_next(&b), flags = fuzz_next(&b) | fuzz_next(&b) << 8;
    int lab_type = fuzz_next(&b), len_type = fuzz_next(&b), fam_type = fuzz_next(&b);
    int vocab_delta = fuzz_next(&b) % 3 - 1, n_names = fuzz_next(&b) % 5;
    char path[64];
    snprintf(path, sizeof path, "/tmp/seqlens-fuzz-data-%d.h5", (int)getpid());
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) return 0;
    hsize_t tok[2] = {(hsize_t)n, (hsize_t)L}, vec[1] = {(hsize_t)n};
    /* shapes are sometimes wrong on purpose */
    if (flags & 1) tok[1] = 0;
    if (flags & 2) vec[0] = (hsize_t)n + 1;
    fuzz_put(f, "tokens", tok_type, flags & 4 ? 1 : 2, tok, &b, -2);
    if (!(flags & 8)) fuzz_put(f, "labels", lab_type, 1, vec, &b, flags & 16 ? -1 : 0);
    vec[0] = (hsize_t)n;
    if (flags & 32) fuzz_put(f, "lengths", len_type, 1, vec, &b, -1);
    if (flags & 64) {
        hid_t g = H5Gcreate2(f, "families", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        hsize_t v[1] = {(hsize_t)(FUZZ_VOCAB + vocab_delta)};
        fuzz_names(g, n_names, &b);
        if (!(flags & 128)) fuzz_put(g, "of_token", fam_type, 1, v, &b, -2);
        if (flags & 256) fuzz_put(g, "of_position", fam_type, 2, tok, &b, -2);
        H5Gclose(g);
    }
    if (flags & 512) fuzz_put(f, "split", lab_type, 1, vec, &b, 0);
    if (flags & 1024) {
        hid_t g = H5Gcreate2(f, "concepts", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (flags & 2048) fuzz_put(g, "c", lab_type, 2, tok, &b, 0);
        else fuzz_put(g, "c", lab_type, 1, vec, &b, 0);
        H5Gclose(g);
    }
    H5Fclose(f);

    sl_dataset ds;
    sl_error err = {0};
    memset(&ds, 0, sizeof ds);
    ds.file = ds.tokens = ds.of_position = -1;
    if (sl_dataset_open(&ds, path, FUZZ_VOCAB, 0, &err) == SL_OK) {
        int32_t *t = malloc((size_t)ds.n * (size_t)ds.L * sizeof *t), *fam = malloc((size_t)ds.n * (size_t)ds.L * sizeof *fam);
        if (t && fam && sl_dataset_read_tokens(&ds, 0, ds.n, t, &err) == SL_OK)
            sl_dataset_read_families(&ds, 0, ds.n, t, fam, &err);
        int per_token;
        if (sl_dataset_concept(&ds, "c", &per_token, &err) == SL_OK && t)
            sl_dataset_read_concept(&ds, "c", 0, ds.n, t, &err);
        free(t);
        free(fam);
    }
    sl_dataset_close(&ds);
    return 0;
}
