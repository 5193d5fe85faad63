#include <stdio.h>

#include "cli/commands.h"
#include "cli/registry.h"
#include "plots/report.h"

static const char USAGE[] =
    "usage: seqlens report DIR\n"
    "  Draws figures (DIR/figures/NAME.png, .svg and the .gp script that draws them) and writes\n"
    "  DIR/report.html, one self-contained page, from the results in DIR. It reads whichever of\n"
    "  these are present (the names seqlens analyze writes):\n"
    "    analyze.json eval.json baseline.json ablate-family.json ablate-skip.json ablate-layer.json\n"
    "    ablate-component.json reverse.json reverse-scores.h5 inspect.json attribute.json\n"
    "    probe.json patch.json compare.json\n"
    "  Without gnuplot the page keeps its tables and verdicts, and one warning says so.\n";

static int cmd_report(int argc, char **argv)
{
    sl_args a;
    sl_error err = {0};
    if (sl_parse_args(&a, "report", argc, argv, "", &err)) return sl_report(&err);
    if (a.help || a.n_pos != 1) return sl_usage(USAGE, a.help);
    sl_report_info info;
    if (sl_report_build(a.pos[0], &info, &err)) return sl_report(&err);
    if (info.warning[0]) fprintf(stderr, "seqlens: warning: %s\n", info.warning);
    printf("wrote %s/report.html (%d figures)\n", a.pos[0], info.figures);
    return 0;
}

static sl_command report_command = {
    .name = "report",
    .summary = "  report DIR                  figures and report.html from the JSON results in DIR\n",
    .order = 140,
    .flags = SL_CMD_DIR_IN_OUT,
    .run = cmd_report,
};
SL_REGISTER_COMMAND(report_command)
