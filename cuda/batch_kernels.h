/* The device model core's launches: every kernel over a whole batch, as one
 * flat thread index i in 0..sl_kernel_threads(k, a)-1 mapped onto the
 * per-example functions of cuda/mamba_kernels.h and
 * cuda/transformer_kernels.h. sl_kernel_thread is an SL_KERNEL_FN, so the
 * CPU test suite runs these exact mappings (cuda/dev_host.c loops them)
 * and cuda/kernels.cu instantiates one __global__ per kernel from them.
 *
 * A batch is B examples padded to Lb positions (the longest in the batch):
 * activation row r = b * Lb + t. Positions t >= len[b] are padding: every
 * kernel either skips them or fills them with finite values, and none reads
 * them for a valid position (the conv and the scan are causal, attention
 * sees keys below len, pooling stops at len), so padding never leaks into
 * an example's result. tokens and keep are [B][ldt] (the dataset's rows). */
#ifndef SL_BATCH_KERNELS_H
#define SL_BATCH_KERNELS_H

#include <stdint.h>

#include "core/config.h"
#include "cuda/mamba2_kernels.h"
#include "cuda/mamba_kernels.h"
#include "cuda/transformer_kernels.h"

enum sl_kernel {
    SK_EMBED,      /* h[r] = alpha emb[token] (0 past len) */
    SK_ADD_POS,    /* h[r] += pos[t] */
    SK_BIAS,       /* y[r][j] += bias[j] */
    SK_RMSNORM,
    SK_LAYERNORM,
    SK_CONV,       /* causal conv + SiLU, or SiLU alone (conv ablated) */
    SK_SOFTPLUS,
    SK_SCAN,       /* a thread per (example, channel) */
    SK_GATE,       /* z (y2, rows of ld) -> SiLU(z) (or 1), then y *= it; flag: SL_GATE_* */
    SK_ADD,
    SK_ACTIVATION,
    SK_ROPE,       /* flag 1: the inverse rotation (the backward pass) */
    SK_ATTENTION,  /* online softmax, no scores stored */
    SK_PROBS,      /* the pattern [B][H][len][len] when its hook is on */
    SK_APPLY,      /* ctx = pattern . V */
    SK_POOL,
    SK_HEAD,
    SK_REPLACE,    /* masked rows of an activation set to a row (or 0) */
    SK_COPY,       /* y = x, n values (the kept residuals of prefix reuse) */
    /* the backward pass (cuda/backward_kernels.h) */
    SK_SILU,       /* y = SiLU(x), n values */
    SK_CONV_PRE,   /* the conv before its SiLU */
    SK_CONV_BW,
    SK_SCAN_KEEP,  /* the scan keeping its states */
    SK_SCAN_BW,
    SK_SCAN_BW_REDUCE,
    SK_GATE_BW,
    SK_SOFTPLUS_BW, /* dx *= softplus'(x) */
    SK_SILU_BW,     /* dx *= SiLU'(x) */
    SK_ACTIVATION_BW,
    SK_RMSNORM_BW,
    SK_LAYERNORM_BW,
    SK_LSE,
    SK_ATTN_D,      /* Dt = dctx . ctx per query and head */
    SK_ATTN_DQ,
    SK_ATTN_DKV,
    SK_TAIL_BW,     /* the head and the pooling, backwards: d logit / d final */
    SK_LERP,        /* y = b + alpha (x - b): integrated gradients' path */
    SK_IG_SCALE,    /* y *= (x - b) / K */
    SK_MUL,         /* y *= x */
    SK_ROWSUM,      /* y[r] = sum of row r of x (double) */
    SK_ZERO,        /* y = 0, n values */
    /* Mamba-2 (cuda/mamba2_kernels.h); strides as sl_kargs says */
    SK_DELTA2,      /* y = clamp(softplus(x + b), lo, hi), a thread per (row, head) */
    SK_SSD,         /* a thread per (example, head, state row) */
    SK_GATED_NORM,  /* y = the gated RMSNorm of x with the gate z, a thread per (row, group) */
    SK_DELTA2_BW,   /* y = d delta / d dt of dy */
    SK_SSD_CKPT,    /* the SSD keeping its state at each chunk's start */
    SK_SSD_BW,      /* one chunk of the SSD in reverse */
    SK_SSD_BW_REDUCE, /* that chunk's ddelta, dB and dC summed over channels */
    SK_GATED_NORM_BW, /* y = dy d norm / d y, dx = d / d z (before SiLU) */
    SK_SSD_S32, SK_SSD_S64, /* SK_SSD for a d_state up to 32, 64: fewer registers */
    SK_SSD_CKPT_S32, SK_SSD_CKPT_S64,
    SK_COUNT
};

