/* The registry of commands. Each command's file fills one entry and
 * registers it with SL_REGISTER_COMMAND; the usage, the dispatch, analyze's
 * stages and the report's sections are read from the registry, so that
 * adding or moving an analysis edits no list elsewhere. */
#ifndef SL_REGISTRY_H
#define SL_REGISTRY_H

#include "plots/section.h"

/* What the code around a command needs to know of it, as bits of flags. */
enum {
    SL_CMD_SHARDED = 1 << 0,     /* its examples are split over MPI ranks; else rank 0 runs it alone */
    SL_CMD_OUT_DIR = 1 << 1,     /* -o is a directory */
    SL_CMD_OUT_H5 = 1 << 2,      /* -o is HDF5 (else JSON, where "-" is standard output) */
    SL_CMD_DIR_IN_OUT = 1 << 3,  /* its one positional is a directory it reads and writes (report) */
    SL_CMD_BACKWARD = 1 << 4,    /* its passes include a backward pass: the device batch is sized for it */
    SL_CMD_TOKENS_ONLY = 1 << 5, /* it reads only DATA's /tokens */
};

struct sl_plan; /* a stage's command line as analyze builds it (cli/stage.h) */

/* One stage of seqlens analyze: the command run with its options. */
typedef struct sl_stage {
    const char *name;       /* its row in analyze.json and its log, DIR/logs/NAME.log */
    int order;              /* its place among analyze's stages */
    const char *outputs[2]; /* files in DIR it writes; outputs[0] is its result */
    const char *stdout_to;  /* the file in DIR its standard output becomes, or NULL */
    int per_family;         /* skipped on data without /families */
    /* NULL, or 0 when the stage has no meaning for this model (ablate
     * --mode skip on a Transformer): then analyze leaves it out entirely */
    int (*applies)(const struct sl_plan *p);
    /* its command line after "seqlens COMMAND" (cli/stage.h has the pieces) */
    void (*args)(struct sl_plan *p);
    /* its cost in forward passes over the data, for the estimate of the time left */
    double (*weight)(const struct sl_plan *p);
} sl_stage;

typedef struct sl_command {
    const char *name;
    const char *summary; /* its line(s) in seqlens --help */
    int order;           /* its place in that list */
    unsigned flags;      /* SL_CMD_* */
    int (*run)(int argc, char **argv);
    const sl_stage *stages; /* analyze's stages that run it, n_stages of them */
    int n_stages;
    const sl_section *sections; /* the report's sections drawn from its results */
    int n_sections;
    struct sl_command *next; /* the registry's list */
} sl_command;

void sl_command_register(sl_command *c);
/* Registers var (an sl_command) before main runs: the Makefile links the
 * object files themselves, not an archive, so every command's file is in. */
#define SL_REGISTER_COMMAND(var)                                                                                       \
    __attribute__((constructor)) static void sl_register_##var(void) { sl_command_register(&var); }

/* The entry of command NAME, or NULL. */
const sl_command *sl_command_find(const char *name);
/* Its flags; 0 for a name not registered. */
unsigned sl_command_flags(const char *name);
/* The commands in their order (the usage's): the first, then each next. */
const sl_command *sl_commands(void);

/* The whole usage: the header, each command's summary, the footer. */
const char *sl_commands_usage(void);

#endif
