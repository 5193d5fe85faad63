#include "core/hooks.h"

#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

int sl_hooks_init(sl_hooks *h, int n_points, sl_error *err)
{
    memset(h, 0, sizeof *h);
    h->n_points = n_points;
    h->active = calloc((size_t)n_points + 1, 1);
    if (!h->active) return sl_fail(err, SL_ERUNTIME, "out of memory for hooks");
    return SL_OK;
}

void sl_hooks_free(sl_hooks *h)
{
    free(h->active);
    free(h->list);
    memset(h, 0, sizeof *h);
}

int sl_hooks_add(sl_hooks *h, int point, sl_hook_fn fn, void *user, sl_error *err)
{
    if (point < 0 || point >= h->n_points) return sl_fail(err, SL_ERUNTIME, "hook point %d does not exist", point);
    if (h->n == h->cap) {
        int cap = h->cap ? 2 * h->cap : 16;
        sl_hook_entry *l = realloc(h->list, (size_t)cap * sizeof *l);
        if (!l) return sl_fail(err, SL_ERUNTIME, "out of memory for hooks");
        h->list = l;
        h->cap = cap;
    }
    h->list[h->n++] = (sl_hook_entry){point, fn, user, NULL};
    h->active[point] = 1;
    return SL_OK;
}

int sl_hooks_add_replace(sl_hooks *h, int point, const sl_row_replace *r, sl_error *err)
{
    int rc = sl_hooks_add(h, point, sl_hook_replace_rows, (void *)r, err);
    if (!rc) h->list[h->n - 1].replace = r;
    return rc;
}

int sl_hooks_fire(const sl_hooks *h, sl_hook_event *ev, sl_error *err)
{
    for (int i = 0; i < h->n; i++)
        if (h->list[i].point == ev->id) {
            int rc = h->list[i].fn(h->list[i].user, ev, err);
            if (rc) return rc;
        }
    return SL_OK;
}

int sl_hook_replace_rows(void *user, sl_hook_event *ev, sl_error *err)
{
    (void)err;
    const sl_row_replace *r = user;
    const uint8_t *mask = r->mask + ev->slot * r->ld;
    for (int t = 0; t < ev->rows && t < ev->len; t++) {
        if (!mask[t]) continue;
        float *row = ev->data + (long)t * ev->ld;
        if (r->row) memcpy(row, r->row, (size_t)ev->cols * sizeof *row);
        else memset(row, 0, (size_t)ev->cols * sizeof *row);
    }
    return SL_OK;
}

int sl_hook_match(const char *pattern, const char *name)
{
    char pc[64], nc[64];
    for (;;) {
        size_t pl = strcspn(pattern, "."), nl = strcspn(name, ".");
        if (pl >= sizeof pc || nl >= sizeof nc) return 0;
        memcpy(pc, pattern, pl);
        pc[pl] = 0;
        memcpy(nc, name, nl);
        nc[nl] = 0;
        if (fnmatch(pc, nc, 0) != 0) return 0;
        if (!pattern[pl] || !name[nl]) return !pattern[pl] && !name[nl];
        pattern += pl + 1;
        name += nl + 1;
    }
}
