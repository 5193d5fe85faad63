#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>

int sl_fail(sl_error *err, int code, const char *fmt, ...)
{
    if (err && err->code == SL_OK) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}
