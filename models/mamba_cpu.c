/* Mamba-1's kernels on the CPU, positions 0..len-1 of one example
 * (mamba_ssm's slow path), behind the CPU operations (models/cpu_ops.c).
 * Layouts are position-major; the scan state is [d_state, d_inner] so that
 * its inner loop runs across channels and vectorises. */
#include <string.h>

#include "core/mathx.h"
#include "core/mathx16.h"
#include "core/mathx8.h"
#include "core/simd.h"
#include "models/mamba_scan.h"

/* The row SL_AHEAD positions on, of n floats, asked for a line at a time.
 * The gate's z and the conv's x are halves of in_proj's rows (1 KiB apart
 * at d_inner 128), written long before, and came from memory: 56% of the
 * gate's samples sat on z's loads, which the hardware prefetchers did not
 * hide (perf, a Mamba sweep on Zen 3); asked for 8 rows ahead, the gate fell
 * from 7.4% of the sweep to 4.1%, the conv from 5.5% to 4.4%. */
#define SL_AHEAD 8
#if !defined(__AVX512F__) && defined(SL_HAVE_MATHX8) /* only the 8-lane loops ask: clang rejects an unused static function */
static inline void prefetch_ahead(const float *row, long ld, int t, int T, int n)
{
    if (t + SL_AHEAD < T)
        for (int c = 0; c < n; c += 16) __builtin_prefetch(row + SL_AHEAD * ld + c);
}
#endif

/* The conv of channels c0.. (at most SL_CONV_VECS vectors of 8), 8 lanes:
 * the taps gathered once, then the positions in order; the sum is the
 * bias, then tap 0 (the oldest position) to tap K - 1. */
static void conv_v8(const float *x, int ldx, int T, int di, int K, const float *w, const float *b, float *out)
{
    for (int c0 = 0; c0 < di; c0 += 8 * SL_CONV_VECS) {
        int nv = (di - c0 + 7) / 8 < SL_CONV_VECS ? (di - c0 + 7) / 8 : SL_CONV_VECS;
        v8f wk[64 * SL_CONV_VECS], b8[SL_CONV_VECS];
        for (int v = 0; v < nv; v++) {
            sl_conv_taps(w, K, c0 + 8 * v, di, wk + v * K);
            b8[v] = b ? sl_load_lanes(b, c0 + 8 * v, di) : v8_set1(0.0f);
        }
        for (int t = 0; t < T; t++)
            for (int v = 0, c = c0; v < nv; v++, c += 8) {
                v8f o = b8[v];
                for (int k = t < K - 1 ? K - 1 - t : 0; k < K; k++)
                    o = v8_fma(wk[v * K + k], sl_load_lanes(x + (long)(t - (K - 1) + k) * ldx, c, di), o);
                sl_store_lanes(out + (long)t * di, c, di, o);
            }
    }
}

#ifdef __AVX512F__
/* One position's conv of N vectors of sixteen channels from c (lanes
 * below nc) into out, through SiLU where silu; then SiLU' of the conv into
 * dsilu (if not NULL). */
static inline __attribute__((always_inline)) void conv_at16(const float *xr, int ldx, int k0, const int K,
                                                            const float (*wt)[SL_CONV_BLOCK], const float *bt,
                                                            int c, int nc, long at, float *out, float *dsilu,
                                                            int silu, const int N)
{
    v16f o[SL_N16_MAX], g[SL_N16_MAX];
    __mmask16 m[SL_N16_MAX];
    SL_EACH(j, N) m[j] = sl_lanes16(c + 16 * j, nc), o[j] = sl_load16(bt + c + 16 * j, m[j]);
    for (int k = k0; k < K; k++)
        SL_EACH(j, N) o[j] = v16_fma(sl_load16(wt[k] + c + 16 * j, m[j]), sl_load16(xr + (long)k * ldx + c + 16 * j, m[j]), o[j]);
    if (dsilu) {
        sl_silu_and_grad16n(o, g, N);
        SL_EACH(j, N) sl_store16(dsilu + at + 16 * j, m[j], g[j]);
    } else if (silu) {
        sl_silu16n(o, N);
    }
    SL_EACH(j, N) sl_store16(out + at + 16 * j, m[j], o[j]);
}

