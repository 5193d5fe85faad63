/* analyze.json: what an analysis ran on (so that a rerun can tell whether
 * finished stages still hold), and what the report prints about it. */
#ifndef SL_MANIFEST_H
#define SL_MANIFEST_H

#include <cjson/cJSON.h>

#include "cli/commands.h"

/* The inputs' identity: paths, sizes and modification times of the model
 * files and data, and the options that change results. Two runs with equal
 * fingerprints produce the same JSON. */
cJSON *sl_manifest_inputs(const char *model_dir, const char *data_path, const char *options, sl_error *err);
/* config.json as written, and the parameter count. */
int sl_manifest_model(cJSON *m, const sl_session *s, const char *model_dir, sl_error *err);
/* n, padded width, positives, families and the file's root attributes. */
int sl_manifest_data(cJSON *m, const sl_session *s, sl_error *err);
/* seqlens, HDF5, liblinear, BLAS, cJSON, compiler and gnuplot versions. */
void sl_manifest_versions(cJSON *m);

#endif
