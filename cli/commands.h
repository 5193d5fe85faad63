/* What the subcommands share: each parses its own options and returns an
 * exit status; each registers itself (cli/registry.h). */
#ifndef SL_COMMANDS_H
#define SL_COMMANDS_H

#include <cjson/cJSON.h>

#include "cli/args.h"
#include "core/dataset.h"
#include "core/dist.h"
#include "models/model.h"
#include "models/run.h"

/* A model with its dataset, the example range the options select and the
 * backend that runs it (the CPU's or a device's). Opened in place and never
 * moved: the backend holds the address of the model. */
typedef struct {
    sl_model model;
    sl_dataset data;
    sl_run_opts run;
    long selected_first; /* --examples A:B's A, also when data has since been narrowed to a --sample */
} sl_session;

int sl_session_open(sl_session *s, const sl_args *a, const char *model_dir, const char *data_path, sl_error *err);
void sl_session_close(sl_session *s);
/* AUCs need both labels among the selected examples. */
int sl_session_need_both_classes(const sl_session *s, sl_error *err);
/* A result of a --sample run says so: "sampled_from", the examples the
 * sample was drawn from, beside "n", the sample's size (nothing without a
 * sample). */
void sl_session_json_sample(cJSON *j, const sl_session *s);
/* --base-logits FILE: the logits `seqlens eval -o FILE` wrote for the
 * session's examples (core/scores_file.h says what is checked), into
 * *logits, run.count of them, allocated here (the caller frees them); NULL
 * without a FILE. The first example is run again and must agree with the
 * file (the file belongs to this model). Bad files are SL_EINPUT. */
int sl_session_base_logits(sl_session *s, const char *path, float **logits, sl_error *err);

/* verify (cli/cmd_verify.c), also run by analyze --verify: a->logits_file
 * against the model's logits on the examples it covers. *out receives the
 * JSON result (cJSON_Delete it), *ok whether it is within a->tolerance. */
int sl_verify(sl_session *s, const sl_args *a, cJSON **out, int *ok, sl_error *err);
/* The one-line runtime error for a result that is not ok: the error, the
 * worst example, and the config keys that most often cause it. */
int sl_verify_mismatch(const cJSON *result, const sl_args *a, sl_error *err);

/* Prints "seqlens: MESSAGE" and returns the error's exit status. */
int sl_report(const sl_error *err);
/* --help: the whole usage on stdout, 0; a usage error: its first line on
 * stderr, 2. */
int sl_usage(const char *text, int asked);

#endif