/* SiLU of N vectors of a row from c (lanes below di), SiLU' into dsilu
 * (if not NULL) */
static inline __attribute__((always_inline)) void silu_at16(const float *x, float *out, float *dsilu, int c, int di,
                                                            const int N)
{
    v16f v[SL_N16_MAX], g[SL_N16_MAX];
    __mmask16 m[SL_N16_MAX];
    SL_EACH(j, N) m[j] = sl_lanes16(c + 16 * j, di), v[j] = sl_load16(x + c + 16 * j, m[j]);
    if (dsilu) {
        sl_silu_and_grad16n(v, g, N);
        SL_EACH(j, N) sl_store16(dsilu + c + 16 * j, m[j], g[j]);
    } else {
        sl_silu16n(v, N);
    }
    SL_EACH(j, N) sl_store16(out + c + 16 * j, m[j], v[j]);
}

/* SiLU of T rows of di, in rows of ldx and ldo (dsilu: of di) */
static void silu_rows16(const float *x, int ldx, int T, int di, float *out, int ldo, float *dsilu)
{
    for (int t = 0; t < T; t++) {
        const float *xr = x + (long)t * ldx;
        float *orow = out + (long)t * ldo, *grow = dsilu ? dsilu + (long)t * di : NULL;
        for (int c = 0; c < di; c += 16) silu_at16(xr, orow, grow, c, di, 1);
    }
}

/* p = softplus(p) for N vectors from k, softplus' into dsp (if not NULL) */
static inline __attribute__((always_inline)) void softplus_at16(float *p, float *dsp, long n, long k, const int N)
{
    v16f v[SL_N16_MAX], g[SL_N16_MAX];
    __mmask16 m[SL_N16_MAX];
    SL_EACH(j, N) m[j] = sl_tail16(n, k + 16 * j), v[j] = sl_load16(p + k + 16 * j, m[j]);
    sl_softplus_grad16n(v, dsp ? g : NULL, N);
    if (dsp) SL_EACH(j, N) sl_store16(dsp + k + 16 * j, m[j], g[j]);
    SL_EACH(j, N) sl_store16(p + k + 16 * j, m[j], v[j]);
}

/* out = y * SiLU(z) for N vectors of a row from c */
static inline __attribute__((always_inline)) void gate_at16(const float *z, const float *y, float *out, int c, int di,
                                                            const int N)
{
    v16f g[SL_N16_MAX];
    __mmask16 m[SL_N16_MAX];
    SL_EACH(j, N) m[j] = sl_lanes16(c + 16 * j, di), g[j] = sl_load16(z + c + 16 * j, m[j]);
    sl_silu16n(g, N);
    SL_EACH(j, N) sl_store16(out + c + 16 * j, m[j], sl_load16(y + c + 16 * j, m[j]) * g[j]);
}
#endif

#ifdef SL_HAVE_MATHX8
/* The elementwise kernels on AVX2 (core/mathx8.h): N vectors at a time
 * while they fill, then one, then the scalar functions on the last floats
 * (the same bits). Inlined with N constant, the kept
 * outputs' NULL decided outside the loops. */

/* SiLU of N vectors of x from c into out, SiLU' into dsilu if not NULL */
static inline __attribute__((always_inline)) void silu_at8(const float *x, float *out, float *dsilu, long c, const int N)
{
    v8f v[SL_N8_MAX], g[SL_N8_MAX];
    SL_EACH8(j, N) v[j] = v8_load(x + c + 8 * j);
    if (dsilu) {
        sl_silu_and_grad8n(v, g, N);
        SL_EACH8(j, N) v8_store(dsilu + c + 8 * j, g[j]);
    } else {
        sl_silu8n(v, N);
    }
    SL_EACH8(j, N) v8_store(out + c + 8 * j, v[j]);
}

