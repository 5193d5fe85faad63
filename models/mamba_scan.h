/* What Mamba's CPU forward (models/mamba_cpu.c) and backward
 * (models/mamba_backward.c, mamba_scan_backward.c) share: the scan's decay, the causal conv, and
 * the tape the gradient's forward pass leaves for the backward. Internal to
 * models/. */
#ifndef SL_MAMBA_SCAN_H
#define SL_MAMBA_SCAN_H

#include "core/exp8.h"
#include "core/mathx.h"
#include "core/simd.h"
#include "models/workspace.h"

/* The backward pass recomputes the scan's states a chunk of this many
 * positions at a time, from the state the forward kept before the chunk,
 * and walks them back at once (models/mamba_scan_backward.c): a group of 8
 * states of 16 channels over 16 positions fits in L1, and the reverse scan
 * ran 9% faster than with 32 (scanrev's harness, 2048 x 128 x 16). The kept
 * states cost L / 16 x 8 KiB a layer at d_inner 128, d_state 16. */
#define SL_SCAN_CHUNK 16

/* exp(delta A) of eight channels of one state (delta >= 0, A < 0). */
static inline v8f sl_scan_decay(v8f delta, const float *A)
{
    v8f arg = delta * v8_load(A), a;
    for (int k = 0; k < 8; k++) a[k] = sl_exp_nonpos(arg[k]);
    return a;
}

/* exp(delta A) of eight channels of N <= 4 states (delta >= 0, A < 0), A's
 * rows lda apart, into a[0..N-1]: sl_exp_nonpos's operations lane by lane
 * (so its bits; core/exp8.h), each step taken across the N vectors before
 * the next. One state's exp is a chain of some twenty dependent
 * instructions; written state after state, the chains of only two or three
 * states fit the core's scheduler at a time on an AMD Zen 3 (AVX2), which
 * then waited on their latency: the 8-lane forward scan ran 15-25% faster
 * with N = 4 (in-process A/B, 2,048 x 128 x 16). The chunked backward's
 * recomputation of states (mamba_scan_backward.c's chunk_states), which
 * stores every state and decay, ran no faster with it and keeps
 * sl_scan_decay. */
static inline __attribute__((always_inline)) void sl_scan_decay8n(v8f delta, const float *A, long lda, v8f *a,
                                                                  const int N)
{
    v8f x[4]; /* [N] would be a VLA */
    for (int j = 0; j < N; j++) x[j] = sl_exp_floor8(delta * v8_load(A + j * lda));
    sl_exp_clamped8n(x, a, N);
}

#ifdef __AVX512F__
#include <immintrin.h>

typedef int v16i __attribute__((vector_size(64)));

/* sl_exp_nonpos on sixteen lanes, written out on vectors (GCC's
 * vectoriser left the per-lane loop scalar inside the unrolled loops of
 * the backward's chunk): the same operations, so the same bits. maxps
 * returns its second operand when x is NaN, as x > -87.3 ? x : -87.3 does. */
static inline v16f sl_exp_nonpos16(v16f x)
{
    x = (v16f)_mm512_max_ps((__m512)x, _mm512_set1_ps(-87.3f));
    v16f n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    v16f r = x - n * 0.693359375f + n * 2.12194440e-4f;
    v16f p = v16_set1(1.9875691500e-4f);
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    v16i bits = (__builtin_convertvector(n, v16i) + 127) << 23;
    return p * (v16f)bits;
}

/* 2^t for t <= 0 on sixteen lanes in ten instructions where
 * sl_exp_nonpos16 takes seventeen: the scan's exp was most of the scan's
 * work. AVX-512's reduce gives f = t - round(t) in [-1/2, 1/2] in one
 * step, a degree-6 polynomial fitted to 2^f there (relative error 2e-9;
 * 1.0e-7 evaluated in float32, as close as sl_exp's), and scalef
 * multiplies by 2^(t - f) without building the exponent bits. t is
 * clamped at -126: 2^-126 stands in for 0, as sl_exp_nonpos's exp(-87.3)
 * does, and a NaN becomes it too. */