/* Which part of SK_GATE to run: both, or (around the gate hook) the
 * activation alone and then the product. */
enum { SL_GATE_BOTH, SL_GATE_ACTIVATE, SL_GATE_MULTIPLY };

typedef struct {
    int B, Lb, ldt;
    const int32_t *len;          /* [B] valid positions */
    const int32_t *tokens;       /* [B][ldt] */
    const unsigned char *keep;   /* [B][ldt]: 0 drops a key and a pooled position */
} sl_kbatch;

/* One launch: the batch, then the fields the kernel reads. Pointers are
 * device pointers (host pointers on the host grid). */
typedef struct {
    sl_kbatch bt;
    const float *x, *w, *b;  /* input, weight, bias (or second weight) */
    float *y;                /* output, or the buffer changed in place */
    const float *A_t, *D;    /* scan */
    float *y2;               /* the gate's z (SK_GATE); attention: pattern */
    long n;                  /* elements, for the elementwise kernels */
    int d, ld, cols;         /* row width, row stride, columns of a bias */
    /* K: conv taps; gate ablated (SK_GATE); pooling (SK_TAIL_BW); steps
     * (SK_IG_SCALE). flag: conv identity, ssm_off, gelu, SL_GATE_* step,
     * pooling (SK_POOL), head rows, accumulate (the norms' backward). */
    int di, K, S, ldb, boff, coff, flag;
    int heads, dh, causal;
    float eps;
    const unsigned char *mask; /* replace: [B][ldm] */
    long ldm;
    /* backward */
    const float *states, *dy, *lse, *Dt;
    float *dx, *dd, *dBp, *dCp;
    float alpha;             /* SK_LERP's step; SK_EMBED's embed_scale */
    /* Mamba-2: the SSD's inputs and its backward's memory; the row strides
     * of x, y, dy, dx, z (the gate, or its input), ddelta, dB and dC; the
     * delta clamp; dB and dC. SK_GATED_NORM*: .cols channels a group of
     * the .d in a row, .flag the norm before the gate. */
    sl_k_ssd_in ssd;
    sl_k_ssd_bw_mem sbw;
    int ldx, ldy, lddy, lddx, ldz, lddd, lddbc;
    const float *z;
    float lo, hi;
    float *dB, *dC;
} sl_kargs;

/* How many threads launch k covers. */
static inline long sl_kernel_threads(int k, const sl_kargs *a)
{
    long rows = (long)a->bt.B * a->bt.Lb;
    switch (k) {
    case SK_EMBED: case SK_ADD_POS: case SK_RMSNORM: case SK_LAYERNORM: case SK_RMSNORM_BW: case SK_LAYERNORM_BW:
    case SK_TAIL_BW: case SK_ROWSUM: return rows;
    case SK_BIAS: case SK_REPLACE: case SK_SCAN_BW_REDUCE: return rows * a->cols;
    case SK_CONV: case SK_GATE: case SK_CONV_PRE: case SK_CONV_BW: case SK_GATE_BW: return rows * a->di;
    case SK_SCAN: case SK_SCAN_KEEP: case SK_SCAN_BW: return (long)a->bt.B * a->di;
    case SK_ROPE: return rows * 2 * a->heads;
    case SK_ATTENTION: case SK_PROBS: case SK_APPLY: case SK_LSE: case SK_ATTN_D: case SK_ATTN_DQ: case SK_ATTN_DKV:
        return rows * a->heads;
    case SK_POOL: return (long)a->bt.B * a->d;
    case SK_HEAD: return a->bt.B;
    case SK_DELTA2: case SK_DELTA2_BW: return rows * a->heads;
    case SK_SSD: case SK_SSD_CKPT: case SK_SSD_BW: case SK_SSD_S32: case SK_SSD_S64: case SK_SSD_CKPT_S32:
    case SK_SSD_CKPT_S64: return (long)a->bt.B * a->ssd.H * a->ssd.P;
    case SK_SSD_BW_REDUCE: return (long)a->bt.B * a->sbw.K * (a->ssd.H + 2 * a->ssd.G * a->ssd.S);
    case SK_GATED_NORM: case SK_GATED_NORM_BW: return rows * (a->d / a->cols);
    default: return a->n; /* the elementwise kernels */
    }
}

