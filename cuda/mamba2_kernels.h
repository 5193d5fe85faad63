/* The Mamba-2 block's non-GEMM work (models/mamba2.c: delta2, ssd,
 * gated_norm and their backward), one GPU thread's share per function;
 * the projections are cuBLAS GEMMs and the conv is Mamba-1's kernel on the
 * xBC columns. Each function sees one example: its pointers begin at the
 * example's first row, each view with its own row stride (x, B and C are
 * columns of the conv's output rows, z and dt of in_proj's). The state of
 * head h is [headdim][d_state]; a thread owns one of its rows (channel ch
 * = h * headdim + p), as the Mamba-1 scan owns a channel. */
#ifndef SL_MAMBA2_KERNELS_H
#define SL_MAMBA2_KERNELS_H

#include "cuda/kernel_defs.h"

/* The SSD keeps a state row in registers: up to Mamba-2's default d_state
 * (128). At 128 the forward thread holds 128 state values and ~30 others,
 * under the 255 registers a 128-thread block allows (nvcc -Xptxas -v).
 * The scans take the bound (cap) as an argument that each kernel instance
 * fixes at compile time (batch_kernels.h: 32, 64 or 128), so a smaller
 * state uses fewer registers: 63, 116 and 166 for the forward at sm_90,
 * 8, 4 and 3 blocks of 128 threads an SM. */
#define SL_MAX_SSD_STATE 128

/* Thread per (row r, head h): delta = clamp(softplus(dt + bias), lo, hi),
 * as mamba_ssm (softplus with torch's threshold 20, then dt_limit); a NaN
 * stays NaN, as torch.clamp leaves it. */
SL_KERNEL_FN void sl_k_delta2(const float *dt, int ldt, const float *bias, float lo, float hi, float *delta, int ldd,
                              long r, int h)
{
    float v = sl_k_softplus(dt[r * ldt + h] + bias[h]);
    delta[r * ldd + h] = v < lo ? lo : v > hi ? hi : v;
}

/* Its backward: ddt = ddelta softplus'(dt + bias) where the clamp passed
 * delta through (lo <= delta <= hi, torch.clamp's rule), else 0. ddt may
 * be ddelta. */
SL_KERNEL_FN void sl_k_delta2_bw(const float *dt, int ldt, const float *bias, float lo, float hi, const float *dd,
                                 int ldd, float *ddt, int lddt, long r, int h)
{
    float u = dt[r * ldt + h] + bias[h], v = sl_k_softplus(u), g = dd[r * ldd + h];
    float grad = u > 20.0f ? 1.0f : 1.0f / (1.0f + expf(-u));
    ddt[r * lddt + h] = v >= lo && v <= hi ? g * grad : 0.0f;
}

/* One SSD launch's views and shapes: every pointer at the example's first
 * row (or, for the backward's scratch, at the example's share). */
typedef struct {
    const float *x, *delta, *B, *C; /* B and C: the view's first column (group 0) */
    int ldx, ldd, ldbc;             /* row strides of x, delta, B and C */
    const float *A, *D;             /* [H]; D [H], or [H P] with D_ch */
    int T, H, P, G, S, D_ch;
} sl_k_ssd_in;

/* D of channel ch (head h). */
SL_KERNEL_FN float sl_k_ssd_D(const sl_k_ssd_in *s, int h, int ch) { return s->D_ch ? s->D[ch] : s->D[h]; }

/* Thread per state row (head h, row p), sequential over the T positions,
 * the row's S (<= cap) values in registers: S_t = exp(delta_t A) S_{t-1} + delta_t
 * x_t B_t (group g = h / (H / G)); y_t = S_t . C_t + D x_t. ablated (ablate
 * --component ssm) keeps y = D x. */
SL_KERNEL_FN void sl_k_ssd_row(const sl_k_ssd_in *s, int ablated, float *y, int ldy, int h, int p, const int cap)
{
    int ch = h * s->P + p, g = h / (s->H / s->G);
    const float *Bg = s->B + g * s->S, *Cg = s->C + g * s->S;
    float A = s->A[h], Dv = sl_k_ssd_D(s, h, ch), st[SL_MAX_SSD_STATE];
    SL_UNROLL
    for (int n = 0; n < cap; n++) st[n] = 0.0f;
    for (int t = 0; t < s->T; t++) {
        float xt = s->x[(long)t * s->ldx + ch], acc = 0.0f;
        if (!ablated) {
            float dl = s->delta[(long)t * s->ldd + h], a = expf(dl * A), u = dl * xt;
            const float *Bt = Bg + (long)t * s->ldbc, *Ct = Cg + (long)t * s->ldbc;
            SL_UNROLL
            for (int n = 0; n < cap; n++)
                if (n < s->S) {
                    st[n] = a * st[n] + u * Bt[n];
                    acc += st[n] * Ct[n];
                }
        }
        y[(long)t * ldy + ch] = acc + Dv * xt;
    }
}

