#include "cli/manifest.h"

#include <errno.h>
#include <hdf5.h>
#include <linear.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/version.h"
#include "core/blas.h"
#include "core/config.h"
#include "core/textfile.h"
#include "core/weights.h"
#include "plots/gnuplot.h"

static int add_file(cJSON *o, const char *key, const char *path, sl_error *err)
{
    struct stat st;
    if (stat(path, &st)) return sl_fail(err, SL_EINPUT, "%s: %s", path, strerror(errno));
    cJSON *f = cJSON_AddObjectToObject(o, key);
    cJSON_AddStringToObject(f, "path", path);
    cJSON_AddNumberToObject(f, "bytes", (double)st.st_size);
    cJSON_AddNumberToObject(f, "mtime", (double)st.st_mtim.tv_sec + 1e-9 * (double)st.st_mtim.tv_nsec);
    return SL_OK;
}

cJSON *sl_manifest_inputs(const char *model_dir, const char *data_path, const char *options, sl_error *err)
{
    char path[4096];
    cJSON *in = cJSON_CreateObject();
    snprintf(path, sizeof path, "%s/config.json", model_dir);
    int rc = add_file(in, "config", path, err);
    if (!rc) rc = sl_weights_find(model_dir, path, sizeof path, err);
    if (!rc) rc = add_file(in, "weights", path, err);
    if (!rc) rc = add_file(in, "data", data_path, err);
    cJSON_AddStringToObject(in, "options", options);
    if (rc) {
        cJSON_Delete(in);
        return NULL;
    }
    return in;
}

int sl_manifest_model(cJSON *m, const sl_session *s, const char *model_dir, sl_error *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", model_dir);
    char *text;
    int rc = sl_read_text(path, 16u << 20, "a model config", &text, err);
    if (rc) return rc;
    /* the model loaded, so this parses (a bare Infinity as 1e999, which
     * cJSON writes as null); kept as written, unknown keys too */
    cJSON *config = sl_config_json(path, text, err);
    free(text);
    if (!config) return err->code;
    cJSON_AddItemToObject(m, "config", config);
    cJSON_AddNumberToObject(m, "parameters", (double)s->model.n_params);
    return SL_OK;
}

typedef struct {
    cJSON *attrs;
} attr_walk;

/* Root attributes that are strings or numeric scalars, as JSON. */
static herr_t add_attr(hid_t loc, const char *name, const H5A_info_t *info, void *user)
{
    (void)info;
    attr_walk *w = user;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    if (a < 0) return 0;
    hid_t t = H5Aget_type(a), sp = H5Aget_space(a);
    H5T_class_t cls = t < 0 ? H5T_NO_CLASS : H5Tget_class(t);
    hssize_t count = sp < 0 ? -1 : H5Sget_simple_extent_npoints(sp);
    if (count == 1 && (cls == H5T_INTEGER || cls == H5T_FLOAT)) {
        double v;
        if (H5Aread(a, H5T_NATIVE_DOUBLE, &v) >= 0) cJSON_AddNumberToObject(w->attrs, name, v);
    } else if (count == 1 && cls == H5T_STRING) {
        if (H5Tis_variable_str(t) > 0) {
            char *v = NULL;
            hid_t mt = H5Tcopy(H5T_C_S1);
            H5Tset_size(mt, H5T_VARIABLE);
            if (H5Aread(a, mt, &v) >= 0 && v) {
                cJSON_AddStringToObject(w->attrs, name, v);
                H5free_memory(v);
            }
            H5Tclose(mt);
        } else {
            size_t size = H5Tget_size(t);
            char *v = calloc(size + 1, 1);
            hid_t mt = H5Tcopy(H5T_C_S1);
            H5Tset_size(mt, size + 1);
            if (v && H5Aread(a, mt, v) >= 0) cJSON_AddStringToObject(w->attrs, name, v);
            H5Tclose(mt);
            free(v);
        }
    }
    if (sp >= 0) H5Sclose(sp);
    if (t >= 0) H5Tclose(t);
    H5Aclose(a);
    return 0;
}

int sl_manifest_data(cJSON *m, const sl_session *s, sl_error *err)
{
    (void)err;
    const sl_dataset *d = &s->data;
    cJSON *o = cJSON_AddObjectToObject(m, "data_summary");
    long pos = 0;
    for (long i = 0; i < s->run.count; i++) pos += d->labels[s->run.first + i];
    cJSON_AddStringToObject(o, "path", d->path);
    cJSON_AddNumberToObject(o, "examples", (double)d->n);
    cJSON_AddNumberToObject(o, "examples_analysed", (double)s->run.count);
    cJSON_AddNumberToObject(o, "first_example", (double)s->run.first);
    cJSON_AddNumberToObject(o, "padded_length", d->L);
    cJSON_AddNumberToObject(o, "positives", (double)pos);
    cJSON *fams = cJSON_AddArrayToObject(o, "families");
    for (int f = 0; f < d->n_families; f++) cJSON_AddItemToArray(fams, cJSON_CreateString(d->family_names[f]));
    attr_walk w = {cJSON_AddObjectToObject(o, "attributes")};
    hsize_t idx = 0;
    H5Aiterate2(d->file, H5_INDEX_NAME, H5_ITER_INC, &idx, add_attr, &w);
    return SL_OK;
}

void sl_manifest_versions(cJSON *m)
{
    char buf[256], exe[4096];
    cJSON *v = cJSON_AddObjectToObject(m, "versions");
    cJSON_AddStringToObject(v, "seqlens", SEQLENS_VERSION);
    unsigned maj, min, rel;
    H5get_libversion(&maj, &min, &rel);
    snprintf(buf, sizeof buf, "%u.%u.%u", maj, min, rel);
    cJSON_AddStringToObject(v, "hdf5", buf);
    snprintf(buf, sizeof buf, "%d.%d", LIBLINEAR_VERSION / 100, LIBLINEAR_VERSION % 100);
    cJSON_AddStringToObject(v, "liblinear", buf);
    snprintf(buf, sizeof buf, "%s", sl_blas_name());
    /* OpenBLAS pads its version string with spaces */
    char *b = buf + strspn(buf, " ");
    b[strcspn(b, "\n")] = 0;
    for (size_t n = strlen(b); n && b[n - 1] == ' ';) b[--n] = 0;
    cJSON_AddStringToObject(v, "blas", b);
    cJSON_AddStringToObject(v, "cjson", cJSON_Version());
    cJSON_AddStringToObject(v, "compiler", __VERSION__);
    if (!sl_gnuplot_find(exe, sizeof exe)) {
        sl_gnuplot_version(exe, buf, sizeof buf);
        cJSON_AddStringToObject(v, "gnuplot", buf);
    } else {
        cJSON_AddStringToObject(v, "gnuplot", "not found");
    }
}
