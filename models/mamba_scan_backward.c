/* The reverse scan of a Mamba-1 block's backward (models/mamba_grad.c's
 * scan_backward), from the activations its taped forward kept
 * (models/mamba_scan.h). Nothing of the block runs again but the scan's
 * states, SL_SCAN_CHUNK positions at a time from the state kept before the
 * chunk. Where d_inner is a multiple of 16 on AVX-512, sixteen channels to
 * a vector on groups of states held in registers (scan_backward_v16);
 * where it is a multiple of 8, the same at eight lanes (scan_backward_v8g);
 * otherwise eight channels to a vector over all states of a position in
 * turn (chunk_states, chunk_reverse), the last vector padded with zero
 * lanes, which add nothing. All three give the same bits. */
#include <string.h>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include "core/mathx8.h"
#include "core/simd.h"
#include "models/backward.h"
#include "models/mamba_scan.h"

static int round8(int n) { return (n + 7) & ~7; }

/* The chunk's scratch, rows padded to di8 channels: states [C + 1][S]
 * (row 0: the state before the chunk), decays exp(delta A) [C][S], A [S],
 * the carried gradient d logit / d state [S], D, and the per-lane sums of
 * dB and dC over the channels of one position [2][S][8]. */
typedef struct {
    float *st, *at, *A, *ds, *D, *part;
    long plane;
    int di8;
} chunk_bufs;

/* The AVX-512 path's states per group (group_states, group_reverse): 8
 * measured 4% faster than 16 (a group's states, decays and partial sums,
 * about 50 KiB, stay in L1) and 7% faster than 4. */
#define NG 8


/* The 8-lane path's (scan_backward_v8g) states per group: 4 leaves
 * registers for the loop's other vectors on AVX2's sixteen. */
#define NG8 4
_Static_assert(NG8 <= SL_N8_MAX, "group_decays8 takes a group's decays in one sl_exp_clamped8n");

/* The scratch of the paths on groups of states (scan_backward_groups), W
 * lanes and G states a group: one group's states [C + 1][G][W] and decays
 * [C][G][W], B and C of each group of states [S / G][C][2][G], A and the
 * carried gradient [di / W][S][W], the per-lane sums of dB and dC of every
 * position of the chunk [C][S][2][8], the state before the chunk [S][di]. */
typedef struct {
    float *st;    /* [C + 1][G][W]: a group's states, row 0 the one before the chunk */
    float *at;    /* [C][G][W]: exp(delta A) */
    float *bc;    /* [S / G][C][2][G]: B, then C of each group of states */
    float *A;     /* [di / W][S][W] */
    float *ds;    /* [di / W][S][W]: g, carried from chunk to chunk */
    float *part;  /* [C][S][2][8]: dB's, then dC's per-lane sums */
    float *start; /* [S][di]: the chunk's checkpoint, copied */
} group_bufs;

static size_t group_floats(int di, int S, int W, int G)
{
    size_t C = SL_SCAN_CHUNK, groups = ((size_t)S + G - 1) / G;
    return (2 * C + 1) * W * G + 2 * G * C * groups + 3 * (size_t)S * di + 16 * C * (size_t)S;
}

size_t sl_mamba_scan_scratch_floats(int di, int S)
{
    size_t di8 = (size_t)round8(di), plane = (size_t)S * di8, v8 = (2 * SL_SCAN_CHUNK + 3) * plane + di8 + 16 * (size_t)S;
    size_t most = v8 > group_floats(di, S, 16, NG) ? v8 : group_floats(di, S, 16, NG);
    return most > group_floats(di, S, 8, NG8) ? most : group_floats(di, S, 8, NG8);
}

static chunk_bufs chunk_view(int di, int S, float *base)
{
    chunk_bufs k = {.di8 = round8(di)};
    k.plane = (long)S * k.di8;
    k.st = base;
    k.at = k.st + (SL_SCAN_CHUNK + 1) * k.plane;
    k.A = k.at + SL_SCAN_CHUNK * k.plane;
    k.ds = k.A + k.plane;
    k.D = k.ds + k.plane;
    k.part = k.D + k.di8;
    return k;
}