/* ---- the backward: bounded memory ----
 * The reverse needs S_{t-1} at every t. Mamba-1's device backward keeps
 * every state ([rows][d_state][d_inner], three such buffers with its dB and
 * dC shares); at Mamba-2's d_state 128 that would cost ~1,500 floats per
 * channel and position. Instead positions go in chunks of K: one pass
 * keeps the state at each chunk's start (ck [nck][S][di]), then, chunk by
 * chunk from the last, a launch recomputes the chunk's K states from its
 * checkpoint (st [K][S][di]) and walks back through them, carrying d logit /
 * d state to the chunk before in ds [S][di]; a second launch sums the
 * chunk's per-channel shares of ddelta, dB and dC in a fixed order (no
 * atomics: the same sums every run). Memory per example is S di (L / K +
 * 3 K + 1) + K di floats, smallest at K ~ sqrt(L / 3) (device_model.c);
 * the compute is about three forward scans. Layouts put the channel last,
 * so that neighbouring threads touch neighbouring floats. */
typedef struct {
    float *ck;       /* [nck][S][di] the state before each chunk's first position */
    float *st;       /* [K][S][di] the chunk's states */
    float *ds;       /* [S][di] d logit / d the state after the chunk */
    float *dp;       /* [K][di] each channel's share of ddelta */
    float *dBp, *dCp; /* [K][S][di] each channel's share of dB and dC */
    int K, c;        /* positions per chunk, the chunk */
} sl_k_ssd_bw_mem;

/* Thread per (h, p): the recurrence again, keeping the state at the start
 * of every chunk (ck). */
SL_KERNEL_FN void sl_k_ssd_ckpt(const sl_k_ssd_in *s, float *ck, int K, int h, int p, const int cap)
{
    int ch = h * s->P + p, g = h / (s->H / s->G), di = s->H * s->P;
    const float *Bg = s->B + g * s->S;
    float A = s->A[h], st[SL_MAX_SSD_STATE];
    SL_UNROLL
    for (int n = 0; n < cap; n++) st[n] = 0.0f;
    for (int t = 0; t < s->T; t++) {
        if (t % K == 0) {
            float *dst = ck + (long)(t / K) * s->S * di + ch;
            SL_UNROLL
            for (int n = 0; n < cap; n++)
                if (n < s->S) dst[(long)n * di] = st[n];
        }
        float dl = s->delta[(long)t * s->ldd + h], a = expf(dl * A), u = dl * s->x[(long)t * s->ldx + ch];
        const float *Bt = Bg + (long)t * s->ldbc;
        SL_UNROLL
        for (int n = 0; n < cap; n++)
            if (n < s->S) st[n] = a * st[n] + u * Bt[n];
    }
}

/* Thread per (h, p), chunk m->c: from dy (the SSD's output gradient, rows
 * of ldy) to dx (rows of lddx: written, 0 at padding positions below Lb)
 * and the channel's shares in m (see sl_k_ssd_bw_mem). */
SL_KERNEL_FN void sl_k_ssd_bw(const sl_k_ssd_in *s, const sl_k_ssd_bw_mem *m, const float *dy, int ldy, float *dx,
                              int lddx, int Lb, int h, int p)
{
    int ch = h * s->P + p, g = h / (s->H / s->G), di = s->H * s->P, S = s->S;
    int t0 = m->c * m->K, t1 = t0 + m->K < s->T ? t0 + m->K : s->T, end = t0 + m->K < Lb ? t0 + m->K : Lb;
    for (int t = t1 > t0 ? t1 : t0; t < end; t++) dx[(long)t * lddx + ch] = 0.0f;
    if (t0 >= s->T) return;
    const float *Bg = s->B + g * S, *Cg = s->C + g * S, *ck = m->ck + (long)m->c * S * di + ch;
    float A = s->A[h], Dv = sl_k_ssd_D(s, h, ch), *ds = m->ds + ch;
    /* the chunk's states from its checkpoint */
    for (int t = t0; t < t1; t++) {
        int k = t - t0;
        float dl = s->delta[(long)t * s->ldd + h], a = expf(dl * A), u = dl * s->x[(long)t * s->ldx + ch];
        const float *Bt = Bg + (long)t * s->ldbc, *prev = k ? m->st + (long)(k - 1) * S * di + ch : ck;
        float *cur = m->st + (long)k * S * di + ch;
        for (int n = 0; n < S; n++) cur[(long)n * di] = a * prev[(long)n * di] + u * Bt[n];
    }
    /* back through them */
    for (int t = t1 - 1; t >= t0; t--) {
        int k = t - t0;
        float gy = dy[(long)t * ldy + ch], xt = s->x[(long)t * s->ldx + ch], dl = s->delta[(long)t * s->ldd + h];
        float a = expf(dl * A), gx = Dv * gy, gd = 0.0f;
        const float *Bt = Bg + (long)t * s->ldbc, *Ct = Cg + (long)t * s->ldbc;
        const float *cur = m->st + (long)k * S * di + ch, *prev = k ? cur - (long)S * di : ck;
        float *dBk = m->dBp + (long)k * S * di + ch, *dCk = m->dCp + (long)k * S * di + ch;
        for (int n = 0; n < S; n++) {
            long o = (long)n * di;
            float dsn = ds[o] + gy * Ct[n];
            dCk[o] = gy * cur[o];
            gd += dsn * (prev[o] * a * A + xt * Bt[n]);
            gx += dsn * dl * Bt[n];
            dBk[o] = dsn * dl * xt;
            ds[o] = dsn * a;
        }
        dx[(long)t * lddx + ch] = gx;
        m->dp[(long)k * di + ch] = gd;
    }
}