/* Thread per query row (b, t, head) of the attention pattern: the CPU
 * core's probabilities (models/attention.c, sl_head_probs): scaled q
 * against every key, hidden keys 0, a row with no visible key all 0. The
 * row is [len] wide, inside the example's [H][len][len] block. */
SL_KERNEL_FN void sl_k_probs_row(const float *qkv, const unsigned char *keep, int T, int d, int dh, int causal,
                                 float *P, int t, int head)
{
    const float *q = qkv + (long)t * 3 * d + head * dh;
    float *p = P + ((long)head * T + t) * T, mx = -INFINITY, sum = 0.0f, scale = 1.0f / sqrtf((float)dh);
    for (int j = 0; j < T; j++) {
        const float *kj = qkv + (long)j * 3 * d + d + head * dh;
        float s = 0.0f;
        for (int k = 0; k < dh; k++) s += q[k] * scale * kj[k];
        int seen = keep[j] && (!causal || j <= t);
        p[j] = seen ? s : -INFINITY;
        if (seen && s > mx) mx = s;
    }
    for (int j = 0; j < T; j++) {
        p[j] = p[j] == -INFINITY ? 0.0f : expf(p[j] - mx);
        sum += p[j];
    }
    for (int j = 0; j < T; j++) p[j] = sum > 0.0f ? p[j] / sum : 0.0f;
}

/* Thread per (b, t, head): ctx[t][head] = sum_j P[head][t][j] v_j. */
SL_KERNEL_FN void sl_k_apply_row(const float *qkv, const float *P, int T, int d, int dh, float *ctx, int t, int head)
{
    const float *p = P + ((long)head * T + t) * T;
    float *o = ctx + (long)t * d + head * dh;
    for (int k = 0; k < dh; k++) o[k] = 0.0f;
    for (int j = 0; j < T; j++) {
        const float *vj = qkv + (long)j * 3 * d + 2 * d + head * dh;
        for (int k = 0; k < dh; k++) o[k] += p[j] * vj[k];
    }
}

/* Thread per (b, i): pooling of the final activation x, as
 * sl_forward_tail: first row (cls), the last kept row (last), or the mean
 * of the kept rows (mean). */
SL_KERNEL_FN void sl_k_pool(const float *x, const unsigned char *keep, int T, int d, int pooling, float *out, int i)
{
    if (pooling == POOL_CLS) {
        *out = x[i];
    } else if (pooling == POOL_LAST) {
        int t = T - 1;
        while (t > 0 && !keep[t]) t--;
        *out = x[(long)t * d + i];
    } else {
        float s = 0.0f;
        int kept = 0;
        for (int t = 0; t < T; t++)
            if (keep[t]) {
                kept++;
                s += x[(long)t * d + i];
            }
        *out = s / (kept ? kept : 1);
    }
}

#include "cuda/backward_kernels.h"

/* Thread i of a launch over (row, head): its example b, position t, head,
 * the example's length T and its first row. */
typedef struct {
    int b, t, head, T;
    long base;
} sl_kquery;

SL_KERNEL_FN sl_kquery sl_k_query(const sl_kargs *a, long i)
{
    long r = i / a->heads;
    sl_kquery q = {(int)(r / a->bt.Lb), (int)(r % a->bt.Lb), (int)(i % a->heads), 0, 0};
    q.T = a->bt.len[q.b];
    q.base = (long)q.b * a->bt.Lb;
    return q;
}

/* The SSD's launch (ckpt 0) or its checkpoints' (ckpt 1) for d_state S: the
 * instance whose register array fits S most closely. */
static inline int sl_ssd_kernel(int S, int ckpt)
{
    if (S <= 32) return ckpt ? SK_SSD_CKPT_S32 : SK_SSD_S32;
    if (S <= 64) return ckpt ? SK_SSD_CKPT_S64 : SK_SSD_S64;
    return ckpt ? SK_SSD_CKPT : SK_SSD;
}

/* The SSD's inputs for example b: its views from the example's first row. */
SL_KERNEL_FN sl_k_ssd_in sl_k_ssd_example(const sl_kargs *a, int b)
{
    sl_k_ssd_in s = a->ssd;
    long base = (long)b * a->bt.Lb;
    s.x += base * s.ldx, s.delta += base * s.ldd, s.B += base * s.ldbc, s.C += base * s.ldbc;
    s.T = a->bt.len[b];
    return s;
}