/* dd *= dsoftplus on n floats: softplus's backward from what its forward kept */
static void times_kept(const float *dsoftplus, float *dd, long n)
{
#pragma omp simd
    for (long k = 0; k < n; k++) dd[k] *= dsoftplus[k];
}

static inline float hsum(const float *p)
{
    return ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]));
}

/* dB and dC of one position from its lanes' partial sums: part holds 2S
 * runs of 8 (dB of state n at 16 n, dC at 16 n + 8), each summed by hsum's
 * tree into row[n] (dB) and row[S + n] (dC). With AVX2, eight runs at a
 * time transposed, so that each lane adds its run's eight in hsum's tree:
 * the same bits, in a few vector adds instead of some 450 scalar steps a
 * position (the scalar loop was 1.6% of a Mamba gradient here). */
static void partials_to_row(const float *part, int S, float *row)
{
    int n = 0;
#if defined(__AVX2__)
    for (; n + 4 <= S; n += 4) {
        const float *p = part + 16L * n;
        v8f r[8], c[8];
        for (int j = 0; j < 8; j++) r[j] = v8_load(p + 8 * j);
        v8_transpose8(r, c); /* c_k[j] = r_j[k] */
        __m256 h = (__m256)(((c[0] + c[1]) + (c[2] + c[3])) + ((c[4] + c[5]) + (c[6] + c[7])));
        /* lane j is run j: dB of n + j/2 where j is even, dC where odd */
        h = _mm256_permutevar8x32_ps(h, _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7));
        _mm_storeu_ps(row + n, _mm256_castps256_ps128(h));
        _mm_storeu_ps(row + S + n, _mm256_extractf128_ps(h, 1));
    }
#endif
    for (; n < S; n++) {
        row[n] = hsum(part + 16L * n);
        row[S + n] = hsum(part + 16L * n + 8);
    }
}

/* The scan's inputs for one block. */
typedef struct {
    const float *xc, *delta, *xdbl, *dy, *D; /* dy: d logit / d y, the scan's output */
    int T, di, S, R, nx;                     /* R: where B begins in a row of xdbl, nx: its stride */
} scan_in;
/* s_t for t0 <= t < t1 into st[1 + t - t0] from st[0] = s_{t0-1}, and
 * exp(delta_t A) into at[t - t0]: the forward's recurrence (scan_v8). */
static void chunk_states(const chunk_bufs *k, const scan_in *in, int t0, int t1)
{
    int di = in->di, S = in->S;
    for (int t = t0; t < t1; t++) {
        const float *sp = k->st + (t - t0) * k->plane, *Bt = in->xdbl + (long)t * in->nx + in->R;
        float *sn = k->st + (t - t0 + 1) * k->plane, *an = k->at + (t - t0) * k->plane;
        for (int c = 0; c < di; c += 8) {
            v8f d8 = sl_load_lanes(in->delta + (long)t * di, c, di), dx = d8 * sl_load_lanes(in->xc + (long)t * di, c, di);
            for (int n = 0; n < S; n++) {
                long o = (long)n * k->di8 + c;
                v8f a = sl_scan_decay(d8, k->A + o);
                v8_store(sn + o, a * v8_load(sp + o) + dx * v8_set1(Bt[n]));
                v8_store(an + o, a);
            }
        }
    }
}

/* Positions t1-1 down to t0 of the reverse scan, with g = d logit / d s_t
 * carried in k->ds: s_t = a s_{t-1} + delta x B and y = s . C + D x give
 * g += dy C, d delta += g (s_{t-1} a A + x B), dx += g delta B + D dy,
 * dB += g delta x, dC += dy s_t, then g *= a for s_{t-1}. dx and d delta
 * of eight channels stay in registers across the states; dB and dC sum
 * across channels in per-lane partials, reduced once per position. */