/* p = softplus(p) for N vectors from k, softplus' into dsp if not NULL */
static inline __attribute__((always_inline)) void softplus_at8(float *p, float *dsp, long k, const int N)
{
    v8f v[SL_N8_MAX], g[SL_N8_MAX];
    SL_EACH8(j, N) v[j] = v8_load(p + k + 8 * j);
    sl_softplus_grad8n(v, dsp ? g : NULL, N);
    if (dsp) SL_EACH8(j, N) v8_store(dsp + k + 8 * j, g[j]);
    SL_EACH8(j, N) v8_store(p + k + 8 * j, v[j]);
}

/* out = y * SiLU(z) for N vectors from c; with dk (not NULL), z becomes
 * SiLU(z) as z s and dk SiLU'(z) (sl_mamba_gate_keep) */
static inline __attribute__((always_inline)) void gate_at8(float *z, const float *y, float *out, float *dk, long c, const int N)
{
    v8f zv[SL_N8_MAX], e[SL_N8_MAX];
    SL_EACH8(j, N) zv[j] = v8_load(z + c + 8 * j), e[j] = -zv[j];
    sl_exp8n(e, e, N);
    SL_EACH8(j, N) v8_store(out + c + 8 * j, v8_load(y + c + 8 * j) * (zv[j] / (1.0f + e[j])));
    if (dk) SL_EACH8(j, N)
        {
            v8f s = 1.0f / (1.0f + e[j]);
            v8_store(z + c + 8 * j, zv[j] * s);
            v8_store(dk + c + 8 * j, sl_silu_grad_of8(zv[j], s));
        }
}

/* One position's conv of N vectors of eight channels from c into out,
 * through SiLU where silu; then SiLU' of the conv into dsilu (if not
 * NULL): conv_at16's steps on eight lanes, sl_mamba_silu_keep's SiLU. */
static inline __attribute__((always_inline)) void conv_at8(const float *xr, int ldx, int k0, const int K,
                                                           const float (*wt)[SL_CONV_BLOCK], const float *bt, int c,
                                                           long at, float *out, float *dsilu, int silu, const int N)
{
    v8f o[SL_N8_MAX], g[SL_N8_MAX];
    SL_EACH8(j, N) o[j] = v8_load(bt + c + 8 * j);
    for (int k = k0; k < K; k++)
        SL_EACH8(j, N) o[j] = v8_fma(v8_load(wt[k] + c + 8 * j), v8_load(xr + (long)k * ldx + c + 8 * j), o[j]);
    if (dsilu) {
        sl_silu_and_grad8n(o, g, N);
        SL_EACH8(j, N) v8_store(dsilu + at + 8 * j, g[j]);
    } else if (silu) {
        sl_silu8n(o, N);
    }
    SL_EACH8(j, N) v8_store(out + at + 8 * j, o[j]);
}
#endif

#if defined(__AVX512F__) || defined(SL_HAVE_MATHX8)
/* conv_v8's sums, the same terms in the same order (so the same bits),
 * position by position across all channels of a block of SL_CONV_BLOCK:
 * at L 2,048 x and out (1 MiB each at d_inner 128) stream from L3, and
 * whole rows in order are what the prefetcher follows; conv_v8 walked each
 * 64 channels down all positions and, on AVX2, spent most of its time
 * waiting on x's rows (9% of a Mamba sweep, where its FMAs are some 1%).
 * SiLU is taken on the register, not in a second pass. The taps,
 * transposed to [K][block] once, are loads from L1. Sixteen lanes
 * (conv_at16) on AVX-512, eight (conv_at8) on AVX2. K is a constant once
 * inlined. */
