/* The backward pass's per-thread work (attribution), batched as in
 * cuda/batch_kernels.h: the same flat thread index, the same padded rows.
 * Each function is the CPU core's backward (models/backward.c, mamba.c,
 * transformer.c) for one thread's share. Gradients at padding rows are 0
 * and stay 0, so no valid position receives anything from padding.
 * Included by batch_kernels.h only. */
#ifndef SL_BACKWARD_KERNELS_H
#define SL_BACKWARD_KERNELS_H

/* d/dx of exact GELU, x Phi(x): Phi(x) + x phi(x); of ReLU: the step. */
SL_KERNEL_FN float sl_k_activation_grad(float x, int gelu)
{
    if (!gelu) return x > 0.0f ? 1.0f : 0.0f;
    return 0.5f * erfcf(-0.70710678118654752f * x) + x * 0.39894228040143268f * expf(-0.5f * x * x);
}

/* Row t: dx = d/dx of RMSNorm(x) w applied to dy (double sums, as the CPU);
 * accumulate adds into dx instead of overwriting. */
SL_KERNEL_FN void sl_k_rmsnorm_bw_row(const float *x, const float *w, float eps, int d, const float *dy, float *dx,
                                      int accumulate, long t)
{
    const float *xr = x + t * d, *gr = dy + t * d;
    double ss = 0, dot = 0;
    for (int i = 0; i < d; i++) ss += (double)xr[i] * xr[i];
    double rs = 1.0 / sqrt(ss / d + eps);
    for (int i = 0; i < d; i++) dot += (double)gr[i] * w[i] * xr[i];
    for (int i = 0; i < d; i++) {
        float v = (float)(rs * gr[i] * w[i] - xr[i] * rs * rs * rs * dot / d);
        dx[t * d + i] = accumulate ? dx[t * d + i] + v : v;
    }
}

/* Row t of LayerNorm's backward; dy may be dx (in place). */
SL_KERNEL_FN void sl_k_layernorm_bw_row(const float *x, const float *w, float eps, int d, const float *dy, float *dx,
                                        int accumulate, long t)
{
    const float *xr = x + t * d, *gr = dy + t * d;
    double mean = 0, var = 0, m1 = 0, m2 = 0;
    for (int i = 0; i < d; i++) mean += xr[i];
    mean /= d;
    for (int i = 0; i < d; i++) var += (xr[i] - mean) * (xr[i] - mean);
    double rstd = 1.0 / sqrt(var / d + eps);
    for (int i = 0; i < d; i++) {
        double g = (double)gr[i] * w[i];
        m1 += g;
        m2 += g * (xr[i] - mean) * rstd;
    }
    m1 /= d;
    m2 /= d;
    for (int i = 0; i < d; i++) {
        double xh = (xr[i] - mean) * rstd;
        float v = (float)(rstd * ((double)gr[i] * w[i] - m1 - xh * m2));
        dx[t * d + i] = accumulate ? dx[t * d + i] + v : v;
    }
}

/* Thread per (t, c) of one example: the causal conv before its SiLU. */
SL_KERNEL_FN void sl_k_conv_pre(const float *xz, int ldx, int di, int K, const float *w, const float *b, float *out,
                                int t, int c)
{
    float acc = b ? b[c] : 0.0f;
    for (int k = 0; k < K; k++) {
        int src = t - (K - 1) + k;
        if (src >= 0) acc += w[c * K + k] * xz[(long)src * ldx + c];
    }
    out[(long)t * di + c] = acc;
}

/* Thread per (t, c): the conv transposed, from dx (rows < T) into the x
 * half of dxz. */
SL_KERNEL_FN void sl_k_conv_bw(const float *dx, int di, int K, const float *w, int T, float *dxz, int ldz, int t, int c)
{
    float s = 0;
    for (int k = 0; k < K && t < T; k++) {
        int out = t + (K - 1) - k;
        if (out < T) s += w[c * K + k] * dx[(long)out * di + c];
    }
    dxz[(long)t * ldz + c] = s;
}

/* Thread per channel c: the scan again, keeping every state
 * states[t][n][di] (and y), for the reverse pass. */
SL_KERNEL_FN void sl_k_scan_keep(const float *x, const float *delta, const float *xdbl, int ldb, int boff, int coff,
                                 int T, int di, int S, const float *A_t, const float *D, float *y, float *states, int c)
{
    for (int t = 0; t < T; t++) {
        float xt = x[(long)t * di + c], dt = delta[(long)t * di + c], yt = D[c] * xt;
        const float *Bt = xdbl + (long)t * ldb + boff, *Ct = xdbl + (long)t * ldb + coff;
        float *st = states + (long)t * S * di, *sp = t ? st - (long)S * di : 0;
        for (int n = 0; n < S; n++) {
            float v = expf(dt * A_t[(long)n * di + c]) * (sp ? sp[(long)n * di + c] : 0.0f) + dt * xt * Bt[n];
            st[(long)n * di + c] = v;
            yt += v * Ct[n];
        }
        y[(long)t * di + c] = yt;
    }
}

/* Thread per channel c, t from T-1 down: dy (after the gate) to dx, ddelta
 * and each channel's share of dB_t and dC_t (dBp, dCp [t][n][di], summed
 * over channels by sl_k_scan_bw_reduce in channel order, as the CPU). */