static void chunk_reverse(const chunk_bufs *k, const scan_in *in, int t0, int t1, float *dx, float *dd, float *dxdbl)
{
    int di = in->di, S = in->S;
    float *dB = k->part, *dC = k->part + 8L * S;
    for (int t = t1 - 1; t >= t0; t--) {
        const float *s = k->st + (t - t0 + 1) * k->plane, *p = s - k->plane, *a = k->at + (t - t0) * k->plane;
        const float *Bt = in->xdbl + (long)t * in->nx + in->R, *Ct = Bt + S;
        for (int q = 0; q < 2 * S; q++) v8_store(k->part + 8 * q, v8_set1(0.0f));
        for (int c = 0; c < di; c += 8) {
            v8f d8 = sl_load_lanes(in->delta + (long)t * di, c, di), x8 = sl_load_lanes(in->xc + (long)t * di, c, di);
            v8f dy8 = sl_load_lanes(in->dy + (long)t * di, c, di), dxv = d8 * x8, u = v8_set1(0.0f), acc = u;
            for (int n = 0; n < S; n++) {
                long o = (long)n * k->di8 + c;
                v8f a8 = v8_load(a + o), g = v8_load(k->ds + o) + dy8 * v8_set1(Ct[n]);
                v8_store(dC + 8 * n, v8_load(dC + 8 * n) + dy8 * v8_load(s + o));
                v8_store(dB + 8 * n, v8_load(dB + 8 * n) + g * dxv);
                acc += g * (v8_load(p + o) * a8) * v8_load(k->A + o);
                u += g * v8_set1(Bt[n]);
                v8_store(k->ds + o, g * a8);
            }
            sl_store_lanes(dx + (long)t * di, c, di, v8_load(k->D + c) * dy8 + d8 * u);
            sl_store_lanes(dd + (long)t * di, c, di, acc + x8 * u);
        }
        float *row = dxdbl + (long)t * in->nx + in->R;
        for (int n = 0; n < S; n++) {
            row[n] = hsum(dB + 8 * n);
            row[S + n] = hsum(dC + 8 * n);
        }
    }
}

/* The reverse scan on groups of states, W lanes and G states a group
 * (scan_backward_v16, scan_backward_v8g): for each chunk, last first,
 * each block of W channels and each group of states, states() runs the
 * group's states over the chunk and reverse() at once their reverse;
 * then the chunk's dB and dC partials are reduced, and with dsoftplus,
 * softplus's backward runs on the chunk's rows of d delta while they are
 * in L1. */
typedef void group_states_fn(const group_bufs *k, const scan_in *in, const float *start, int c, int n0, int nn, int t0,
                             int t1);
typedef void group_reverse_fn(const group_bufs *k, const scan_in *in, int c, int n0, int nn, int t0, int t1, float *dx,
                              float *dd);

/* Reads n floats of x, a load a cache line, so that the hardware brings
 * them in as one stream (see scan_backward_groups). */
static void touch(const float *x, long n)
{
    for (long k = 0; k < n; k += 16) (void)*(const volatile float *)(x + k); /* a load the compiler keeps */
}