/* Mamba-2's kernels' thread i (see sl_kernel_thread). */
SL_KERNEL_FN void sl_kernel_thread_m2(int k, const sl_kargs *a, long i)
{
    const sl_kbatch *bt = &a->bt;
    switch (k) {
    case SK_DELTA2:
        sl_k_delta2(a->x, a->ldx, a->b, a->lo, a->hi, a->y, a->ldy, i / a->heads, (int)(i % a->heads));
        break;
    case SK_DELTA2_BW:
        sl_k_delta2_bw(a->x, a->ldx, a->b, a->lo, a->hi, a->dy, a->lddy, a->y, a->ldy, i / a->heads,
                       (int)(i % a->heads));
        break;
    case SK_SSD: case SK_SSD_CKPT: case SK_SSD_BW: case SK_SSD_S32: case SK_SSD_S64: case SK_SSD_CKPT_S32:
    case SK_SSD_CKPT_S64: {
        /* the register bound, a compile-time constant in each kernel instance */
        const int cap = k == SK_SSD_S32 || k == SK_SSD_CKPT_S32 ? 32
                        : k == SK_SSD_S64 || k == SK_SSD_CKPT_S64 ? 64 : SL_MAX_SSD_STATE;
        int di = a->ssd.H * a->ssd.P, b = (int)(i / di), ch = (int)(i % di), h = ch / a->ssd.P, p = ch % a->ssd.P;
        long base = (long)b * bt->Lb;
        sl_k_ssd_in s = sl_k_ssd_example(a, b);
        if (k == SK_SSD || k == SK_SSD_S32 || k == SK_SSD_S64) {
            float *y = a->y + base * a->ldy;
            sl_k_ssd_row(&s, a->flag, y, a->ldy, h, p, cap);
            for (int t = s.T; t < bt->Lb; t++) y[(long)t * a->ldy + ch] = 0.0f;
            break;
        }
        /* the example's share of the scratch: the batch's chunks of ck, one chunk of the others */
        int nck = (bt->Lb + a->sbw.K - 1) / a->sbw.K;
        long per = (long)a->ssd.S * di;
        sl_k_ssd_bw_mem m = a->sbw;
        m.ck += (long)b * nck * per, m.st += (long)b * m.K * per, m.ds += b * per, m.dp += (long)b * m.K * di;
        m.dBp += (long)b * m.K * per, m.dCp += (long)b * m.K * per;
        if (k == SK_SSD_BW) sl_k_ssd_bw(&s, &m, a->dy + base * a->lddy, a->lddy, a->dx + base * a->lddx, a->lddx, bt->Lb, h, p);
        else sl_k_ssd_ckpt(&s, m.ck, m.K, h, p, cap);
        break;
    }
    case SK_SSD_BW_REDUCE: {
        int cols = a->ssd.H + 2 * a->ssd.G * a->ssd.S, j = (int)(i % cols);
        long bk = i / cols;
        int b = (int)(bk / a->sbw.K), kk = (int)(bk % a->sbw.K), t = a->sbw.c * a->sbw.K + kk;
        if (t >= bt->Lb) break;
        long per = (long)a->ssd.S * a->ssd.H * a->ssd.P, r = (long)b * bt->Lb + t;
        sl_k_ssd_bw_mem m = a->sbw;
        m.dp += (long)b * m.K * a->ssd.H * a->ssd.P, m.dBp += (long)b * m.K * per, m.dCp += (long)b * m.K * per;
        sl_k_ssd_bw_reduce(&m, a->ssd.H, a->ssd.P, a->ssd.G, a->ssd.S, kk, t < bt->len[b], a->dd + r * a->lddd,
                           a->dB + r * a->lddbc, a->dC + r * a->lddbc, j);
        break;
    }
    case SK_GATED_NORM: case SK_GATED_NORM_BW: {
        int groups = a->d / a->cols;
        long r = i / groups;
        int q = (int)(i % groups);
        if (k == SK_GATED_NORM)
            sl_k_gated_norm(a->x, a->ldx, a->z, a->ldz, a->w, a->cols, a->eps, a->flag, a->y, a->ldy, r, q);
        else
            sl_k_gated_norm_bw(a->x, a->ldx, a->z, a->ldz, a->w, a->cols, a->eps, a->flag, a->dy, a->lddy, a->y, a->ldy,
                               a->dx, a->lddx, r, q);
        break;
    }
    default: break;
    }
}

