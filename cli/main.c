/* seqlens: one binary, one subcommand per analysis. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/registry.h"
#include "cli/version.h"
#include "core/blas.h"
#include "core/dataset.h"

/* A command on every rank (sharded) or on rank 0 alone. */
static int dispatch(int argc, char **argv)
{
    if (argc < 2) return sl_usage(sl_commands_usage(), 0);
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help"))
        return sl_usage(sl_commands_usage(), 1);
    if (!strcmp(argv[1], "--version")) {
        printf("seqlens %s\n", SEQLENS_VERSION);
        return 0;
    }
    sl_h5_quiet();
    const sl_command *c = sl_command_find(argv[1]);
    if (!c) {
        if (sl_dist_root()) fprintf(stderr, "seqlens: unknown command '%s' (seqlens --help lists them)\n", argv[1]);
        return SL_EINPUT;
    }
    if ((c->flags & SL_CMD_SHARDED) || sl_dist_size() == 1) return c->run(argc - 2, argv + 2);
    if (!sl_dist_root()) return SL_OK;
    sl_dist_solo(1);
    int rc = c->run(argc - 2, argv + 2);
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