static void scan_backward_groups(const scan_in *in, const float *A_t, const float *ckpt, const float *dsoftplus,
                                 float *scratch, float *dx, float *dd, float *dxdbl, int W, int G,
                                 group_states_fn *states, group_reverse_fn *reverse)
{
    int di = in->di, S = in->S, C = SL_SCAN_CHUNK;
    group_bufs k = {.st = scratch};
    k.at = k.st + (long)W * G * (C + 1);
    k.bc = k.at + (long)W * G * C;
    k.A = k.bc + 2L * G * C * ((S + G - 1) / G);
    k.ds = k.A + (long)S * di;
    k.part = k.ds + (long)S * di;
    k.start = k.part + 16L * C * S;
    for (int c = 0; c < di; c += W)
        for (int n = 0; n < S; n++)
            memcpy(k.A + (long)c * S + (long)W * n, A_t + (long)n * di + c, (size_t)W * sizeof *k.A);
    memset(k.ds, 0, (size_t)S * di * sizeof *k.ds);
    for (int t0 = (in->T - 1) / C * C; t0 >= 0; t0 -= C) {
        int t1 = t0 + C < in->T ? t0 + C : in->T;
        /* The chunk runs through the checkpoint and the rows of x, delta
         * and dy in blocks of 8 channels: a few lines at a time, far apart
         * (rows of di floats), long out of the caches (the tape is written
         * first to last and read last to first), and each block's first
         * loads stalled. Copied (the checkpoint) and touched (the rows) in
         * one sweep each, a Mamba gradient at L 2,497 ran 3-4% faster (perf:
         * group_states8 had spent 13% of its time on the checkpoint's
         * loads); prefetching the next chunk's rows (1% at L 1,248 before)
         * then no longer made a difference. */
        const float *start = t0 ? k.start : NULL;
        if (t0) memcpy(k.start, ckpt + (long)(t0 / C) * S * di, (size_t)S * di * sizeof *k.start);
        touch(in->dy + (long)t0 * di, (long)(t1 - t0) * di);
        touch(in->xc + (long)t0 * di, (long)(t1 - t0) * di);
        touch(in->delta + (long)t0 * di, (long)(t1 - t0) * di);
        /* softplus' rows too (times_kept below had waited on each of their
         * loads: a quarter of this function's own samples) */
        if (dsoftplus) touch(dsoftplus + (long)t0 * di, (long)(t1 - t0) * di);
        for (int t = t0; t < t1; t++) {
            const float *B = in->xdbl + (long)t * in->nx + in->R;
            for (int n0 = 0; n0 < S; n0 += G) {
                float *bt = k.bc + 2L * G * C * (n0 / G) + 2L * G * (t - t0);
                for (int n = 0; n < G; n++) {
                    bt[n] = n0 + n < S ? B[n0 + n] : 0.0f;
                    bt[G + n] = n0 + n < S ? B[S + n0 + n] : 0.0f;
                }
            }
        }
        for (int c = 0; c < di; c += W)
            for (int n0 = 0; n0 < S; n0 += G) {
                int nn = S - n0 < G ? S - n0 : G;
                states(&k, in, start, c, n0, nn, t0, t1);
                reverse(&k, in, c, n0, nn, t0, t1, dx, dd);
            }
        for (int t = t0; t < t1; t++) {
            partials_to_row(k.part + 16L * S * (t - t0), S, dxdbl + (long)t * in->nx + in->R);
        }
        if (dsoftplus) times_kept(dsoftplus + (long)t0 * di, dd + (long)t0 * di, (long)(t1 - t0) * di);
    }
}

/* The 8-lane reverse scan where d_inner is a multiple of 8 (AVX2 and
 * below): scan_backward_v16's method (read its comment) at eight lanes.
 * For each chunk, each block of eight channels and each group of NG8
 * states, the group's states over the chunk with the states in registers
 * (group_states8), then at once their reverse with g in registers
 * (group_reverse8), a position's states and decays 32 bytes apart in L1.
 * Every sum runs in chunk_reverse's order, so the bits are the same: dx
 * and d delta over the states in order, carried from group to group in dx
 * and dd; dB and dC of a position and state over the blocks of channels
 * in order, in per-lane partials kept for every position of the chunk and
 * reduced at the chunk's end. */

/* Position t0 + i of group_states8's chunk, its decays a and delta x dx:
 * the group's states below nn move on (s = a s + dx B) and are kept. */
static inline __attribute__((always_inline)) void group_step8(const float *bc, float *st, int i, const v8f *a, v8f dx,
                                                              v8f *s, int nn)
{
    const float *Bt = bc + 2L * NG8 * i;
    float *sn = st + 8L * NG8 * (i + 1);
#pragma GCC unroll 8
    for (int n = 0; n < NG8; n++)
        if (n < nn) {
            s[n] = a[n] * s[n] + dx * v8_set1(Bt[n]);
            v8_store(sn + 8 * n, s[n]);
        }
}

/* exp(delta_t A) of channels c..c+7 and a whole group's NG8 states for
 * t0 <= t < t1 into at[t - t0][n], sl_scan_decay8n's operations (the same
 * bits) with A held in registers. Apart from the states' recurrence no
 * position's exps wait on the one before, so the core overlaps them; two
 * positions' at once, as group_states8 took them when it ran both in one
 * loop, spilled registers and measured slower here (a harness of the
 * reverse scan, 2,048 x 128 x 16: best of 100, alternated). */
