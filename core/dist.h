/* Work spread over MPI ranks (seqlens built with make MPI=1, run under
 * mpirun), and the one-rank identity everywhere else: a build without MPI
 * compiles every call below to a no-op, so the commands hold no #ifdef.
 *
 * The examples a command selects are split into contiguous, balanced shards
 * in rank order; every rank runs the model on its own shard, and what needs
 * the whole data set is gathered or reduced so that every rank ends with
 * the bytes one process would have computed.
 *
 * Failure: every collective below first agrees on whether any rank failed
 * (one MPI_Allreduce of the same signature everywhere, so a rank that fails
 * between two collectives and goes straight to sl_dist_settle still meets
 * the others). The lowest failing rank's error is then copied to every
 * rank, every rank leaves with that error, and only the failing rank prints
 * it (sl_dist_settle). */
#ifndef SL_DIST_H
#define SL_DIST_H

#include <stdint.h>

#include "core/error.h"

/* Call first thing in main; non-root ranks get stdout on /dev/null, so only
 * rank 0 prints results. A build without MPI started by mpirun as one of
 * several ranks fails (SL_EINPUT): each copy would run the whole command
 * into the same output files. */
int sl_dist_init(int *argc, char ***argv, sl_error *err);
/* Agrees on the command's exit status (all ranks leave with the same code),
 * prints the failing rank's stashed error once, finalizes MPI. */
int sl_dist_finish(int rc);

int sl_dist_rank(void);
int sl_dist_size(void);
static inline int sl_dist_root(void) { return sl_dist_rank() == 0; }

/* Solo: rank 0 runs a command that is not sharded (probe, baseline, ...)
 * as if alone; the other ranks skip it. */
void sl_dist_solo(int on);

/* This rank's part of examples [first, first + count): contiguous,
 * balanced, rank order. */
void sl_dist_shard(long first, long count, long *my_first, long *my_count);
/* The same for any rank. */
void sl_dist_shard_of(int rank, long first, long count, long *r_first, long *r_count);

/* Collective: returns SL_OK when no rank failed; else every rank returns
 * the lowest failing rank's code with its message in *err. */
int sl_dist_agree(int rc, sl_error *err);
/* Collective after a command (or an analyze stage): the common exit code;
 * the failing rank prints its error. */
int sl_dist_settle(int rc);
/* cli's sl_report under MPI: keeps the error for sl_dist_settle instead of
 * printing it on every rank. Returns 1 when it did. */
int sl_dist_stash(const sl_error *err);

/* Collective, after agreeing on rc: rows [count][width] of a buffer indexed
 * by example (relative to first) hold this rank's shard; afterwards every
 * rank holds every row. */
int sl_dist_allgather_f32(int rc, float *rows, long first, long count, long width, sl_error *err);
/* Collective: v[n] summed over ranks (integers: exact in any order). */
int sl_dist_sum_i64(int rc, int64_t *v, long n, sl_error *err);
/* Collective: v[n] = the maximum over ranks. */
int sl_dist_max_f64(int rc, double *v, long n, sl_error *err);
/* Collective: v[n] from rank 0 to all. */
int sl_dist_bcast_i32(int rc, int32_t *v, long n, sl_error *err);
/* Collective: totals in example order. Rank 0 has added its examples'
 * rows into total already; rank r > 0 holds its own rows [nrows][width]
 * (in example order) unadded. The running total passes from rank to rank,
 * each adding its rows exactly as one process would have, and the last
 * rank's total reaches every rank: bit for bit the one-process sum, with
 * O(width) bytes sent per rank. */
int sl_dist_ordered_sum(int rc, double *total, const double *rows, long nrows, long width, sl_error *err);

#endif