static inline __attribute__((always_inline)) void conv_k(const float *x, int ldx, int T, int di, const int K,
                                                         const float *w, const float *b, float *out, float *dsilu,
                                                         int silu)
{
    float wt[SL_CONV_MAX_K][SL_CONV_BLOCK], bt[SL_CONV_BLOCK];
    for (int c0 = 0; c0 < di; c0 += SL_CONV_BLOCK) {
        int nc = di - c0 < SL_CONV_BLOCK ? di - c0 : SL_CONV_BLOCK;
        sl_conv_taps_t(w, K, c0, nc, wt);
        for (int c = 0; c < nc; c++) bt[c] = b ? b[c0 + c] : 0.0f;
        for (int t = 0; t < T; t++) {
            int k0 = t < K - 1 ? K - 1 - t : 0; /* the first positions have fewer terms */
            const float *xr = x + (long)(t - (K - 1)) * ldx + c0;
            long at = (long)t * di + c0;
#ifdef __AVX512F__
            for (int c = 0; c < nc; c += 16) conv_at16(xr, ldx, k0, K, wt, bt, c, nc, at + c, out, dsilu, silu, 1);
#else
            prefetch_ahead(xr + (long)(K - 1) * ldx, ldx, t, T, nc);
            int c = 0;
            for (; c + 16 <= nc; c += 16) conv_at8(xr, ldx, k0, K, wt, bt, c, at + c, out, dsilu, silu, 2);
            for (; c < nc; c += 8) conv_at8(xr, ldx, k0, K, wt, bt, c, at + c, out, dsilu, silu, 1);
#endif
        }
    }
}

/* 1 when conv_k took it: any d_inner on AVX-512 (masked lanes), whole
 * vectors of 8 on AVX2 */
static int conv_blocks(const float *x, int ldx, int T, int di, int K, const float *w, const float *b, float *out,
                       float *dsilu, int silu)
{
#ifndef __AVX512F__
    if (di % 8) return 0;
#endif
    if (K == 4) conv_k(x, ldx, T, di, 4, w, b, out, dsilu, silu); /* mamba_ssm's default d_conv */
    else if (K <= SL_CONV_MAX_K) conv_k(x, ldx, T, di, K, w, b, out, dsilu, silu);
    else return 0;
    return 1;
}
#endif

void sl_mamba_conv(const float *x, int ldx, int T, int di, int K, const float *w, const float *b, float *out)
{
#if defined(__AVX512F__) || defined(SL_HAVE_MATHX8)
    if (conv_blocks(x, ldx, T, di, K, w, b, out, NULL, 0)) return;
#endif
    conv_v8(x, ldx, T, di, K, w, b, out);
}

void sl_mamba_conv_silu_keep(const float *x, int ldx, int T, int di, int K, const float *w, const float *b,
                             float *dsilu, float *out)
{
#if defined(__AVX512F__) || defined(SL_HAVE_MATHX8)
    if (conv_blocks(x, ldx, T, di, K, w, b, out, dsilu, 1)) return;
#endif
    conv_v8(x, ldx, T, di, K, w, b, out);
    sl_mamba_silu_keep(out, di, T, di, out, dsilu);
}

void sl_mamba_conv_silu(const float *x, int ldx, int T, int di, int K, const float *w, const float *b, float *out)
{
    sl_mamba_conv_silu_keep(x, ldx, T, di, K, w, b, NULL, out);
}

void sl_mamba_silu_keep(const float *x, int ldx, int T, int di, float *out, float *dsilu)
{
#ifdef __AVX512F__
    silu_rows16(x, ldx, T, di, out, di, dsilu);
#else
    for (int t = 0; t < T; t++) {
        int c = 0;
#ifdef SL_HAVE_MATHX8
        const float *xr = x + (long)t * ldx;
        float *orow = out + (long)t * di, *grow = dsilu ? dsilu + (long)t * di : NULL;
        if (grow) {
            for (; c + 16 <= di; c += 16) silu_at8(xr, orow, grow, c, 2);
            for (; c + 8 <= di; c += 8) silu_at8(xr, orow, grow, c, 1);
        } else {
            for (; c + 16 <= di; c += 16) silu_at8(xr, orow, NULL, c, 2);
            for (; c + 8 <= di; c += 8) silu_at8(xr, orow, NULL, c, 1);
        }
#endif
        for (; c < di; c++) {
            float v = x[(long)t * ldx + c]; /* out may be x */
            if (dsilu) dsilu[(long)t * di + c] = sl_silu_grad_of(v, sl_logistic(v));
            out[(long)t * di + c] = sl_silu(v);
        }
    }
#endif
}

