#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int sl_fail(sl_error *err, int code, const char *fmt, ...)
{
    if (err && err->code == SL_OK) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        /* an error is one line, whatever a quoted name or value holds */
        for (char *c = err->msg; *c; c++)
            if ((unsigned char)*c < 0x20 || *c == 0x7f) *c = '?';
        err->code = code;
    }
    return code;
}

/* A few lines suffice: every warning names its file, and a run loads few. */
static char warnings[8][512];
static int n_warnings;

void sl_warn(const char *fmt, ...)
{
    char line[sizeof warnings[0]];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    for (int i = 0; i < n_warnings; i++)
        if (!strcmp(warnings[i], line)) return;
    if (n_warnings < (int)(sizeof warnings / sizeof *warnings)) memcpy(warnings[n_warnings++], line, sizeof line);
}

void sl_warnings_end(int print)
{
    for (int i = 0; print && i < n_warnings; i++) fprintf(stderr, "seqlens: warning: %s\n", warnings[i]);
    n_warnings = 0;
}
