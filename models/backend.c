#include "models/backend.h"

#include <stdio.h>
#include <string.h>

static sl_backend_kind *kinds;

void sl_backend_register(sl_backend_kind *k)
{
    sl_backend_kind **at = &kinds; /* in order of registration */
    while (*at) at = &(*at)->next;
    k->next = NULL;
    *at = k;
}

const sl_backend_kind *sl_backend_kind_find(const char *name)
{
    for (const sl_backend_kind *k = kinds; k; k = k->next)
        if (!strcmp(k->name, name)) return k;
    return NULL;
}

const sl_backend_kind *sl_backend_kind_auto(void)
{
    for (const sl_backend_kind *k = kinds; k; k = k->next)
        if (k->found()) return k;
    return NULL;
}

const char *sl_backend_names(void)
{
    static char names[256];
    size_t n = 0;
    names[0] = 0;
    for (const sl_backend_kind *k = kinds; k && n < sizeof names; k = k->next)
        n += (size_t)snprintf(names + n, sizeof names - n, "%s%s", n ? " or " : "", k->name);
    return names;
}

void sl_backend_free(sl_backend *be)
{
    if (be) be->ops->free(be);
}

int sl_backend_check(const sl_backend *be, const sl_model *m, sl_error *err)
{
    return be->m == m ? SL_OK : sl_fail(err, SL_ERUNTIME, "a backend was handed another model's run");
}
