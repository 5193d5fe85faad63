#include "cli/registry.h"

#include <stdio.h>
#include <string.h>

static sl_command *first; /* sorted by order as they come */

void sl_command_register(sl_command *c)
{
    sl_command **at = &first;
    while (*at && (*at)->order <= c->order) at = &(*at)->next;
    c->next = *at;
    *at = c;
    for (int i = 0; i < c->n_sections; i++) sl_section_register(&c->sections[i]);
}

const sl_command *sl_command_find(const char *name)
{
    for (const sl_command *c = first; c; c = c->next)
        if (!strcmp(name, c->name)) return c;
    return NULL;
}

unsigned sl_command_flags(const char *name)
{
    const sl_command *c = sl_command_find(name);
    return c ? c->flags : 0;
}

const sl_command *sl_commands(void) { return first; }

static const char HEADER[] = "usage: seqlens COMMAND [ARGS] (seqlens COMMAND --help for each)\n";
static const char FOOTER[] = "MODEL is a directory with config.json and its weights (model.safetensors,\n"
                             "pytorch_model.bin or one .pt/.pth); DATA an HDF5 file (see the README).\n"
                             "Exit status: 0 success, 1 runtime failure, 2 bad usage or input.\n";

const char *sl_commands_usage(void)
{
    static char text[8192];
    static const char *usage;
    if (usage) return usage;
    size_t n = snprintf(text, sizeof text, "%s", HEADER);
    for (const sl_command *c = first; c && n < sizeof text; c = c->next)
        n += snprintf(text + n, sizeof text - n, "%s", c->summary);
    if (n < sizeof text) n += snprintf(text + n, sizeof text - n, "%s", FOOTER);
    /* a list past the buffer would be cut mid-line: the header alone still says how to ask */
    usage = n < sizeof text ? text : HEADER;
    return usage;
}