void sl_mamba_silu(const float *x, int ldx, int T, int di, float *out) { sl_mamba_silu_keep(x, ldx, T, di, out, NULL); }

#ifdef __AVX512F__
/* Every vector of p, four at a time, then one at a time; inlined once with
 * dsp and once with NULL, so that keeping softplus' is decided outside
 * the loops */
static inline __attribute__((always_inline)) void softplus_all16(float *p, float *dsp, long n)
{
    long k = 0;
    for (; k + 64 <= n; k += 64) softplus_at16(p, dsp, n, k, 4);
    for (; k < n; k += 16) softplus_at16(p, dsp, n, k, 1);
}
#endif

void sl_mamba_softplus(float *p, long n, float *dsoftplus)
{
#ifdef __AVX512F__
    if (dsoftplus) softplus_all16(p, dsoftplus, n);
    else softplus_all16(p, NULL, n);
#else
    long k = 0;
#ifdef SL_HAVE_MATHX8
    if (dsoftplus) {
        for (; k + 32 <= n; k += 32) softplus_at8(p, dsoftplus, k, 4);
        for (; k + 8 <= n; k += 8) softplus_at8(p, dsoftplus, k, 1);
    } else {
        for (; k + 32 <= n; k += 32) softplus_at8(p, NULL, k, 4);
        for (; k + 8 <= n; k += 8) softplus_at8(p, NULL, k, 1);
    }
#endif
    for (; k < n; k++) {
        if (dsoftplus) dsoftplus[k] = sl_softplus_grad(p[k]);
        p[k] = sl_softplus(p[k]);
    }
#endif
}

#ifdef __AVX512F__
/* gate_at16 on one vector, keeping SiLU(z) (as z s) in z and SiLU'(z) in
 * dk: the gate backward's products, from the exp the gate takes anyway */
static inline __attribute__((always_inline)) void gate_keep_at16(float *z, const float *y, float *out, float *dk, int c,
                                                                 int di)
{
    __mmask16 m = sl_lanes16(c, di);
    v16f zv = sl_load16(z + c, m), e, mz = -zv;
    sl_exp16n(&mz, &e, 1);
    v16f s = 1.0f / (1.0f + e);
    sl_store16(out + c, m, sl_load16(y + c, m) * (zv / (1.0f + e)));
    sl_store16(z + c, m, zv * s);
    sl_store16(dk + c, m, sl_silu_grad_of16(zv, s));
}
#endif

void sl_mamba_gate_keep(float *z, int ldz, const float *y, int ldy, int T, int di, float *out, int ldo, float *dk,
                        int ldk)
{
    for (int t = 0; t < T; t++) {
        float *zr = z + (long)t * ldz, *kr = dk + (long)t * ldk, *orow = out + (long)t * ldo;
        const float *yr = y + (long)t * ldy;
#ifdef __AVX512F__
        for (int c = 0; c < di; c += 16) gate_keep_at16(zr, yr, orow, kr, c, di);
#else
        int c = 0;
#ifdef SL_HAVE_MATHX8
        prefetch_ahead(zr, ldz, t, T, di);
        for (; c + 16 <= di; c += 16) gate_at8(zr, yr, orow, kr, c, 2);
        for (; c + 8 <= di; c += 8) gate_at8(zr, yr, orow, kr, c, 1);
#endif
        for (; c < di; c++) {
            float zv = zr[c], s = sl_logistic(zv);
            orow[c] = yr[c] * sl_silu(zv);
            zr[c] = zv * s;
            kr[c] = sl_silu_grad_of(zv, s);
        }
#endif
    }
}