/* The backward kernels' thread i (see sl_kernel_thread). */
SL_KERNEL_FN void sl_kernel_thread_bw(int k, const sl_kargs *a, long i)
{
    const sl_kbatch *bt = &a->bt;
    long r = i;
    int b, t;
    switch (k) {
    case SK_SILU: a->y[i] = sl_k_silu(a->x[i]); break;
    case SK_CONV_PRE: case SK_CONV_BW: {
        r = i / a->di;
        int c = (int)(i % a->di);
        b = (int)(r / bt->Lb), t = (int)(r % bt->Lb);
        long base = (long)b * bt->Lb;
        if (k == SK_CONV_PRE)
            sl_k_conv_pre(a->x + base * a->ld, a->ld, a->di, a->K, a->w, a->b, a->y + base * a->di, t, c);
        else
            sl_k_conv_bw(a->dy + base * a->di, a->di, a->K, a->w, bt->len[b], a->y + base * a->ld, a->ld, t, c);
        break;
    }
    case SK_SCAN_KEEP: case SK_SCAN_BW: {
        b = (int)(i / a->di);
        int c = (int)(i % a->di), T = bt->len[b];
        long base = (long)b * bt->Lb, sb = base * a->S * a->di;
        if (k == SK_SCAN_KEEP) {
            float *y = a->y + base * a->di;
            sl_k_scan_keep(a->x + base * a->di, a->b + base * a->di, a->w + base * a->ldb, a->ldb, a->boff, a->coff,
                           T, a->di, a->S, a->A_t, a->D, y, a->dx + sb, c);
            for (t = T; t < bt->Lb; t++) y[(long)t * a->di + c] = 0.0f;
        } else {
            float *dx = a->dx + base * a->di, *dd = a->dd + base * a->di;
            sl_k_scan_bw(a->x + base * a->di, a->b + base * a->di, a->w + base * a->ldb, a->ldb, a->boff, a->coff, T,
                         a->di, a->S, a->A_t, a->D, a->states + sb, a->dy + base * a->di, dx, dd, a->dBp + sb,
                         a->dCp + sb, c);
            for (t = T; t < bt->Lb; t++) dx[(long)t * a->di + c] = dd[(long)t * a->di + c] = 0.0f;
        }
        break;
    }
    case SK_SCAN_BW_REDUCE:
        r = i / a->cols;
        b = (int)(r / bt->Lb), t = (int)(r % bt->Lb);
        sl_k_scan_bw_reduce(a->dBp + r * a->S * a->di, a->dCp + r * a->S * a->di, a->di, a->S, a->boff,
                            t < bt->len[b], a->y + r * a->ldb, (int)(i % a->cols));
        break;
    case SK_GATE_BW: {
        r = i / a->di;
        int c = (int)(i % a->di);
        float z = a->x[r * a->ld + c], g = a->dx[r * a->di + c];
        a->y[r * a->ld + c] = g * a->states[r * a->di + c] * sl_k_silu_grad(z); /* states: y before the gate */
        a->dx[r * a->di + c] = g * sl_k_silu(z);
        break;
    }
    case SK_SOFTPLUS_BW: a->y[i] *= a->x[i] > 20.0f ? 1.0f : 1.0f / (1.0f + expf(-a->x[i])); break;
    case SK_SILU_BW: a->y[i] *= sl_k_silu_grad(a->x[i]); break;
    case SK_ACTIVATION_BW: a->y[i] *= sl_k_activation_grad(a->x[i], a->flag); break;
    case SK_RMSNORM_BW: sl_k_rmsnorm_bw_row(a->x, a->w, a->eps, a->d, a->dy, a->y, a->flag, r); break;
    case SK_LAYERNORM_BW: sl_k_layernorm_bw_row(a->x, a->w, a->eps, a->d, a->dy, a->y, a->flag, r); break;
    case SK_LSE: case SK_ATTN_D: case SK_ATTN_DQ: case SK_ATTN_DKV: {
        sl_kquery q = sl_k_query(a, i);
        int head = q.head, T = q.T;
        long base = q.base;
        t = q.t, r = base + t;
        const float *qkv = a->x + base * 3 * a->d;
        const unsigned char *keep = bt->keep + (long)q.b * bt->ldt;
        if (k == SK_LSE) {
            a->y[i] = t < T ? sl_k_attention_lse(qkv, keep, T, a->d, a->dh, a->causal, t, head) : INFINITY;
        } else if (k == SK_ATTN_D) {
            const float *g = a->dy + r * a->d + head * a->dh, *o = a->w + r * a->d + head * a->dh;
            float s = 0.0f;
            for (int j = 0; j < a->dh; j++) s += g[j] * o[j];
            a->y[i] = s;
        } else if (t >= T) {
            float *row = a->dx + r * 3 * a->d + (k == SK_ATTN_DQ ? 0 : a->d) + head * a->dh;
            for (int j = 0; j < a->dh; j++) row[j] = 0.0f;
            if (k == SK_ATTN_DKV)
                for (int j = 0; j < a->dh; j++) row[a->d + j] = 0.0f;
        } else if (k == SK_ATTN_DQ) {
            sl_k_attention_dq(qkv, keep, T, a->d, a->dh, a->causal, a->lse + base * a->heads, a->Dt + base * a->heads,
                              a->dy + base * a->d, a->dx + base * 3 * a->d, t, head, a->heads);
        } else {
            sl_k_attention_dkv(qkv, keep, T, a->d, a->dh, a->causal, a->lse + base * a->heads, a->Dt + base * a->heads,
                               a->dy + base * a->d, a->dx + base * 3 * a->d, t, head, a->heads);
        }
        break;
    }
    case SK_TAIL_BW: {
        /* w: the head's row (flag 2: the difference of its two rows) */
        b = (int)(r / bt->Lb), t = (int)(r % bt->Lb);
        int T = bt->len[b], on = 0, kept = 0;
        const unsigned char *keep = bt->keep + (long)b * bt->ldt;
        if (a->K == POOL_CLS) {
            on = t == 0;
        } else if (a->K == POOL_LAST) {
            int last = T - 1;
            while (last > 0 && !keep[last]) last--;
            on = t == last;
        } else {
            for (int u = 0; u < T; u++) kept += keep[u] != 0;
            on = t < T && keep[t];
        }
        for (int j = 0; j < a->d; j++) {
            float w = a->flag == 2 ? a->w[a->d + j] - a->w[j] : a->w[j];
            a->y[r * a->d + j] = !on ? 0.0f : a->K == POOL_MEAN ? w / (kept ? kept : 1) : w;
        }
        break;
    }
    case SK_LERP: a->y[i] = a->b[i] + a->alpha * (a->x[i] - a->b[i]); break;
    case SK_IG_SCALE: a->y[i] *= (a->x[i] - a->b[i]) / a->K; break;
    case SK_MUL: a->y[i] *= a->x[i]; break;
    case SK_ZERO: a->y[i] = 0.0f; break;
    case SK_ROWSUM: {
        double s = 0;
        for (int j = 0; j < a->d; j++) s += a->x[r * a->d + j];
        a->y[r] = (float)s;
        break;
    }
    default: sl_kernel_thread_m2(k, a, i); break;
    }
}

