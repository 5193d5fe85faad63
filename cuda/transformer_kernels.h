/* A TransformerEncoderLayer's non-GEMM work, one GPU thread's share per
 * function (the projections are cuBLAS GEMMs). Layouts are the CPU core's
 * (models/transformer.c): qkv rows [T][3 * d_model], heads side by side. */
#ifndef SL_TRANSFORMER_KERNELS_H
#define SL_TRANSFORMER_KERNELS_H

#include "cuda/kernel_defs.h"

/* The head dimension a thread's accumulators hold in registers. */
#define SL_MAX_HEAD 128

/* Thread per row t: torch.nn.LayerNorm (biased variance); b may be NULL.
 * In place is allowed (y == x). */
SL_KERNEL_FN void sl_k_layernorm_row(const float *x, const float *w, const float *b, float eps, int d, float *y, int t)
{
    const float *xr = x + (long)t * d;
    float mean = 0, var = 0;
    for (int i = 0; i < d; i++) mean += xr[i];
    mean /= d;
    for (int i = 0; i < d; i++) var += (xr[i] - mean) * (xr[i] - mean);
    float inv = 1.0f / sqrtf(var / d + eps);
    for (int i = 0; i < d; i++) y[(long)t * d + i] = (xr[i] - mean) * inv * w[i] + (b ? b[i] : 0.0f);
}

/* Thread per element: exact (erf) GELU, as torch's "gelu", or ReLU. */
SL_KERNEL_FN void sl_k_activation(float *x, long i, int gelu)
{
    float v = x[i];
    x[i] = gelu ? 0.5f * v * (1.0f + erff(v * 0.70710678118654752f)) : (v > 0.0f ? v : 0.0f);
}

/* Thread per (t, head, q or k): GPT-NeoX rotate-half with the [T][half]
 * cos and sin table (cos then sin per row); inverse rotates back, which is
 * also the rotation's backward pass (its matrix is orthogonal). */
SL_KERNEL_FN void sl_k_rope(float *qkv, const float *table, int d, int dh, int t, int head, int part, int inverse)
{
    int half = dh / 2;
    const float *cs = table + (long)t * 2 * half, *sn = cs + half;
    float *x = qkv + (long)t * 3 * d + part * d + head * dh;
    for (int i = 0; i < half; i++) {
        float a = x[i], b = x[i + half], s = inverse ? -sn[i] : sn[i];
        x[i] = a * cs[i] - b * s;
        x[i + half] = b * cs[i] + a * s;
    }
}

/* Thread per (query t, head): softmax(q k^T / sqrt(dh)) v over the keys it
 * may see (all T, or 0..t when causal; keep[j] == 0 drops key j), streamed
 * with an online softmax so that no score row is ever stored. A query with
 * no visible key gets zeros (see the README's conventions). */
SL_KERNEL_FN void sl_k_attention_row(const float *qkv, const unsigned char *keep, int T, int d, int dh, int causal,
                                     float *ctx, int t, int head)
{
    const float *q = qkv + (long)t * 3 * d + head * dh;
    float acc[SL_MAX_HEAD], mx = -INFINITY, l = 0.0f, scale = 1.0f / sqrtf((float)dh);
    SL_UNROLL
    for (int k = 0; k < SL_MAX_HEAD; k++) acc[k] = 0.0f;
    int end = causal ? t + 1 : T;
    for (int j = 0; j < end; j++) {
        if (keep && !keep[j]) continue;
        const float *kj = qkv + (long)j * 3 * d + d + head * dh, *vj = kj + d;
        float s = 0.0f;
        for (int k = 0; k < dh; k++) s += q[k] * kj[k];
        s *= scale;
        float m2 = s > mx ? s : mx, corr = expf(mx - m2), p = expf(s - m2);
        l = l * corr + p;
        SL_UNROLL
        for (int k = 0; k < SL_MAX_HEAD; k++)
            if (k < dh) acc[k] = acc[k] * corr + p * vj[k];
        mx = m2;
    }
    float *o = ctx + (long)t * d + head * dh;
    SL_UNROLL
    for (int k = 0; k < SL_MAX_HEAD; k++)
        if (k < dh) o[k] = l > 0.0f ? acc[k] / l : 0.0f;
}

#endif