static inline __attribute__((always_inline)) void group_decays8(const scan_in *in, const float *A, int c, int t0,
                                                                int t1, float *at)
{
    v8f An[NG8];
    for (int n = 0; n < NG8; n++) An[n] = v8_load(A + 8 * n);
    for (int t = t0; t < t1; t++) {
        v8f d8 = v8_load(in->delta + (long)t * in->di + c), x[NG8], a[NG8];
        for (int n = 0; n < NG8; n++) x[n] = sl_exp_floor8(d8 * An[n]);
        sl_exp_clamped8n(x, a, NG8);
        for (int n = 0; n < NG8; n++) v8_store(at + 8L * NG8 * (t - t0) + 8 * n, a[n]);
    }
}

/* The states of channels c..c+7 and states n0..n0+nn-1 for t0 <= t < t1
 * from start (the state before the chunk, [S][di]; NULL: zeros), the
 * forward's recurrence (chunk_states). */
__attribute__((noinline)) static void group_states8(const group_bufs *k, const scan_in *in, const float *start, int c,
                                                    int n0, int nn, int t0, int t1)
{
    int di = in->di;
    const float *A = k->A + (long)c * in->S + 8L * n0, *bc = k->bc + 2L * NG8 * SL_SCAN_CHUNK * (n0 / NG8);
    float *st = k->st, *at = k->at;
    v8f s[NG8];
    for (int n = 0; n < NG8; n++) {
        s[n] = n < nn && start ? v8_load(start + (long)(n0 + n) * di + c) : v8_set1(0.0f);
        v8_store(st + 8 * n, s[n]);
    }
    if (nn == NG8) {
        /* the chunk's decays first, then the recurrence on them: apart,
         * the exps carry nothing from one position to the next and the
         * states wait on nothing but an L1 load */
        group_decays8(in, A, c, t0, t1, at);
        for (int t = t0; t < t1; t++) {
            v8f dx = v8_load(in->delta + (long)t * di + c) * v8_load(in->xc + (long)t * di + c), a[NG8];
            for (int n = 0; n < NG8; n++) a[n] = v8_load(at + 8L * NG8 * (t - t0) + 8 * n);
            group_step8(bc, st, t - t0, a, dx, s, NG8);
        }
        return;
    }
    for (int t = t0; t < t1; t++) {
        v8f d8 = v8_load(in->delta + (long)t * di + c), dx = d8 * v8_load(in->xc + (long)t * di + c), a[NG8];
        for (int n = 0; n < nn; n++) {
            sl_scan_decay8n(d8, A + 8 * n, 8, a + n, 1);
            v8_store(at + 8L * NG8 * (t - t0) + 8 * n, a[n]);
        }
        group_step8(bc, st, t - t0, a, dx, s, nn);
    }
}

/* The reverse over t1-1..t0 of the group group_states8 left (chunk_reverse's
 * sums). first: the first block of channels, whose dB and dC partials
 * start from zeros; last: the group of the last states, which finishes dx
 * and d delta. Inlined with first, last and (for a whole group) nn
 * constant: with nn a variable each state's step sat behind a test and GCC
 * kept flags for them on the stack; constant, a Mamba gradient at L 2,497
 * ran 2-3% faster (bench/grad_time, 12 alternations: faster in 10). */