SL_KERNEL_FN void sl_k_scan_bw(const float *x, const float *delta, const float *xdbl, int ldb, int boff, int coff,
                               int T, int di, int S, const float *A_t, const float *D, const float *states,
                               const float *dy, float *dx, float *dd, float *dBp, float *dCp, int c)
{
    /* not unrolled: with its other live values, a register-resident ds
     * spilled 500 bytes (-Xptxas -v); as a plain local array it takes 256 */
    float ds[SL_MAX_STATE];
    for (int n = 0; n < S; n++) ds[n] = 0.0f;
    for (int t = T - 1; t >= 0; t--) {
        const float *Bt = xdbl + (long)t * ldb + boff, *Ct = xdbl + (long)t * ldb + coff;
        const float *st = states + (long)t * S * di, *sp = t ? st - (long)S * di : 0;
        float g = dy[(long)t * di + c], xt = x[(long)t * di + c], dl = delta[(long)t * di + c];
        float gx = D[c] * g, gd = 0.0f;
        for (int n = 0; n < S; n++) {
            float A = A_t[(long)n * di + c], a = expf(dl * A);
            ds[n] += g * Ct[n];
            dCp[((long)t * S + n) * di + c] = g * st[(long)n * di + c];
            float prev = sp ? sp[(long)n * di + c] : 0.0f;
            gd += ds[n] * (prev * a * A + xt * Bt[n]);
            gx += ds[n] * dl * Bt[n];
            dBp[((long)t * S + n) * di + c] = ds[n] * dl * xt;
            ds[n] *= a;
        }
        dx[(long)t * di + c] = gx;
        dd[(long)t * di + c] = gd;
    }
}

/* Thread per (row, j) of dxdbl [R + 2S] (dBr, dCr: the row's [S][di]
 * shares): 0 for the dt part (the dt_proj backward adds to it) and for
 * padding, the channel sums for B and C. */
SL_KERNEL_FN void sl_k_scan_bw_reduce(const float *dBr, const float *dCr, int di, int S, int R, int valid, float *row,
                                      int j)
{
    double s = 0;
    if (j >= R && valid) {
        const float *p = (j < R + S ? dBr : dCr) + (long)((j - R) % S) * di;
        for (int c = 0; c < di; c++) s += p[c];
    }
    row[j] = (float)s;
}

/* Thread per (t, head) of one example: log sum exp of the query's visible
 * scores (+inf when it sees no key, so that every P is 0). */
SL_KERNEL_FN float sl_k_attention_lse(const float *qkv, const unsigned char *keep, int T, int d, int dh, int causal,
                                      int t, int head)
{
    const float *q = qkv + (long)t * 3 * d + head * dh;
    float mx = -INFINITY, l = 0.0f, scale = 1.0f / sqrtf((float)dh);
    int end = causal ? t + 1 : T;
    for (int j = 0; j < end; j++) {
        if (!keep[j]) continue;
        const float *kj = qkv + (long)j * 3 * d + d + head * dh;
        float s = 0.0f;
        for (int k = 0; k < dh; k++) s += q[k] * scale * kj[k];
        float m2 = s > mx ? s : mx;
        l = l * expf(mx - m2) + expf(s - m2);
        mx = m2;
    }
    return l > 0.0f ? mx + logf(l) : INFINITY;
}

/* Thread per (t, head): dq_t = scale sum_j P_tj (dP_tj - Dt) k_j, with
 * P_tj = exp(s_tj - lse_t), dP_tj = dctx_t . v_j, Dt = dctx_t . ctx_t. */
SL_KERNEL_FN void sl_k_attention_dq(const float *qkv, const unsigned char *keep, int T, int d, int dh, int causal,
                                    const float *lse, const float *Dt, const float *dctx, float *dqkv, int t, int head,
                                    int heads)
{
    const float *q = qkv + (long)t * 3 * d + head * dh, *go = dctx + (long)t * d + head * dh;
    float *dq = dqkv + (long)t * 3 * d + head * dh, scale = 1.0f / sqrtf((float)dh);
    float m = lse[(long)t * heads + head], D = Dt[(long)t * heads + head];
    for (int k = 0; k < dh; k++) dq[k] = 0.0f;
    int end = causal ? t + 1 : T;
    for (int j = 0; j < end; j++) {
        if (!keep[j]) continue;
        const float *kj = qkv + (long)j * 3 * d + d + head * dh, *vj = kj + d;
        float s = 0.0f, dp = 0.0f;
        for (int k = 0; k < dh; k++) s += q[k] * scale * kj[k], dp += go[k] * vj[k];
        float dsc = expf(s - m) * (dp - D) * scale;
        for (int k = 0; k < dh; k++) dq[k] += dsc * kj[k];
    }
}

/* Thread per (key j, head): dk_j = sum_t dS_tj q_t scale, dv_j = sum_t P_tj
 * dctx_t over the queries t < T that see key j. */
SL_KERNEL_FN void sl_k_attention_dkv(const float *qkv, const unsigned char *keep, int T, int d, int dh, int causal,
                                     const float *lse, const float *Dt, const float *dctx, float *dqkv, int j, int head,
                                     int heads)
{
    const float *kj = qkv + (long)j * 3 * d + d + head * dh, *vj = kj + d;
    float *dk = dqkv + (long)j * 3 * d + d + head * dh, *dv = dk + d, scale = 1.0f / sqrtf((float)dh);
    for (int k = 0; k < dh; k++) dk[k] = dv[k] = 0.0f;
    if (!keep[j]) return;
    for (int t = causal ? j : 0; t < T; t++) {
        const float *q = qkv + (long)t * 3 * d + head * dh, *go = dctx + (long)t * d + head * dh;
        float s = 0.0f, dp = 0.0f;
        for (int k = 0; k < dh; k++) s += q[k] * scale * kj[k], dp += go[k] * vj[k];
        float p = expf(s - lse[(long)t * heads + head]), dsc = p * (dp - Dt[(long)t * heads + head]);
        for (int k = 0; k < dh; k++) {
            dk[k] += dsc * q[k] * scale;
            dv[k] += p * go[k];
        }
    }
}

#endif