static inline v16f sl_exp2_nonpos16(v16f t)
{
    __m512 x = _mm512_max_ps((__m512)t, _mm512_set1_ps(-126.0f));
    __m512 f = _mm512_reduce_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    v16f r = (v16f)f, p = v16_set1(1.5353362e-4f);
    p = p * r + 1.3398875e-3f;
    p = p * r + 9.61843692e-3f;
    p = p * r + 5.55033237e-2f;
    p = p * r + 2.40226477e-1f;
    p = p * r + 6.93147182e-1f;
    p = p * r + 1.0f;
    return (v16f)_mm512_scalef_ps((__m512)p, _mm512_sub_ps(x, f));
}

/* exp(delta A) of sixteen channels of one state (the AVX-512 scans),
 * as 2^((delta log2 e) A): delta log2 e is formed once per position and
 * channel, outside the loop over states. */
static inline v16f sl_scan_decay16(v16f delta, const float *A)
{
    return sl_exp2_nonpos16(delta * 1.44269504088896341f * v16_load(A));
}
#endif

/* Channels c..c+7 of a row of di, lanes past di 0 (the last vector of a
 * d_inner that is not a multiple of 8). */
static inline v8f sl_load_lanes(const float *row, int c, int di)
{
    if (c + 8 <= di) return v8_load(row + c);
    v8f v = {0};
    memcpy(&v, row + c, (size_t)(di - c) * sizeof(float));
    return v;
}

static inline void sl_store_lanes(float *row, int c, int di, v8f v)
{
    if (c + 8 <= di) v8_store(row + c, v);
    else memcpy(row + c, &v, (size_t)(di - c) * sizeof(float));
}

/* The conv takes this many vectors of 8 channels at a time, their taps
 * gathered once (at most 16 KiB), then walks the positions in order. */
#define SL_CONV_VECS 8

/* Tap k of channels c..c+7 of the conv's [di][K] weights into wk[k] (K <=
 * 64, config.c's bound): gathered once, so the loop over positions runs
 * on whole vectors. */
static inline void sl_conv_taps(const float *w, int K, int c, int di, v8f *wk)
{
    for (int k = 0; k < K; k++) {
        wk[k] = v8_set1(0.0f);
        for (int l = 0; l < 8 && c + l < di; l++) wk[k][l] = w[(long)(c + l) * K + k];
    }
}

/* The convs that walk positions in order across a block of channels (the
 * 16-lane ones, and the 8-lane ones where d_inner is whole vectors) take
 * d_conv up to SL_CONV_MAX_K (mamba_ssm's causal_conv1d takes 2 to 4),
 * channels in blocks of SL_CONV_BLOCK with their taps transposed on the
 * stack (9 KiB); a larger d_conv takes conv_v8's loops. */
#define SL_CONV_MAX_K 8
#define SL_CONV_BLOCK 256

/* The taps [di][K] of channels c0..c0+nc-1 transposed to wt[K][block],
 * for those convs and their transposes */
static inline void sl_conv_taps_t(const float *w, int K, int c0, int nc, float (*wt)[SL_CONV_BLOCK])
{
    for (int c = 0; c < nc; c++)
        for (int k = 0; k < K; k++) wt[k][c] = w[(long)(c0 + c) * K + k];
}

#ifdef __AVX512F__
/* Sixteen channels c..c+15 of rows of di: the lanes below di, loaded with
 * zeros past it and stored without touching it. */
static inline __mmask16 sl_lanes16(int c, int di)
{
    return di - c >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (di - c)) - 1);
}

/* the same for element k of n */
static inline __mmask16 sl_tail16(long n, long k)
{
    return n - k >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - k)) - 1);
}

static inline v16f sl_load16(const float *p, __mmask16 m) { return (v16f)_mm512_maskz_loadu_ps(m, p); }

static inline void sl_store16(float *p, __mmask16 m, v16f v) { _mm512_mask_storeu_ps(p, m, (__m512)v); }
#endif

