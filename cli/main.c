/* seqlens: one binary, one subcommand per analysis. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/version.h"
#include "core/dataset.h"


static const char USAGE[] =
    "usage: seqlens COMMAND [ARGS] (seqlens COMMAND --help for each)\n"
    "  info MODEL                  config, parameters, tensors, hook points\n"
    "  eval MODEL DATA             AUC, log-loss, accuracy; logits per example\n"
    "  capture MODEL DATA --hook PATTERN... -o acts.h5\n"
    "                              activations at hook points, streamed to HDF5\n"
    "  reverse-test MODEL DATA     logits with each sequence reversed and shuffled\n"
    "  ablate MODEL DATA --family NAME|all   AUC lost when a token family is removed\n"
    "         MODEL DATA --layer I|all       ... or a block's write\n"
    "         MODEL DATA --component NAME|all    ... or one part of a layer (conv, ssm, gate, attn, mlp)\n"
    "  patch MODEL DATA --hook PATTERN  activation patching between pairs of examples\n"
    "  baseline DATA               bag-of-tokens / bag-of-families logistic regression AUC\n"
    "  inspect MODEL DATA          Mamba delta/gate/retention and attention mass per family\n"
    "  compare MODEL_A MODEL_B DATA  agreement, error overlap, ensemble AUC, linear CKA\n"
    "  probe MODEL DATA            linear probes on each layer against majority and control\n"
    "  attribute MODEL DATA        gradient x input or integrated gradients per token family\n"
    "  analyze MODEL DATA -o DIR   every analysis, then the report (resumes when interrupted)\n"
    "  report DIR                  figures and report.html from the JSON results in DIR\n"
    "  summarize DIR... -o OUT     one table and figures across analysed runs\n"
    "  gym --task NAME --n N --len L -o data.h5   synthetic data with a planted rule\n"
    "MODEL is a directory with config.json and model.safetensors; DATA an HDF5 file\n"
    "(see the README). Exit status: 0 success, 1 runtime failure, 2 bad usage or input.\n";

static const struct {
    const char *name;
    int (*run)(int, char **);
} COMMANDS[] = {
    {"info", cmd_info},
    {"eval", cmd_eval},
    {"capture", cmd_capture},
    {"reverse-test", cmd_reverse},
    {"ablate", cmd_ablate},
    {"gym", cmd_gym},
    {"baseline", cmd_baseline},
    {"inspect", cmd_inspect},
    {"compare", cmd_compare},
    {"probe", cmd_probe},
    {"attribute", cmd_attribute},
    {"report", cmd_report},
    {"analyze", cmd_analyze},
    {"summarize", cmd_summarize},
    {"patch", cmd_patch},
};

int main(int argc, char **argv)
{
    if (argc < 2) return sl_usage(USAGE, 0);
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) return sl_usage(USAGE, 1);
    if (!strcmp(argv[1], "--version")) {
        printf("seqlens %s\n", SEQLENS_VERSION);
        return 0;
    }
    sl_h5_quiet();
    for (size_t i = 0; i < sizeof COMMANDS / sizeof *COMMANDS; i++)
        if (!strcmp(argv[1], COMMANDS[i].name)) return COMMANDS[i].run(argc - 2, argv + 2);
    fprintf(stderr, "seqlens: unknown command '%s' (seqlens --help lists them)\n", argv[1]);
    return SL_EINPUT;
}
