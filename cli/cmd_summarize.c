#include <stdio.h>

#include "cli/commands.h"
#include "plots/summary.h"

static const char USAGE[] =
    "usage: seqlens summarize DIR... -o OUT\n"
    "  One row per analysed run (each DIR written by seqlens analyze): AUC, bag-of-tokens AUC, the\n"
    "  family and layer whose ablation costs most, reverse r, the best probe layer, the family\n"
    "  attribution favours. Writes OUT/summary.json, OUT/summary.csv and OUT/summary.html with\n"
    "  figures across runs, in the order given. scripts/analyze-runs.sh runs analyze, then this.\n";

int cmd_summarize(int argc, char **argv)
{
    sl_args a;
    sl_error err = {0};
    /* any number of run directories: the positional limit does not apply */
    const char *dirs[4096];
    char *rest[8];
    int n = 0, nrest = 0;
    for (int i = 0; i < argc; i++) {
        if (argv[i][0] == '-' && nrest < 6) {
            rest[nrest++] = argv[i];
            if (i + 1 < argc && argv[i][1] == 'o' && !argv[i][2]) rest[nrest++] = argv[++i];
        } else if (n < 4096) {
            dirs[n++] = argv[i];
        }
    }
    if (sl_parse_args(&a, "summarize", nrest, rest, "-o", &err)) return sl_report(&err);
    if (a.help || n == 0 || !a.out) return sl_usage(USAGE, a.help);
    sl_report_info info;
    if (sl_summary_build(dirs, n, a.out, &info, &err)) return sl_report(&err);
    if (info.warning[0]) fprintf(stderr, "seqlens: warning: %s\n", info.warning);
    printf("wrote %s/summary.html, summary.csv and summary.json (%d runs, %d figures)\n", a.out, n, info.figures);
    return 0;
}