static inline __attribute__((always_inline)) void group_reverse8_n(const group_bufs *k, const scan_in *in, int c, int n0,
                                                                   int nn, int t0, int t1, const int first,
                                                                   const int last, float *dx, float *dd)
{
    int di = in->di, S = in->S;
    const float *A = k->A + (long)c * S + 8L * n0, *bc = k->bc + 2L * NG8 * SL_SCAN_CHUNK * (n0 / NG8);
    const float *st = k->st, *at = k->at;
    float *ds = k->ds + (long)c * S + 8L * n0, *part = k->part + 16L * n0;
    v8f g[NG8];
    for (int n = 0; n < NG8; n++) g[n] = n < nn ? v8_load(ds + 8 * n) : v8_set1(0.0f);
    for (int t = t1 - 1; t >= t0; t--) {
        const float *s = st + 8L * NG8 * (t - t0 + 1), *p = s - 8 * NG8, *a = at + 8L * NG8 * (t - t0);
        const float *Bt = bc + 2L * NG8 * (t - t0), *Ct = Bt + NG8;
        float *pt = part + 16L * S * (t - t0);
        long o = (long)t * di + c;
        v8f d8 = v8_load(in->delta + o), x8 = v8_load(in->xc + o), dy8 = v8_load(in->dy + o), dxv = d8 * x8;
        v8f u = n0 ? v8_load(dx + o) : v8_set1(0.0f), acc = n0 ? v8_load(dd + o) : v8_set1(0.0f);
#pragma GCC unroll 8
        for (int n = 0; n < NG8; n++)
            if (n < nn) {
                float *dB = pt + 16 * n, *dC = dB + 8;
                v8f a8 = v8_load(a + 8 * n);
                g[n] = g[n] + dy8 * v8_set1(Ct[n]);
                v8_store(dC, (first ? v8_set1(0.0f) : v8_load(dC)) + dy8 * v8_load(s + 8 * n));
                v8_store(dB, (first ? v8_set1(0.0f) : v8_load(dB)) + g[n] * dxv);
                acc += g[n] * (v8_load(p + 8 * n) * a8) * v8_load(A + 8 * n);
                u += g[n] * v8_set1(Bt[n]);
                g[n] = g[n] * a8;
            }
        if (last) {
            v8_store(dx + o, v8_load(in->D + c) * dy8 + d8 * u);
            v8_store(dd + o, acc + x8 * u);
        } else {
            v8_store(dx + o, u);
            v8_store(dd + o, acc);
        }
    }
    for (int n = 0; n < nn; n++) v8_store(ds + 8 * n, g[n]);
}

__attribute__((noinline)) static void group_reverse8(const group_bufs *k, const scan_in *in, int c, int n0, int nn,
                                                     int t0, int t1, float *dx, float *dd)
{
    int last = n0 + NG8 >= in->S;
    if (nn < NG8) group_reverse8_n(k, in, c, n0, nn, t0, t1, c == 0, last, dx, dd);
    else if (c == 0) {
        if (last) group_reverse8_n(k, in, c, n0, NG8, t0, t1, 1, 1, dx, dd);
        else group_reverse8_n(k, in, c, n0, NG8, t0, t1, 1, 0, dx, dd);
    } else {
        if (last) group_reverse8_n(k, in, c, n0, NG8, t0, t1, 0, 1, dx, dd);
        else group_reverse8_n(k, in, c, n0, NG8, t0, t1, 0, 0, dx, dd);
    }
}

/* sl_mamba_scan_backward on groups of NG8 states, 8 lanes */
static void scan_backward_v8g(const scan_in *in, const float *A_t, const float *ckpt, const float *dsoftplus,
                              float *scratch, float *dx, float *dd, float *dxdbl)
{
    scan_backward_groups(in, A_t, ckpt, dsoftplus, scratch, dx, dd, dxdbl, 8, NG8, group_states8, group_reverse8);
}

#ifdef __AVX512F__
/* The reverse scan where d_inner is a multiple of 16, on AVX-512: for each
 * chunk, each block of sixteen channels and each group of NG states in
 * turn, the group's states over the chunk's positions with the states in
 * registers (group_states), then at once their reverse with g (d logit /
 * d state) in registers (group_reverse). One group's states and decays
 * stay in L1 between the two, stored in the order the reverse reads them
 * back: one position's states after another, 64 bytes apart. (The 8-lane
 * path's rows [state][channel] put a position's loads and stores 512 bytes
 * apart and every buffer a multiple of 4 KiB from the others, which the
 * core takes for dependences between them: 4K aliasing.) 20% faster than
 * running chunk_reverse's loops sixteen lanes wide.
 *
 * Every sum runs in chunk_reverse's order, so the bits are the same:
 * - dx and d delta of a position and channel sum over the states in order,
 *   carried from one group of states to the next in dx and dd;
 * - dB and dC of a position and state sum over the channels in per-lane
 *   partials of eight lanes, kept for every position of the chunk and
 *   added to block after block of sixteen channels, each as its two halves
 *   in turn, then reduced once at the chunk's end;
 * - g, the states and the decays are the same products and sums. */

