/* Golden files written by tests/reference/: reading them, and visiting the
 * fixture directories that hold one. */
#ifndef SL_FIXTURE_FILES_H
#define SL_FIXTURE_FILES_H

#include <cjson/cJSON.h>
#include <dirent.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/dataset.h"
#include "models/model.h"
#include "models/run.h"
#include "tests/testing.h"

#define FIXTURES "tests/fixtures"

/* A fixture's model and data, run over all its examples. */
typedef struct {
    sl_model m;
    sl_dataset ds;
    sl_run_opts o;
} fixture;

/* The model directory dir and the dataset data (tests/trained/ has its
 * own). A failure to open is a failed CHECK naming dir. */
static inline int open_model_data(fixture *f, const char *dir, const char *data, int threads, int batch)
{
    sl_error err = {0};
    int rc = sl_model_load(&f->m, dir, &err);
    if (!rc) rc = sl_dataset_open(&f->ds, data, f->m.c.vocab_size, f->m.c.pad_token_id, &err);
    CHECK(!rc, "%s: %s", dir, err.msg);
    f->o = (sl_run_opts){.count = rc ? 0 : f->ds.n, .batch = batch, .threads = threads};
    return rc;
}

/* Fixture `name` and its data.h5. */
static inline int open_fixture(fixture *f, const char *name, int threads, int batch)
{
    char dir[512], data[600];
    snprintf(dir, sizeof dir, FIXTURES "/%s", name);
    snprintf(data, sizeof data, "%s/data.h5", dir);
    return open_model_data(f, dir, data, threads, batch);
}

static inline void close_fixture(fixture *f)
{
    sl_dataset_close(&f->ds);
    sl_model_free(&f->m);
}

/* A JSON file, parsed; NULL when absent or not JSON. */
static inline cJSON *read_json(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = n >= 0 ? malloc((size_t)n + 1) : NULL;
    size_t got = text ? fread(text, 1, (size_t)n, f) : 0;
    fclose(f);
    if (!text) return NULL;
    text[got] = 0;
    cJSON *j = cJSON_Parse(text);
    free(text);
    return j;
}

/* A float dataset of exactly n values; NULL when absent or of another size. */
static inline float *read_floats(const char *path, const char *name, size_t n)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return NULL;
    float *buf = NULL;
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    if (d >= 0) {
        hid_t s = H5Dget_space(d);
        if ((size_t)H5Sget_simple_extent_npoints(s) == n && (buf = malloc(n * sizeof *buf))
            && H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
            free(buf);
            buf = NULL;
        }
        H5Sclose(s);
        H5Dclose(d);
    }
    H5Fclose(f);
    return buf;
}

/* Calls fn(fixture name, path of its `file`) for every fixture directory
 * holding that file; returns how many there were. */
static inline int for_each_fixture(const char *file, void (*fn)(const char *name, const char *path, void *user), void *user)
{
    DIR *dir = opendir(FIXTURES);
    int count = 0;
    for (struct dirent *e; dir && (e = readdir(dir));) {
        char path[600];
        snprintf(path, sizeof path, FIXTURES "/%s/%s", e->d_name, file);
        if (e->d_name[0] == '.' || access(path, F_OK) != 0) continue;
        fn(e->d_name, path, user);
        count++;
    }
    if (dir) closedir(dir);
    return count;
}

#endif