void sl_mamba_gate(const float *z, int ldz, const float *y, int ldy, int T, int di, float *out, int ldo)
{
#ifdef __AVX512F__
    for (int t = 0; t < T; t++) {
        const float *zr = z + (long)t * ldz, *yr = y + (long)t * ldy;
        float *orow = out + (long)t * ldo;
        for (int c = 0; c < di; c += 16) gate_at16(zr, yr, orow, c, di, 1);
    }
#else
    for (int t = 0; t < T; t++) {
        int k = 0;
#ifdef SL_HAVE_MATHX8
        /* z is only read: gate_at8 writes it only with dk */
        float *zr = (float *)(z + (long)t * ldz), *orow = out + (long)t * ldo;
        prefetch_ahead(zr, ldz, t, T, di);
        for (; k + 16 <= di; k += 16) gate_at8(zr, y + (long)t * ldy, orow, NULL, k, 2);
        for (; k + 8 <= di; k += 8) gate_at8(zr, y + (long)t * ldy, orow, NULL, k, 1);
#endif
        for (; k < di; k++) out[(long)t * ldo + k] = y[(long)t * ldy + k] * sl_silu(z[(long)t * ldz + k]);
    }
#endif
}

/* After position t, the state a backward pass restarts chunk (t + 1) / C
 * from (sl_mamba_tape.ckpt); chunk 0 starts from zeros. */
static void checkpoint(const float *state, int t, int T, long plane, float *ckpt)
{
    if (ckpt && (t + 1) % SL_SCAN_CHUNK == 0 && t + 1 < T)
        memcpy(ckpt + (long)(t + 1) / SL_SCAN_CHUNK * plane, state, (size_t)plane * sizeof *state);
}

/* Zeros, or the state a restart resumes from (sl_mamba_scan_from). */
static void start_state(const float *init, size_t n, float *state)
{
    if (init) memcpy(state, init, n * sizeof *state);
    else memset(state, 0, n * sizeof *state);
}

#ifdef SL_HAVE_MATHX8
_Static_assert(SL_SCAN_CHUNK % 2 == 0, "scan_v8n checkpoints only after the second position of a pair");

/* Positions t and t + 1 of scan_v8n with N = 4 (d_state a multiple of 4):
 * each four states' decays at both positions at once, eight exps side by
 * side (sl_exp_clamped8n), where one position's four left the pipes
 * waiting on the exp's chain of dependent steps (core/mathx8.h's header;
 * the reverse scan's decays, which carry no recurrence in their own loop,
 * run one position at a time: group_decays8); the states stay in
 * registers between the two positions. sl_scan_decay8n's
 * operations, and each position's states and y in the same order, so the
 * same bits. */
static inline __attribute__((always_inline)) void scan_pair8(const float *x, const float *delta, const float *xdbl,
                                                             int ldb, int boff, int coff, int t, int di, int S,
                                                             const float *A_t, const float *D, float *state, float *y)
{
    const float *B0 = xdbl + (long)t * ldb + boff, *C0 = xdbl + (long)t * ldb + coff;
    for (int c = 0; c < di; c += 8) {
        v8f d8[2], dx[2], y8[2];
        for (int i = 0; i < 2; i++) {
            long r = (long)(t + i) * di + c;
            v8f x8 = v8_load(x + r);
            d8[i] = v8_load(delta + r), dx[i] = d8[i] * x8, y8[i] = v8_load(D + c) * x8;
        }
        for (int n0 = 0; n0 < S; n0 += 4) {
            v8f arg[8], a[8], s[4];
            for (int i = 0; i < 2; i++)
                for (int j = 0; j < 4; j++)
                    arg[4 * i + j] = sl_exp_floor8(d8[i] * v8_load(A_t + (long)(n0 + j) * di + c));
            sl_exp_clamped8n(arg, a, 8);
            for (int j = 0; j < 4; j++) s[j] = v8_load(state + (long)(n0 + j) * di + c);
            for (int i = 0; i < 2; i++)
                for (int j = 0; j < 4; j++) {
                    s[j] = a[4 * i + j] * s[j] + dx[i] * v8_set1(B0[(long)i * ldb + n0 + j]);
                    y8[i] += s[j] * v8_set1(C0[(long)i * ldb + n0 + j]);
                }
            for (int j = 0; j < 4; j++) v8_store(state + (long)(n0 + j) * di + c, s[j]);
        }
        for (int i = 0; i < 2; i++) v8_store(y + (long)(t + i) * di + c, y8[i]);
    }
}
#endif

