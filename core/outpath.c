#include "core/outpath.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The directory part of path: "." when it has none. */
static void parent_of(const char *path, char *out, size_t n)
{
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(out, n, ".");
    else if (slash == path) snprintf(out, n, "/");
    else snprintf(out, n, "%.*s", (int)(slash - path), path);
}

static int same_file(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

/* The existing file out (stat o) must be none of the inputs, nor any file
 * in an input directory (a model file reached through another name). */
static int not_an_input(const char *out, const struct stat *o, const char *const *inputs, int n, sl_error *err)
{
    for (int i = 0; i < n; i++) {
        struct stat st;
        if (!inputs[i] || stat(inputs[i], &st)) continue;
        if (!S_ISDIR(st.st_mode)) {
            if (same_file(&st, o))
                return sl_fail(err, SL_EINPUT, "%s: the output is the input %s; refusing to overwrite an input", out,
                               inputs[i]);
            continue;
        }
        DIR *d = opendir(inputs[i]);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            struct stat fs;
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            if (!fstatat(dirfd(d), e->d_name, &fs, 0) && same_file(&fs, o)) {
                int rc = sl_fail(err, SL_EINPUT, "%s: the output is %s/%s, a file of the input %s; refusing to overwrite it",
                                 out, inputs[i], e->d_name, inputs[i]);
                closedir(d);
                return rc;
            }
        }
        if (d) closedir(d);
    }
    return SL_OK;
}

/* real, the resolved directory an output goes into, must not be an input
 * directory: a new file there could be read as part of MODEL next time (a
 * second weights file), one of its files replaced. A subdirectory of MODEL
 * is the user's own (README: analyze runs/042/ test.h5 -o runs/042/seqlens/);
 * no file of MODEL can be reached through it but by a link, and links are
 * caught by device and inode. */
static int outside_inputs(const char *out, const char *real, const char *const *inputs, int n, sl_error *err)
{
    for (int i = 0; i < n; i++) {
        struct stat st;
        char in[PATH_MAX];
        if (!inputs[i] || stat(inputs[i], &st) || !S_ISDIR(st.st_mode) || !realpath(inputs[i], in)) continue;
        if (!strcmp(real, in))
            return sl_fail(err, SL_EINPUT, "%s: lies in the input directory %s; write outputs elsewhere", out, inputs[i]);
    }
    return SL_OK;
}

/* dir exists, is a directory and may be written: else exit 1, naming it
 * and what was to be written there, with the system's reason. */
static int writable_dir(const char *dir, const char *what, sl_error *err)
{
    struct stat st;
    if (stat(dir, &st)) return sl_fail(err, SL_ERUNTIME, "%s: cannot write %s: %s", dir, what, strerror(errno));
    if (!S_ISDIR(st.st_mode)) return sl_fail(err, SL_ERUNTIME, "%s: cannot write %s: %s", dir, what, strerror(ENOTDIR));
    if (access(dir, W_OK | X_OK)) return sl_fail(err, SL_ERUNTIME, "%s: cannot write %s: %s", dir, what, strerror(errno));
    return SL_OK;
}

int sl_outpath_check(const char *out, const char *const *inputs, int n_inputs, sl_error *err)
{
    char parent[PATH_MAX], real[PATH_MAX];
    if (!out[0]) return sl_fail(err, SL_EINPUT, "an output file name is empty");
    if (strlen(out) >= PATH_MAX - 8) return sl_fail(err, SL_EINPUT, "%.60s...: output path too long", out);
    struct stat o;
    if (!stat(out, &o)) {
        if (S_ISDIR(o.st_mode)) return sl_fail(err, SL_EINPUT, "%s: is a directory; the output must be a file name", out);
        if (!S_ISREG(o.st_mode))
            return sl_fail(err, SL_EINPUT, "%s: exists and is not a regular file; refusing to replace it", out);
        int rc = not_an_input(out, &o, inputs, n_inputs, err);
        if (rc) return rc;
    }
    parent_of(out, parent, sizeof parent);
    if (!realpath(parent, real)) return sl_fail(err, SL_ERUNTIME, "%s: cannot write %s: %s", parent, out, strerror(errno));
    int rc = outside_inputs(out, real, inputs, n_inputs, err);
    return rc ? rc : writable_dir(parent, out, err);
}

int sl_outdir_check(const char *dir, const char *const *inputs, int n_inputs, sl_error *err)
{
    char parent[PATH_MAX], real[PATH_MAX], bare[PATH_MAX];
    if (!dir[0]) return sl_fail(err, SL_EINPUT, "an output directory name is empty");
    if (strlen(dir) >= PATH_MAX - 64) return sl_fail(err, SL_EINPUT, "%.60s...: output path too long", dir);
    /* DIR/ names DIR: its parent is what lies before DIR */
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') n--;
    snprintf(bare, sizeof bare, "%.*s", (int)n, dir);
    struct stat st;
    if (!stat(dir, &st)) {
        if (!S_ISDIR(st.st_mode)) return sl_fail(err, SL_EINPUT, "%s: exists and is not a directory", dir);
        if (!realpath(dir, real)) return sl_fail(err, SL_ERUNTIME, "%s: %s", dir, strerror(errno));
        int rc = outside_inputs(dir, real, inputs, n_inputs, err);
        if (!rc && access(dir, W_OK | X_OK)) rc = sl_fail(err, SL_ERUNTIME, "%s: cannot write into it: %s", dir, strerror(errno));
        return rc;
    }
    if (errno != ENOENT) return sl_fail(err, SL_ERUNTIME, "%s: %s", dir, strerror(errno));
    /* made by the command, so no input (a new subdirectory of MODEL is
     * allowed, as for files): its parent must exist and take it */
    parent_of(bare, parent, sizeof parent);
    return writable_dir(parent, dir, err);
}
