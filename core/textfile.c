#include "core/textfile.h"

#include "core/inputfile.h"

int sl_read_text(const char *path, size_t max_bytes, const char *what, char **text, sl_error *err)
{
    size_t size;
    return sl_input_read_all(path, max_bytes, what, text, &size, err);
}
