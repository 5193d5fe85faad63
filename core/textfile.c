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

size_t sl_json_escaped_nul_at(const char *json, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (json[i] != '\\') continue;
        size_t run = 0; /* an odd run of backslashes escapes what follows */
        while (i + run < len && json[i + run] == '\\') run++;
        if (run % 2 && len - (i + run) >= 5 && json[i + run] == 'u' && !memcmp(json + i + run + 1, "0000", 4))
            return i + run - 1;
        i += run - 1;
    }
    return len;
}
