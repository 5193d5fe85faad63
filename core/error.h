/* Errors travel back to the caller as a code and one line of text; only the
 * command line prints them. Codes double as process exit statuses. */
#ifndef SL_ERROR_H
#define SL_ERROR_H

/* C linkage when included from C++ (the CUDA sources in cuda/). */
#ifdef __cplusplus
extern "C" {
#endif

enum { SL_OK = 0, SL_ERUNTIME = 1, SL_EINPUT = 2 };

typedef struct {
    int code;
    char msg[1024];
} sl_error;

/* Records the first failure (later ones would only repeat the cause) and
 * returns its code, so call sites read `return sl_fail(err, ...)`. */
int sl_fail(sl_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A warning about a run that still succeeds (NaN weights it may never
 * touch): kept until the command ends, printed by sl_warnings_end on
 * success and dropped on failure, where the error's one line says enough.
 * Repeats of a warning are kept once. */
void sl_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void sl_warnings_end(int print);

#ifdef __cplusplus
}
#endif

#endif
