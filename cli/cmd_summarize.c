#include <stdio.h>
#include <stdlib.h>

#include "cli/commands.h"
#include "cli/registry.h"
#include "plots/summary.h"

static const char USAGE[] =
    "usage: seqlens summarize DIR... -o OUT\n"
    "  One row per analysed run (each DIR written by seqlens analyze): AUC, bag-of-tokens AUC, the\n"
    "  family and layer whose ablation costs most, reverse r, the best probe layer, the family\n"
    "  attribution favours. Writes OUT/summary.json, OUT/summary.csv and OUT/summary.html with\n"
    "  figures across runs, in the order given. scripts/analyze-runs.sh runs analyze, then this.\n";

static int summarize(const char **dirs, int n, char **rest, int nrest)
{
    sl_args a;
    sl_error err = {0};
    if (sl_parse_args(&a, "summarize", nrest, rest, "-o", &err)) return sl_report(&err);
    if (a.help || n == 0 || !a.out) return sl_usage(USAGE, a.help);
    sl_report_info info;
    if (sl_summary_build(dirs, n, a.out, &info, &err)) return sl_report(&err);
    if (info.warning[0]) fprintf(stderr, "seqlens: warning: %s\n", info.warning);
    printf("wrote %s/summary.html, summary.csv and summary.json (%d runs, %d figures)\n", a.out, n, info.figures);
    return 0;
}

static int cmd_summarize(int argc, char **argv)
{
    sl_error err = {0};
    /* any number of run directories: the positional limit does not apply,
     * so options and directories are sorted here, each list as long as
     * argv (none is dropped: an option too many is parse_args's to refuse) */
    const char **dirs = malloc((size_t)(argc + 1) * sizeof *dirs);
    char **rest = malloc((size_t)(argc + 1) * sizeof *rest);
    int n = 0, nrest = 0;
    if (!dirs || !rest) {
        free(dirs);
        free(rest);
        sl_fail(&err, SL_ERUNTIME, "out of memory");
        return sl_report(&err);
    }
    for (int i = 0; i < argc; i++) {
        if (argv[i][0] == '-') {
            rest[nrest++] = argv[i];
            if (i + 1 < argc && argv[i][1] == 'o' && !argv[i][2]) rest[nrest++] = argv[++i];
        } else {
            dirs[n++] = argv[i];
        }
    }
    int rc = summarize(dirs, n, rest, nrest);
    free(dirs);
    free(rest);
    return rc;
}

static sl_command summarize_command = {
    .name = "summarize",
    .summary = "  summarize DIR... -o OUT     one table and figures across analysed runs\n",
    .order = 150,
    .flags = SL_CMD_OUT_DIR,
    .run = cmd_summarize,
};
SL_REGISTER_COMMAND(summarize_command)
