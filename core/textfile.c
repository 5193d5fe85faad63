#include "core/textfile.h"

#include <stdlib.h>
#include <string.h>

#include "core/inputfile.h"

int sl_read_text(const char *path, size_t max_bytes, const char *what, char **text, sl_error *err)
{
    size_t size;
    int rc = sl_input_read_all(path, max_bytes, what, text, &size, err);
    if (rc) return rc;
    /* a NUL would end the text early for every parser after this one: the
     * bytes past it (garbage, a second document) would go unseen */
    const char *nul = memchr(*text, 0, size);
    if (nul) {
        rc = sl_fail(err, SL_EINPUT, "%s: a NUL byte at offset %zu; not %s (a text file)", path, (size_t)(nul - *text),
                     what);
        free(*text);
        *text = NULL;
    }
    return rc;
}
