#include "core/weights.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ptfile.h"

static int has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n > k && !strcmp(s + n - k, suffix);
}

static int is_candidate(const char *name)
{
    return !strcmp(name, "model.safetensors") || !strcmp(name, "pytorch_model.bin") || has_suffix(name, ".pt")
           || has_suffix(name, ".pth");
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* "a, b and c" of the first few names, sorted (readdir's order is the
 * file system's). */
static void list_names(char **names, int n, char *out, size_t size)
{
    if (n > 1) qsort(names, (size_t)n, sizeof *names, cmp_str);
    size_t at = 0;
    out[0] = 0;
    for (int i = 0; i < n && i < 6 && at < size; i++)
        at += (size_t)snprintf(out + at, size - at, "%s%.100s", i == 0 ? "" : i == n - 1 ? " and " : ", ", names[i]);
    if (n > 6 && at < size) snprintf(out + at, size - at, " and %d more", n - 6);
}

int sl_weights_find(const char *model_dir, char *path, size_t size, sl_error *err)
{
    DIR *d = opendir(model_dir);
    if (!d) return sl_fail(err, SL_EINPUT, "%s: cannot open: %s", model_dir, strerror(errno));
    char **names = NULL, index[256] = "";
    int n = 0, cap = 0, rc = SL_OK;
    errno = 0;
    for (struct dirent *e; !rc && (e = readdir(d)); errno = 0) {
        /* save_pretrained's shards: their index names them */
        if (has_suffix(e->d_name, ".safetensors.index.json") || has_suffix(e->d_name, ".bin.index.json"))
            snprintf(index, sizeof index, "%.200s", e->d_name);
        if (e->d_name[0] == '.' || !is_candidate(e->d_name)) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 4;
            char **t = realloc(names, (size_t)cap * sizeof *t);
            if (!t) rc = sl_fail(err, SL_ERUNTIME, "out of memory");
            else names = t;
        }
        if (!rc && !(names[n++] = strdup(e->d_name))) rc = sl_fail(err, SL_ERUNTIME, "out of memory");
    }
    if (!rc && errno) rc = sl_fail(err, SL_ERUNTIME, "%s: cannot list: %s", model_dir, strerror(errno));
    if (closedir(d) != 0 && !rc) rc = sl_fail(err, SL_ERUNTIME, "%s: cannot close: %s", model_dir, strerror(errno));
    char found[800];
    if (!rc && n != 1) list_names(names, n, found, sizeof found);
    if (!rc && n == 0 && index[0])
        rc = sl_fail(err, SL_EINPUT,
                     "%s: a sharded checkpoint (%s and its shards): seqlens reads one weights file; save it whole, e.g. "
                     "model.save_pretrained(dir, max_shard_size=\"50GB\")", model_dir, index);
    else if (!rc && n == 0)
        rc = sl_fail(err, SL_EINPUT, "%s: no weights file (model.safetensors, pytorch_model.bin, or one *.pt or *.pth)", model_dir);
    else if (!rc && n > 1)
        rc = sl_fail(err, SL_EINPUT, "%s: %d weights files (%s): keep exactly one of model.safetensors, pytorch_model.bin, *.pt, *.pth",
                     model_dir, n, found);
    if (!rc && (size_t)snprintf(path, size, "%s/%s", model_dir, names[0]) >= size)
        rc = sl_fail(err, SL_EINPUT, "%s: path too long", model_dir);
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    return rc;
}

int sl_weights_read(st_file *f, const char *path, sl_error *err)
{
    return has_suffix(path, ".safetensors") ? st_open(f, path, err) : pt_open(f, path, err);
}

int sl_weights_open(st_file *f, const char *model_dir, sl_error *err)
{
    char path[4096];
    memset(f, 0, sizeof *f);
    int rc = sl_weights_find(model_dir, path, sizeof path, err);
    return rc ? rc : sl_weights_read(f, path, err);
}