/* Eight channels at a time (the lanes), all d_state states of them in turn,
 * so y stays in a register and delta_t x_t is formed once; the decays of
 * N states at a time (sl_scan_decay8n). On AVX2 with N = 4, positions in
 * pairs (scan_pair8), an odd last one alone. Inlined with N constant. */
static inline __attribute__((always_inline)) void scan_v8n(const float *x, const float *delta, const float *xdbl,
                                                           int ldb, int boff, int coff, int T, int di, int S,
                                                           const float *A_t, const float *D, const float *init,
                                                           float *state, float *y, float *ckpt, const int N)
{
    start_state(init, (size_t)S * di, state);
    int t = 0;
#ifdef SL_HAVE_MATHX8
    if (N == 4)
        for (; t + 2 <= T; t += 2) {
            scan_pair8(x, delta, xdbl, ldb, boff, coff, t, di, S, A_t, D, state, y);
            checkpoint(state, t + 1, T, (long)S * di, ckpt); /* after t alone never: t is even */
        }
#endif
    for (; t < T; t++) {
        const float *xt = x + (long)t * di, *dt = delta + (long)t * di;
        const float *Bt = xdbl + (long)t * ldb + boff, *Ct = xdbl + (long)t * ldb + coff;
        for (int c = 0; c < di; c += 8) {
            v8f d8 = v8_load(dt + c), x8 = v8_load(xt + c), dx = d8 * x8, y8 = v8_load(D + c) * x8;
            for (int n0 = 0; n0 < S; n0 += N) {
                v8f a[4]; /* N <= 4 */
                sl_scan_decay8n(d8, A_t + (long)n0 * di + c, di, a, N);
                for (int j = 0; j < N; j++) {
                    float *sp = state + (long)(n0 + j) * di + c;
                    v8f s8 = a[j] * v8_load(sp) + dx * v8_set1(Bt[n0 + j]);
                    v8_store(sp, s8);
                    y8 += s8 * v8_set1(Ct[n0 + j]);
                }
            }
            v8_store(y + (long)t * di + c, y8);
        }
        checkpoint(state, t, T, (long)S * di, ckpt);
    }
}

/* four states at a time where d_state allows (mamba_ssm's default 16) */
static void scan_v8(const float *x, const float *delta, const float *xdbl, int ldb, int boff, int coff, int T, int di,
                    int S, const float *A_t, const float *D, const float *init, float *state, float *y, float *ckpt)
{
    if (S % 4 == 0) scan_v8n(x, delta, xdbl, ldb, boff, coff, T, di, S, A_t, D, init, state, y, ckpt, 4);
    else scan_v8n(x, delta, xdbl, ldb, boff, coff, T, di, S, A_t, D, init, state, y, ckpt, 1);
}

#ifdef __AVX512F__
#define SL_SCAN_ROWS 256
/* Sixteen channels (one AVX-512 register) at a time, walking
 * SL_SCAN_ROWS positions with up to sixteen states of those channels held
 * in registers, so the states are never stored and reloaded between
 * positions (only between blocks of positions, in state, and copied out at
 * the tape's checkpoints). A d_state above 16 takes further groups of 16
 * states, y carrying its partial sum between groups: the same sums in the
 * same order as scan_v8, lane by lane, so the two give identical bits. On
 * this machine's Xeon (2 x 512-bit FMA ports) the scan alone ran 1.5x
 * faster than scan_v8 (bench of 2,048 x 128 x 16). Blocks of positions,
 * every channel's in turn, keep a block's rows in L2: walking all positions
 * of one block of channels at a time read each row again from memory for
 * each block of channels once the rows no longer fit (d_inner 128, L
 * 4,096: 6.6 MiB). */
