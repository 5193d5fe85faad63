#include "plots/section.h"

#include <stdlib.h>

/* Registered before main (cli/registry.h): a fixed array, no allocation. */
static const sl_section *by_order[SL_MAX_SECTIONS], *by_file[SL_MAX_SECTIONS], *by_part[SL_MAX_SECTIONS];
static int count, parts;

static void insert(const sl_section **list, int n, const sl_section *s,
                   int (*before)(const sl_section *, const sl_section *))
{
    int i = n;
    while (i > 0 && before(s, list[i - 1])) {
        list[i] = list[i - 1];
        i--;
    }
    list[i] = s;
}

static int page_before(const sl_section *a, const sl_section *b) { return a->order < b->order; }
static int file_before(const sl_section *a, const sl_section *b) { return a->file_order < b->file_order; }
static int part_before(const sl_section *a, const sl_section *b) { return a->summary->order < b->summary->order; }

void sl_section_register(const sl_section *s)
{
    if (count == SL_MAX_SECTIONS) abort(); /* a build with more sections raises SL_MAX_SECTIONS */
    insert(by_order, count, s, page_before);
    insert(by_file, count, s, file_before);
    count++;
    if (s->summary) insert(by_part, parts++, s, part_before);
}

int sl_sections(const sl_section *const **list)
{
    *list = by_order;
    return count;
}

int sl_sections_by_file(const sl_section *const **list)
{
    *list = by_file;
    return count;
}

int sl_sections_summarized(const sl_section *const **list)
{
    *list = by_part;
    return parts;
}
