/* libFuzzer target: the dataset validator. Raw bytes would mostly fuzz
 * libhdf5's own file parser, which is not seqlens' code; instead the input
 * describes a dataset (shapes, integer types, which optional parts exist,
 * and small values) that is written as a real HDF5 file and then opened,
 * validated and read the way every command does. Flags also ask for /tokens
 * declared far wider than written (chunked, the rest never allocated), for
 * up to 2,000 family names from a small alphabet (repeats), and for labels
 * as h5py's bool enum. What the validator accepts must keep its promises
 * (lengths in [1, L], labels in {0, 1}, distinct names). */
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
    char (*store)[12] = malloc((size_t)(count ? count : 1) * sizeof *store);
    const char **names = malloc((size_t)(count ? count : 1) * sizeof *names);
    if (!store || !names) {
        free(store);
        free(names);
        return;
    }
    for (int i = 0; i < count; i++) {
        int len = fuzz_next(b) % 5;
        for (int k = 0; k < len; k++) store[i][k] = (char)('a' + fuzz_next(b) % 26);
        store[i][len] = 0;
        if (count > 8 && !len) snprintf(store[i], sizeof store[i], "%d", i); /* many: mostly distinct */
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
    free(store);
    free(names);
}

/* /tokens declared wide (L << 0..20 columns) in chunks, only the first L
 * columns written. */
static void fuzz_wide_tokens(hid_t f, int n, int L, int wide, fuzz_bytes *b)
{
    hsize_t dims[2] = {(hsize_t)n, (hsize_t)L << (wide % 21)}, chunk[2] = {1, (hsize_t)L}, slab[2] = {(hsize_t)n, (hsize_t)L};
    int32_t v[6 * 12];
    for (int i = 0; i < n * L; i++) v[i] = -2 + fuzz_next(b) % 16;
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE), sp = H5Screate_simple(2, dims, NULL), ms = H5Screate_simple(2, slab, NULL);
    hsize_t at[2] = {0, 0};
    H5Pset_chunk(dcpl, 2, chunk);
    hid_t d = H5Dcreate2(f, "tokens", H5T_NATIVE_INT32, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (d >= 0) {
        H5Sselect_hyperslab(sp, H5S_SELECT_SET, at, NULL, slab, NULL);
        H5Dwrite(d, H5T_NATIVE_INT32, ms, sp, H5P_DEFAULT, v);
        H5Dclose(d);
    }
    H5Sclose(ms);
    H5Sclose(sp);
    H5Pclose(dcpl);
}

/* Labels as h5py writes numpy bool: an enum FALSE=0, TRUE=1 on int8. */
static void fuzz_bool_labels(hid_t f, hsize_t n, fuzz_bytes *b)
{
    hid_t e = H5Tenum_create(H5T_NATIVE_SCHAR);
    signed char v[8] = {0}, no = 0, yes = 1;
    H5Tenum_insert(e, "FALSE", &no);
    H5Tenum_insert(e, "TRUE", &yes);
    for (hsize_t i = 0; i < n && i < 8; i++) v[i] = (signed char)(fuzz_next(b) % 3); /* 2 is no member */
    hid_t sp = H5Screate_simple(1, &n, NULL), d = H5Dcreate2(f, "labels", e, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (d >= 0) {
        H5Dwrite(d, e, H5S_ALL, H5S_ALL, H5P_DEFAULT, v); /* raw values: HDF5 converts no integer to an enum */
        H5Dclose(d);
    }
    H5Sclose(sp);
    H5Tclose(e);
}

/* The promises of an opened dataset; a broken one aborts. */
static void fuzz_promises(const sl_dataset *ds)
{
    for (long e = 0; e < ds->n; e++)
        if (ds->lengths[e] < 1 || ds->lengths[e] > ds->L || (ds->labels[e] != 0 && ds->labels[e] != 1)) abort();
    for (int i = 0; i < ds->n_families; i++)
        for (int j = 0; j < i; j++)
            if (!strcmp(ds->family_names[i], ds->family_names[j])) abort();
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
    int more = fuzz_next(&b); /* 1: wide /tokens, 2: many names, 4: bool labels */
    if (more & 2) n_names = 9 + fuzz_next(&b) * 8;
    char path[64];
    snprintf(path, sizeof path, "/tmp/seqlens-fuzz-data-%d.h5", (int)getpid());
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) return 0;
    hsize_t tok[2] = {(hsize_t)n, (hsize_t)L}, vec[1] = {(hsize_t)n};
    /* shapes are sometimes wrong on purpose */
    if (flags & 1) tok[1] = 0;
    if (flags & 2) vec[0] = (hsize_t)n + 1;
    if ((more & 1) && !(flags & 5)) fuzz_wide_tokens(f, n, L, fuzz_next(&b), &b);
    else fuzz_put(f, "tokens", tok_type, flags & 4 ? 1 : 2, tok, &b, -2);
    if (more & 4) fuzz_bool_labels(f, vec[0], &b);
    else if (!(flags & 8)) fuzz_put(f, "labels", lab_type, 1, vec, &b, flags & 16 ? -1 : 0);
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
        fuzz_promises(&ds);
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
