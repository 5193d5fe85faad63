/* seqlens: one binary, one subcommand per analysis. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/version.h"
#include "core/blas.h"
#include "core/dataset.h"


static const char USAGE[] =
    "usage: seqlens COMMAND [ARGS] (seqlens COMMAND --help for each)\n"
    "  info MODEL                  config, parameters, tensors, hook points\n"
    "  verify MODEL DATA --logits FILE   seqlens's logits against PyTorch's: proves the load\n"
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
    "MODEL is a directory with config.json and its weights (model.safetensors,\n"
    "pytorch_model.bin or one .pt/.pth); DATA an HDF5 file (see the README).\n"
    "Exit status: 0 success, 1 runtime failure, 2 bad usage or input.\n";

/* sharded: the command's examples are split over MPI ranks; the others
 * (no forward pass over the data, or liblinear training on all of it) run
 * on rank 0 alone under mpirun. */
static const struct {
    const char *name;
    sl_command_fn run;
    int sharded;
} COMMANDS[] = {
    {"info", cmd_info, 0},
    {"eval", cmd_eval, 1},
    {"capture", cmd_capture, 1},
    {"reverse-test", cmd_reverse, 1},
    {"ablate", cmd_ablate, 1},
    {"gym", cmd_gym, 0},
    {"baseline", cmd_baseline, 0},
    {"inspect", cmd_inspect, 1},
    {"compare", cmd_compare, 1},
    {"probe", cmd_probe, 0},
    {"attribute", cmd_attribute, 1},
    {"report", cmd_report, 0},
    {"analyze", cmd_analyze, 1},
    {"summarize", cmd_summarize, 0},
    {"patch", cmd_patch, 1},
    {"verify", cmd_verify, 1},
};

sl_command_fn sl_command(const char *name, int *sharded)
{
    for (size_t i = 0; i < sizeof COMMANDS / sizeof *COMMANDS; i++)
        if (!strcmp(name, COMMANDS[i].name)) {
            if (sharded) *sharded = COMMANDS[i].sharded;
            return COMMANDS[i].run;
        }
    return NULL;
}

/* A command on every rank (sharded) or on rank 0 alone. */
static int dispatch(int argc, char **argv)
{
    if (argc < 2) return sl_usage(USAGE, 0);
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) return sl_usage(USAGE, 1);
    if (!strcmp(argv[1], "--version")) {
        printf("seqlens %s\n", SEQLENS_VERSION);
        return 0;
    }
    sl_h5_quiet();
    int sharded = 0;
    sl_command_fn run = sl_command(argv[1], &sharded);
    if (!run) {
        if (sl_dist_root()) fprintf(stderr, "seqlens: unknown command '%s' (seqlens --help lists them)\n", argv[1]);
        return SL_EINPUT;
    }
    if (sharded || sl_dist_size() == 1) return run(argc - 2, argv + 2);
    if (!sl_dist_root()) return SL_OK;
    sl_dist_solo(1);
    int rc = run(argc - 2, argv + 2);
    sl_dist_solo(0);
    return rc;
}

int main(int argc, char **argv)
{
    sl_error err = {0};
    sl_blas_pick_core(argv);
    /* past a file-size limit (ulimit -f) a write fails with EFBIG, which
     * the writers report with the path, instead of killing the process */
    signal(SIGXFSZ, SIG_IGN);
    if (sl_dist_init(&argc, &argv, &err)) return sl_report(&err);
    int rc = dispatch(argc, argv);
    /* what went to standard output (eval's JSON, a table) is a result too:
     * a full disk under it is a failure, not a silent truncation */
    errno = 0;
    if (!rc && (fflush(stdout) | ferror(stdout))) {
        sl_fail(&err, SL_ERUNTIME, "standard output: cannot write: %s", errno ? strerror(errno) : "write error");
        rc = sl_report(&err);
    }
    sl_warnings_end(rc == SL_OK && sl_dist_root());
    return sl_dist_finish(rc);
}