/* Every launch's thread i. The kernel number is a compile-time constant in
 * each __global__ instance, so nvcc keeps only its own case. */
SL_KERNEL_FN void sl_kernel_thread(int k, const sl_kargs *a, long i)
{
    const sl_kbatch *bt = &a->bt;
    long r = i;
    int b, t;
    switch (k) {
    case SK_EMBED: {
        b = (int)(r / bt->Lb), t = (int)(r % bt->Lb);
        float *dst = a->y + r * a->d;
        if (t < bt->len[b]) {
            const float *src = a->x + (long)bt->tokens[(long)b * bt->ldt + t] * a->d;
            for (int j = 0; j < a->d; j++) dst[j] = a->alpha * src[j];
        } else {
            for (int j = 0; j < a->d; j++) dst[j] = 0.0f;
        }
        break;
    }
    case SK_ADD_POS:
        t = (int)(r % bt->Lb);
        if (t < bt->len[r / bt->Lb])
            for (int j = 0; j < a->d; j++) a->y[r * a->d + j] += a->x[(long)t * a->d + j];
        break;
    case SK_BIAS: a->y[(i / a->cols) * a->ld + i % a->cols] += a->b[i % a->cols]; break;
    case SK_RMSNORM: sl_k_rmsnorm_row(a->x, a->w, a->eps, a->d, a->y, (int)r); break;
    case SK_LAYERNORM: sl_k_layernorm_row(a->x, a->w, a->b, a->eps, a->d, a->y, (int)r); break;
    case SK_CONV: {
        r = i / a->di;
        b = (int)(r / bt->Lb), t = (int)(r % bt->Lb);
        long base = (long)b * bt->Lb;
        sl_k_conv_silu(a->x + base * a->ld, a->ld, a->di, a->K, a->w, a->b, a->flag, a->y + base * a->di, t,
                       (int)(i % a->di));
        break;
    }
    case SK_SOFTPLUS: sl_k_softplus_inplace(a->y, i); break;
    case SK_SCAN: {
        b = (int)(i / a->di);
        int c = (int)(i % a->di), T = bt->len[b];
        long base = (long)b * bt->Lb;
        float *y = a->y + base * a->di;
        sl_k_scan_channel(a->x + base * a->di, a->b + base * a->di, a->w + base * a->ldb, a->ldb, a->boff, a->coff,
                          T, a->di, a->S, a->A_t, a->D, a->flag, y, c);
        for (t = T; t < bt->Lb; t++) y[(long)t * a->di + c] = 0.0f;
        break;
    }
    case SK_GATE: {
        r = i / a->di;
        int c = (int)(i % a->di);
        float *z = a->y2 + r * a->ld + c;
        if (a->flag != SL_GATE_MULTIPLY) *z = a->K ? 1.0f : sl_k_silu(*z); /* K: the gate ablated */
        if (a->flag != SL_GATE_ACTIVATE) a->y[r * a->di + c] *= *z;
        break;
    }
    case SK_ADD: sl_k_residual_add(a->y, a->x, i); break;
    case SK_COPY: a->y[i] = a->x[i]; break;
    case SK_ACTIVATION: sl_k_activation(a->y, i, a->flag); break;
    case SK_ROPE: {
        r = i / (2 * a->heads);
        int hp = (int)(i % (2 * a->heads));
        b = (int)(r / bt->Lb), t = (int)(r % bt->Lb);
        sl_k_rope(a->y + (long)b * bt->Lb * 3 * a->d, a->x, a->d, a->dh, t, hp % a->heads, hp / a->heads, a->flag);
        break;
    }
    case SK_ATTENTION: case SK_PROBS: case SK_APPLY: {
        sl_kquery q = sl_k_query(a, i);
        int head = q.head, T = q.T;
        long base = q.base;
        b = q.b, t = q.t;
        const float *qkv = a->x + base * 3 * a->d;
        float *P = a->y2 + (long)b * a->heads * bt->Lb * bt->Lb;
        if (t >= T) {
            if (k != SK_PROBS)
                for (int j = 0; j < a->dh; j++) a->y[(base + t) * a->d + head * a->dh + j] = 0.0f;
        } else if (k == SK_ATTENTION) {
            sl_k_attention_row(qkv, bt->keep + (long)b * bt->ldt, T, a->d, a->dh, a->causal, a->y + base * a->d, t,
                               head);
        } else if (k == SK_PROBS) {
            sl_k_probs_row(qkv, bt->keep + (long)b * bt->ldt, T, a->d, a->dh, a->causal, P, t, head);
        } else {
            sl_k_apply_row(qkv, P, T, a->d, a->dh, a->y + base * a->d, t, head);
        }
        break;
    }
    case SK_POOL:
        b = (int)(i / a->d);
        sl_k_pool(a->x + (long)b * bt->Lb * a->d, bt->keep + (long)b * bt->ldt, bt->len[b], a->d, a->flag,
                  a->y + i, (int)(i % a->d));
        break;
    case SK_HEAD: {
        float z[2];
        for (int h = 0; h < a->flag; h++) {
            float s = a->b ? a->b[h] : 0.0f;
            for (int j = 0; j < a->d; j++) s += a->w[h * a->d + j] * a->x[i * a->d + j];
            z[h] = s;
        }
        a->y[i] = a->flag == 2 ? z[1] - z[0] : z[0];
        break;
    }
    case SK_REPLACE: {
        r = i / a->cols;
        int j = (int)(i % a->cols);
        b = (int)(r / bt->Lb), t = (int)(r % bt->Lb);
        if (t < bt->len[b] && a->mask[(long)b * a->ldm + t]) a->y[r * a->ld + j] = a->x ? a->x[j] : 0.0f;
        break;
    }
    default: sl_kernel_thread_bw(k, a, i); break;
    }
}

#endif