/* The causal depthwise conv (d_conv - 1 zeros on the left), before SiLU. */
void sl_mamba_conv(const float *x, int ldx, int T, int di, int K, const float *w, const float *b, float *out);
/* The conv, then SiLU; sl_mamba_silu: the conv ablated (an identity kernel
 * without bias), SiLU kept. */
void sl_mamba_conv_silu(const float *x, int ldx, int T, int di, int K, const float *w, const float *b, float *out);
/* The same, keeping SiLU' of the conv in dsilu [T][di] (NULL: not kept)
 * for the backward (the bits of sl_silu_backward's factor), from the exp
 * SiLU takes. */
void sl_mamba_conv_silu_keep(const float *x, int ldx, int T, int di, int K, const float *w, const float *b,
                             float *dsilu, float *out);
/* out [T][di] = SiLU(x), SiLU'(x) into dsilu [T][di] (NULL: not kept) */
void sl_mamba_silu_keep(const float *x, int ldx, int T, int di, float *out, float *dsilu);
void sl_mamba_silu(const float *x, int ldx, int T, int di, float *out);
/* p = softplus(p) (sl_softplus) on n floats, and softplus' of p as it was
 * (sl_softplus_grad) into dsoftplus (NULL: not kept) from the same exp */
void sl_mamba_softplus(float *p, long n, float *dsoftplus);
/* out = y * SiLU(z), T rows of di (the gate, z left as it was) */
void sl_mamba_gate(const float *z, int ldz, const float *y, int ldy, int T, int di, float *out, int ldo);
/* The gate (its bits) keeping what its backward multiplies by
 * (sl_mamba_gate_backward_kept): z becomes SiLU(z) as z times the
 * logistic, and dk (rows of ldk) SiLU'(z). */
void sl_mamba_gate_keep(float *z, int ldz, const float *y, int ldy, int T, int di, float *out, int ldo, float *dk,
                        int ldk);
/* s_t = exp(delta_t A) s_{t-1} + delta_t x_t B_t ; y_t = s_t . C_t + D x_t
 * from a zero state, B and C at columns boff and coff of xdbl's rows of
 * ldb; ckpt (or NULL) receives the state before each chunk (the tape);
 * state [d_state, d_inner] is scratch, left holding the last state. */
void sl_mamba_scan(const float *x, const float *delta, const float *xdbl, int ldb, int boff, int coff, int T, int di,
                   int S, const float *A_t, const float *D, float *state, float *y, float *ckpt);
/* The same from the state init [d_state, d_inner] (NULL: zeros) instead of
 * zeros: a restart in the middle of a sequence (prefix reuse,
 * models/cpu_prefix.c) gives the bits the whole scan gives from there on. */
void sl_mamba_scan_from(const float *x, const float *delta, const float *xdbl, int ldb, int boff, int coff, int T, int di,
                        int S, const float *A_t, const float *D, const float *init, float *state, float *y, float *ckpt);

/* One block's activations as the gradient's forward pass kept them
 * (views into the backward workspace, [max_len] rows each): all that the
 * block's backward reads but the scan's states, so that it runs nothing of
 * the forward again but the states (running the conv, the dt projection
 * and softplus again cost about 5% of an IG step, measured). */
typedef struct {
    float *xz;   /* [L, 2 d_inner]: x, then z; once the gate has run, SiLU'(z), then SiLU(z) (sl_mamba_gate_keep) */
    float *xc;   /* [L, d_inner]: conv + SiLU */
    float *xdbl; /* [L, dt_rank + 2 d_state]: dt | B | C */
    float *y;    /* [L, d_inner]: the scan's output, before the gate */
    float *dsilu; /* [L, d_inner]: SiLU' of the conv (sl_mamba_conv_silu_keep) */
    float *dsoftplus; /* [L, d_inner]: softplus' at delta's pre-activation (sl_mamba_softplus) */
    float *delta; /* [L, d_inner]: delta */
    float *ckpt; /* [ceil(L / SL_SCAN_CHUNK), d_state, d_inner]: the state before each chunk (row 0 unused: zeros) */
} sl_mamba_tape;

sl_mamba_tape sl_mamba_tape_at(const sl_model *m, sl_workspace *ws, int layer);

#endif