/* Thread per (position k of the chunk, column j of [ddelta H | dB G S | dC
 * G S]): the channels' shares summed (heads, then rows, in order; double),
 * 0 at padding (valid 0). dd, dB and dC are the position's rows. */
SL_KERNEL_FN void sl_k_ssd_bw_reduce(const sl_k_ssd_bw_mem *m, int H, int P, int G, int S, int k, int valid, float *dd,
                                     float *dB, float *dC, int j)
{
    int di = H * P;
    double sum = 0;
    if (j < H) {
        const float *src = m->dp + (long)k * di + j * P;
        for (int p = 0; valid && p < P; p++) sum += src[p];
        dd[j] = (float)sum;
        return;
    }
    j -= H;
    int isC = j >= G * S;
    if (isC) j -= G * S;
    int g = j / S, n = j % S, hpg = H / G;
    const float *src = (isC ? m->dCp : m->dBp) + ((long)k * S + n) * di + (long)g * hpg * P;
    for (int q = 0; valid && q < hpg * P; q++) sum += src[q];
    (isC ? dC : dB)[j] = (float)sum;
}

/* Thread per (row r, group q of gs channels): mamba_ssm's RMSNormGated
 * with the gate s = SiLU(z) already formed: out = RMSNorm(y s) w over the
 * group, or with before, RMSNorm(y) w s; w NULL (no gated norm): out = y s.
 * out may be y. */
SL_KERNEL_FN void sl_k_gated_norm(const float *y, int ldy, const float *s, int lds, const float *w, int gs, float eps,
                                  int before, float *out, int ldo, long r, int q)
{
    const float *yr = y + r * ldy + q * gs, *sr = s + r * lds + q * gs;
    float *o = out + r * ldo + q * gs;
    if (!w) {
        for (int i = 0; i < gs; i++) o[i] = yr[i] * sr[i];
        return;
    }
    const float *wq = w + q * gs;
    float ss = 0.0f;
    for (int i = 0; i < gs; i++) {
        float v = before ? yr[i] : yr[i] * sr[i];
        ss += v * v;
    }
    float inv = 1.0f / sqrtf(ss / gs + eps);
    for (int i = 0; i < gs; i++) o[i] = before ? yr[i] * inv * wq[i] * sr[i] : yr[i] * sr[i] * inv * wq[i];
}

/* Its backward from dout, with z the gate's input (before SiLU): dy and dz
 * written (sums in double, as the other norms' backward). dy may be dout. */
SL_KERNEL_FN void sl_k_gated_norm_bw(const float *y, int ldy, const float *z, int ldz, const float *w, int gs, float eps,
                                     int before, const float *dout, int ldo, float *dy, int lddy, float *dz, int lddz,
                                     long r, int q)
{
    const float *yr = y + r * ldy + q * gs, *zr = z + r * ldz + q * gs, *gr = dout + r * ldo + q * gs;
    float *dyr = dy + r * lddy + q * gs, *dzr = dz + r * lddz + q * gs;
    if (!w) {
        for (int i = 0; i < gs; i++) {
            float go = gr[i];
            dzr[i] = go * yr[i] * sl_k_silu_grad(zr[i]);
            dyr[i] = go * sl_k_silu(zr[i]);
        }
        return;
    }
    const float *wq = w + q * gs;
    /* v: what is normalised (y s, or y with before); gv: d logit / d (v r) */
    double ss = 0, dot = 0;
    for (int i = 0; i < gs; i++) {
        double s = sl_k_silu(zr[i]), v = before ? yr[i] : yr[i] * s, gv = (double)gr[i] * wq[i] * (before ? s : 1.0);
        ss += v * v;
        dot += gv * v;
    }
    double rs = 1.0 / sqrt(ss / gs + eps), k3 = rs * rs * rs * dot / gs;
    for (int i = 0; i < gs; i++) {
        double s = sl_k_silu(zr[i]), go = gr[i], v = before ? yr[i] : yr[i] * s;
        double gv = go * wq[i] * (before ? s : 1.0), dv = rs * gv - v * k3;
        /* before: dz from out = (y r w) s; otherwise from v = y s */
        dzr[i] = (float)((before ? go * yr[i] * rs * wq[i] : dv * yr[i]) * sl_k_silu_grad(zr[i]));
        dyr[i] = (float)(before ? dv : dv * s);
    }
}

#endif
