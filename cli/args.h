/* Command-line options shared by the subcommands (design.md section 5). */
#ifndef SL_ARGS_H
#define SL_ARGS_H

#include <string.h>

#include "core/error.h"

#define SL_MAX_POSITIONAL 4
#define SL_MAX_HOOK_PATTERNS 64

enum { REDUCE_NONE, REDUCE_MEAN, REDUCE_LAST };

typedef struct {
    const char *cmd;
    const char *pos[SL_MAX_POSITIONAL];
    int n_pos;
    const char *out;
    long ex_first, ex_end; /* --examples A:B; ex_end -1 = to the end */
    long sample;           /* --sample S: a seeded sample of at most S of those examples; 0 = all */
    int threads, batch, reduce, dtype_f16, help;
    const char *device; /* --device: "cpu" or a registered backend's name; NULL: a device where one is found */
    unsigned long long seed;
    char hooks[SL_MAX_HOOK_PATTERNS][96];
    int n_hooks;
    const char *family, *layer, *mode, *component; /* ablate */
    int bootstrap;
    const char *target, *site; /* probe */
    const char *method, *baseline, *tokens_out; /* attribute */
    const char *scores_out;                     /* reverse-test */
    const char *base_logits;                    /* ablate --family, reverse-test: eval's scores file */
    const char *positions, *pairs_file, *pairing; /* patch */
    long n_pairs;
    int force;                                  /* analyze: a flag, takes no value */
    const char *logits_file;                    /* verify --logits, analyze --verify */
    double tolerance;                           /* verify; default 1e-4 */
    int tolerance_given;                        /* analyze: --tolerance only with --verify */
    int steps;
    const char *task; /* gym */
    long n_examples;
    int len;
    double noise;
} sl_args;

/* An option's value in an error line, at most 60 characters of it (a list
 * may run to thousands): printf's "%.*s%s" takes SL_CLIP(s). */
#define SL_CLIP(s) (int)(strlen(s) > 60 ? 57 : strlen(s)), (s), (strlen(s) > 60 ? "..." : "")

/* A decimal integer in [lo, hi]: digits only, with a leading '-' only
 * where lo < 0 (no spaces, no '+', no wrap-around). end NULL: the integer
 * is all of s; else *end receives where it stopped (a list's ','). 0 or -1. */
int sl_parse_int(const char *s, long lo, long hi, long *out, const char **end);

/* allowed: space-separated option names this command takes, e.g.
 * "-o --examples --threads". */
int sl_parse_args(sl_args *a, const char *cmd, int argc, char **argv, const char *allowed, sl_error *err);

#endif