static void scan_v16(const float *x, const float *delta, const float *xdbl, int ldb, int boff, int coff, int T, int di,
                     int S, const float *A_t, const float *D, const float *init, float *state, float *y, float *ckpt)
{
    long plane = (long)S * di;
    start_state(init, (size_t)plane, state);
    for (int t0 = 0; t0 < T; t0 += SL_SCAN_ROWS) {
        int t1 = t0 + SL_SCAN_ROWS < T ? t0 + SL_SCAN_ROWS : T;
        for (int c = 0; c < di; c += 16) {
            v16f Dc = v16_load(D + c);
            for (int n0 = 0; n0 < S; n0 += 16) {
                int nn = S - n0 < 16 ? S - n0 : 16;
                const float *An = A_t + (long)n0 * di + c;
                float *sp = state + (long)n0 * di + c;
                v16f s[16];
                for (int n = 0; n < 16; n++) s[n] = n < nn ? v16_load(sp + (long)n * di) : v16_set1(0.0f);
                for (int t = t0; t < t1; t++) {
                    const float *Bt = xdbl + (long)t * ldb + boff + n0, *Ct = xdbl + (long)t * ldb + coff + n0;
                    v16f d16 = v16_load(delta + (long)t * di + c), x16 = v16_load(x + (long)t * di + c), dx = d16 * x16;
                    float *yt = y + (long)t * di + c;
                    v16f y16 = n0 == 0 ? Dc * x16 : v16_load(yt);
#pragma GCC unroll 16
                    for (int n = 0; n < 16; n++)
                        if (n < nn) {
                            s[n] = sl_scan_decay16(d16, An + (long)n * di) * s[n] + dx * v16_set1(Bt[n]);
                            y16 += s[n] * v16_set1(Ct[n]);
                        }
                    v16_store(yt, y16);
                    if (ckpt && (t + 1) % SL_SCAN_CHUNK == 0 && t + 1 < T)
                        for (int n = 0; n < nn; n++)
                            v16_store(ckpt + (long)(t + 1) / SL_SCAN_CHUNK * plane + (long)(n0 + n) * di + c, s[n]);
                }
                for (int n = 0; n < nn; n++) v16_store(sp + (long)n * di, s[n]);
            }
        }
    }
}
#endif

/* Any d_inner: the same recurrence with plain loops across channels. */
static void scan_any(const float *x, const float *delta, const float *xdbl, int ldb, int boff, int coff, int T, int di,
                     int S, const float *A_t, const float *D, const float *init, float *state, float *y, float *ckpt)
{
    start_state(init, (size_t)S * di, state);
    for (int t = 0; t < T; t++) {
        const float *xt = x + (long)t * di, *dt = delta + (long)t * di;
        const float *Bt = xdbl + (long)t * ldb + boff, *Ct = xdbl + (long)t * ldb + coff;
        float *yt = y + (long)t * di;
        for (int c = 0; c < di; c++) yt[c] = D[c] * xt[c];
        for (int n = 0; n < S; n++) {
            float *s = state + (long)n * di;
            const float *An = A_t + (long)n * di;
            float bn = Bt[n], cn = Ct[n];
            for (int c = 0; c < di; c++) {
                s[c] = sl_exp(dt[c] * An[c]) * s[c] + dt[c] * xt[c] * bn;
                yt[c] += s[c] * cn;
            }
        }
        checkpoint(state, t, T, (long)S * di, ckpt);
    }
}

void sl_mamba_scan(const float *x, const float *delta, const float *xdbl, int ldb, int boff, int coff, int T, int di,
                   int S, const float *A_t, const float *D, float *state, float *y, float *ckpt)
{
    sl_mamba_scan_from(x, delta, xdbl, ldb, boff, coff, T, di, S, A_t, D, NULL, state, y, ckpt);
}

void sl_mamba_scan_from(const float *x, const float *delta, const float *xdbl, int ldb, int boff, int coff, int T, int di,
                        int S, const float *A_t, const float *D, const float *init, float *state, float *y, float *ckpt)
{
#ifdef __AVX512F__
    if (di % 16 == 0) {
        scan_v16(x, delta, xdbl, ldb, boff, coff, T, di, S, A_t, D, init, state, y, ckpt);
        return;
    }
#endif
    if (di % 8 == 0) scan_v8(x, delta, xdbl, ldb, boff, coff, T, di, S, A_t, D, init, state, y, ckpt);
    else scan_any(x, delta, xdbl, ldb, boff, coff, T, di, S, A_t, D, init, state, y, ckpt);
}