static inline v8f lo8(v16f v) { return (v8f)_mm512_castps512_ps256((__m512)v); }
static inline v8f hi8(v16f v) { return (v8f)_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd((__m512)v), 1)); }

#define SL_INLINE static inline __attribute__((always_inline))

/* The states of channels c..c+15 and states n0..n0+nn-1 for t0 <= t < t1
 * from start (the state before the chunk, [S][di]; NULL: zeros), the
 * forward's recurrence (scan_v16). Not inlined, and nn not a constant for
 * a full group: both measured 5-10% slower (GCC then hoists the states'
 * addresses out of the loop and spills them). */
__attribute__((noinline)) static void group_states(const group_bufs *k, const scan_in *in, const float *start, int c,
                                                   int n0, int nn, int t0, int t1)
{
    int di = in->di;
    const float *A = k->A + (long)c * in->S + 16L * n0, *bc = k->bc + 2L * NG * SL_SCAN_CHUNK * (n0 / NG);
    float *st = k->st, *at = k->at;
    v16f s[NG];
    for (int n = 0; n < NG; n++) {
        s[n] = n < nn && start ? v16_load(start + (long)(n0 + n) * di + c) : v16_set1(0.0f);
        v16_store(st + 16 * n, s[n]);
    }
    for (int t = t0; t < t1; t++) {
        const float *Bt = bc + 2L * NG * (t - t0);
        float *sn = st + 16L * NG * (t - t0 + 1), *an = at + 16L * NG * (t - t0);
        v16f d16 = v16_load(in->delta + (long)t * di + c), dx = d16 * v16_load(in->xc + (long)t * di + c);
#pragma GCC unroll 16
        for (int n = 0; n < NG; n++)
            if (n < nn) {
                v16f a = sl_scan_decay16(d16, A + 16 * n);
                s[n] = a * s[n] + dx * v16_set1(Bt[n]);
                v16_store(sn + 16 * n, s[n]);
                v16_store(an + 16 * n, a);
            }
    }
}

/* The reverse over t1-1..t0 of the group group_states left, for
 * s_t = a s_{t-1} + delta x B, y = s . C + D x (chunk_reverse's sums).
 * first: the first block of channels, whose dB and dC partials start from
 * zeros; last: the group of the last states, which finishes dx and d delta
 * (other groups leave their sums there for the next). Inlined with first
 * constant. */
SL_INLINE void group_reverse_n(const group_bufs *k, const scan_in *in, int c, int n0, int nn, int t0, int t1, int first,
                               int last, float *dx, float *dd)
{
    int di = in->di, S = in->S;
    const float *A = k->A + (long)c * S + 16L * n0, *bc = k->bc + 2L * NG * SL_SCAN_CHUNK * (n0 / NG);
    const float *st = k->st, *at = k->at;
    float *ds = k->ds + (long)c * S + 16L * n0, *part = k->part + 16L * n0;
    v16f g[NG];
    for (int n = 0; n < NG; n++) g[n] = n < nn ? v16_load(ds + 16 * n) : v16_set1(0.0f);
    for (int t = t1 - 1; t >= t0; t--) {
        const float *s = st + 16L * NG * (t - t0 + 1), *p = s - 16 * NG, *a = at + 16L * NG * (t - t0);
        const float *Bt = bc + 2L * NG * (t - t0), *Ct = Bt + NG;
        float *pt = part + 16L * S * (t - t0);
        long o = (long)t * di + c;
        v16f d16 = v16_load(in->delta + o), x16 = v16_load(in->xc + o), dy16 = v16_load(in->dy + o), dxv = d16 * x16;
        v16f u = n0 ? v16_load(dx + o) : v16_set1(0.0f), acc = n0 ? v16_load(dd + o) : v16_set1(0.0f);
        v8f dyl = lo8(dy16), dyh = hi8(dy16), dxl = lo8(dxv), dxh = hi8(dxv);
#pragma GCC unroll 16
        for (int n = 0; n < NG; n++)
            if (n < nn) {
                float *dB = pt + 16 * n, *dC = dB + 8;
                v16f a16 = v16_load(a + 16 * n);
                g[n] = g[n] + dy16 * v16_set1(Ct[n]);
                v8f pc = (first ? v8_set1(0.0f) : v8_load(dC)) + dyl * v8_load(s + 16 * n);
                v8f pb = (first ? v8_set1(0.0f) : v8_load(dB)) + lo8(g[n]) * dxl;
                v8_store(dC, pc + dyh * v8_load(s + 16 * n + 8));
                v8_store(dB, pb + hi8(g[n]) * dxh);
                acc += g[n] * (v16_load(p + 16 * n) * a16) * v16_load(A + 16 * n);
                u += g[n] * v16_set1(Bt[n]);
                g[n] = g[n] * a16;
            }
        if (last) {
            v16_store(dx + o, v16_load(in->D + c) * dy16 + d16 * u);
            v16_store(dd + o, acc + x16 * u);
        } else {
            v16_store(dx + o, u);
            v16_store(dd + o, acc);
        }
    }
    for (int n = 0; n < nn; n++) v16_store(ds + 16 * n, g[n]);
}

