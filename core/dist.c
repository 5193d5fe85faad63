#include "core/dist.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef SEQLENS_MPI
#include <mpi.h>
#endif

static int g_rank, g_size = 1, g_solo;
static sl_error g_stash;       /* this rank's error, printed by settle */

int sl_dist_rank(void) { return g_solo ? 0 : g_rank; }
int sl_dist_size(void) { return g_solo ? 1 : g_size; }
void sl_dist_solo(int on) { g_solo = on; }

void sl_dist_shard_of(int rank, long first, long count, long *r_first, long *r_count)
{
    int K = sl_dist_size();
    long base = count / K, extra = count % K;
    /* the first `extra` ranks take one example more */
    *r_first = first + rank * base + (rank < extra ? rank : extra);
    *r_count = base + (rank < extra);
}

void sl_dist_shard(long first, long count, long *my_first, long *my_count)
{
    sl_dist_shard_of(sl_dist_rank(), first, count, my_first, my_count);
}

int sl_dist_stash(const sl_error *err)
{
    if (sl_dist_size() == 1) return 0;
    if (!g_stash.code) g_stash = *err;
    return 1;
}

#ifdef SEQLENS_MPI

static int g_failed_rank = -1; /* set once ranks agreed on a failure */

int sl_dist_init(int *argc, char ***argv, sl_error *err)
{
    (void)err;
    MPI_Init(argc, argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    /* results are printed once, by rank 0 */
    if (g_rank) (void)!freopen("/dev/null", "w", stdout);
    return SL_OK;
}

int sl_dist_agree(int rc, sl_error *err)
{
    if (sl_dist_size() == 1) return rc;
    if (g_failed_rank >= 0) return err->code ? err->code : SL_ERUNTIME;
    int mine = rc ? g_rank : g_size, who = g_size;
    MPI_Allreduce(&mine, &who, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (who == g_size) return SL_OK;
    sl_error e = {0};
    if (g_rank == who) {
        e = *err;
        if (!e.code) e.code = rc;
    }
    MPI_Bcast(&e, (int)sizeof e, MPI_BYTE, who, MPI_COMM_WORLD);
    g_failed_rank = who;
    *err = e;
    if (g_rank == who && !g_stash.code) g_stash = e;
    return e.code ? e.code : SL_ERUNTIME;
}

int sl_dist_settle(int rc)
{
    if (sl_dist_size() == 1) return rc;
    sl_error e = g_stash;
    if (rc && !e.code) e.code = rc;
    int code = sl_dist_agree(rc, &e);
    if (code && g_failed_rank == g_rank && g_stash.msg[0]) {
        fprintf(stderr, "seqlens: rank %d of %d: %s\n", g_rank, g_size, g_stash.msg);
        g_stash.msg[0] = 0; /* once */
    }
    return code;
}

int sl_dist_finish(int rc)
{
    int code = sl_dist_settle(rc);
    fflush(stdout);
    MPI_Finalize();
    return code;
}

static int too_big(long n, sl_error *err)
{
    return n > INT_MAX ? sl_fail(err, SL_ERUNTIME, "MPI: %ld values are more than one message can carry", n) : SL_OK;
}

int sl_dist_allgather_f32(int rc, float *rows, long first, long count, long width, sl_error *err)
{
    (void)first;
    if (sl_dist_size() == 1) return rc;
    if (!rc) rc = too_big(count * width, err);
    if ((rc = sl_dist_agree(rc, err))) return rc;
    int counts[g_size], displs[g_size];
    for (int r = 0; r < g_size; r++) {
        long f, c;
        sl_dist_shard_of(r, 0, count, &f, &c);
        counts[r] = (int)(c * width);
        displs[r] = (int)(f * width);
    }
    MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, rows, counts, displs, MPI_FLOAT, MPI_COMM_WORLD);
    return SL_OK;
}

int sl_dist_sum_i64(int rc, int64_t *v, long n, sl_error *err)
{
    if (sl_dist_size() == 1) return rc;
    if (!rc) rc = too_big(n, err);
    if ((rc = sl_dist_agree(rc, err))) return rc;
    MPI_Allreduce(MPI_IN_PLACE, v, (int)n, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
    return SL_OK;
}

int sl_dist_max_f64(int rc, double *v, long n, sl_error *err)
{
    if (sl_dist_size() == 1) return rc;
    if (!rc) rc = too_big(n, err);
    if ((rc = sl_dist_agree(rc, err))) return rc;
    MPI_Allreduce(MPI_IN_PLACE, v, (int)n, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    return SL_OK;
}

int sl_dist_bcast_i32(int rc, int32_t *v, long n, sl_error *err)
{
    if (sl_dist_size() == 1) return rc;
    if (!rc) rc = too_big(n, err);
    if ((rc = sl_dist_agree(rc, err))) return rc;
    MPI_Bcast(v, (int)n, MPI_INT32_T, 0, MPI_COMM_WORLD);
    return SL_OK;
}

int sl_dist_ordered_sum(int rc, double *total, const double *rows, long nrows, long width, sl_error *err)
{
    if (sl_dist_size() == 1) return rc;
    if (!rc) rc = too_big(width, err);
    if ((rc = sl_dist_agree(rc, err))) return rc;
    /* a chain, not a tree: a tree would add partial sums in another order */
    if (g_rank > 0) {
        MPI_Recv(total, (int)width, MPI_DOUBLE, g_rank - 1, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        for (long e = 0; e < nrows; e++)
            for (long k = 0; k < width; k++) total[k] += rows[e * width + k];
    }
    if (g_rank + 1 < g_size) MPI_Send(total, (int)width, MPI_DOUBLE, g_rank + 1, 0, MPI_COMM_WORLD);
    MPI_Bcast(total, (int)width, MPI_DOUBLE, g_size - 1, MPI_COMM_WORLD);
    return SL_OK;
}

#else /* one process: every collective is the identity */

int sl_dist_init(int *argc, char ***argv, sl_error *err)
{
    (void)argc;
    (void)argv;
    /* Open MPI's and MPICH's (PMI) launchers say how many ranks they start */
    const char *k = getenv("OMPI_COMM_WORLD_SIZE");
    if (!k) k = getenv("PMI_SIZE");
    if (k && atoi(k) > 1)
        return sl_fail(err, SL_EINPUT, "this seqlens was built without MPI but started as one of %d ranks: run "
                                       "bin/seqlens-mpi under mpirun (make builds it where mpicc is installed)", atoi(k));
    return SL_OK;
}
int sl_dist_finish(int rc) { return rc; }
int sl_dist_agree(int rc, sl_error *err)
{
    (void)err;
    return rc;
}
int sl_dist_settle(int rc) { return rc; }
int sl_dist_allgather_f32(int rc, float *rows, long first, long count, long width, sl_error *err)
{
    (void)rows, (void)first, (void)count, (void)width, (void)err;
    return rc;
}
int sl_dist_sum_i64(int rc, int64_t *v, long n, sl_error *err)
{
    (void)v, (void)n, (void)err;
    return rc;
}
int sl_dist_max_f64(int rc, double *v, long n, sl_error *err)
{
    (void)v, (void)n, (void)err;
    return rc;
}
int sl_dist_bcast_i32(int rc, int32_t *v, long n, sl_error *err)
{
    (void)v, (void)n, (void)err;
    return rc;
}
int sl_dist_ordered_sum(int rc, double *total, const double *rows, long nrows, long width, sl_error *err)
{
    (void)total, (void)rows, (void)nrows, (void)width, (void)err;
    return rc;
}

#endif