__attribute__((noinline)) static void group_reverse(const group_bufs *k, const scan_in *in, int c, int n0, int nn,
                                                    int t0, int t1, float *dx, float *dd)
{
    int last = n0 + NG >= in->S;
    if (c == 0) group_reverse_n(k, in, c, n0, nn, t0, t1, 1, last, dx, dd);
    else group_reverse_n(k, in, c, n0, nn, t0, t1, 0, last, dx, dd);
}

/* sl_mamba_scan_backward on groups of NG states, 16 lanes */
static void scan_backward_v16(const scan_in *in, const float *A_t, const float *ckpt, const float *dsoftplus,
                              float *scratch, float *dx, float *dd, float *dxdbl)
{
    scan_backward_groups(in, A_t, ckpt, dsoftplus, scratch, dx, dd, dxdbl, 16, NG, group_states, group_reverse);
}
#endif

/* The whole reverse scan, last chunk first; dx, d delta (d of its
 * pre-activation with dsoftplus) and the B, C columns of dxdbl are
 * written, not added to. */
void sl_mamba_scan_backward(const float *A_t, const float *D, const float *ckpt, const float *xc, const float *delta,
                            const float *dsoftplus, const float *xdbl, int ldb, int boff, const float *dy, int T, int di,
                            int S, float *scratch, float *dx, float *dd, float *dxdbl)
{
    const scan_in ins = {xc, delta, xdbl, dy, D, T, di, S, boff, ldb}, *in = &ins;
#ifdef __AVX512F__
    if (di % 16 == 0) {
        scan_backward_v16(in, A_t, ckpt, dsoftplus, scratch, dx, dd, dxdbl);
        return;
    }
#endif
    if (di % 8 == 0) {
        scan_backward_v8g(in, A_t, ckpt, dsoftplus, scratch, dx, dd, dxdbl);
        return;
    }
    chunk_bufs k = chunk_view(di, S, scratch);
    memset(k.A, 0, (size_t)(2 * k.plane + k.di8) * sizeof *k.A); /* A, ds, D with their padding */
    for (int n = 0; n < S; n++) memcpy(k.A + (long)n * k.di8, A_t + (long)n * di, (size_t)di * sizeof *k.A);
    memcpy(k.D, D, (size_t)di * sizeof *k.D);
    memset(k.st, 0, (size_t)k.plane * sizeof *k.st);
    for (int t0 = (T - 1) / SL_SCAN_CHUNK * SL_SCAN_CHUNK; t0 >= 0; t0 -= SL_SCAN_CHUNK) {
        int t1 = t0 + SL_SCAN_CHUNK < T ? t0 + SL_SCAN_CHUNK : T;
        const float *start = ckpt + (long)(t0 / SL_SCAN_CHUNK) * S * di;
        for (int n = 0; n < S; n++)
            if (t0) memcpy(k.st + (long)n * k.di8, start + (long)n * di, (size_t)di * sizeof *k.st);
            else memset(k.st + (long)n * k.di8, 0, (size_t)di * sizeof *k.st);
        chunk_states(&k, in, t0, t1);
        chunk_reverse(&k, in, t0, t1, dx, dd, dxdbl);
    }
    if (dsoftplus) times_kept(dsoftplus, dd, (long)T * di);
}
