/* Mamba-2's kernels on the CPU (models/mamba2_cpu.c), positions 0..T-1 of
 * one example, behind the CPU operations delta2, ssd, gated_norm and their
 * backward ones (models/cpu_ops.c, cpu_grad_ops.c). Rows are position-major
 * with their own strides (ld), as the operations' views give them.
 * Internal to models/. */
#ifndef SL_MAMBA2_CPU_H
#define SL_MAMBA2_CPU_H

#include <stddef.h>

#include "core/config.h"

/* delta = clamp(softplus(dt + bias), lo, hi) of T rows of H; delta may be dt. */
void sl_delta2(const float *dt, int lddt, int T, int H, const float *bias, float lo, float hi, float *delta, int ldd);
/* ddt = ddelta softplus'(dt + bias), 0 where the clamp held (torch.clamp's
 * gradient: it passes where lo <= v <= hi); ddt may be ddelta. */
void sl_delta2_backward(const float *dt, int lddt, int T, int H, const float *bias, float lo, float hi,
                        const float *dd, int lddd, float *ddt, int ldddt);

/* One SSD's inputs: T positions, H heads of P channels (x [H P]), G groups
 * of N states (B, C [G N], in rows of stride ldb), delta [H]; A [H] =
 * -exp(A_log); D [H], or [H P] when D_per_channel. Head h reads group
 * h / (H / G). */
typedef struct {
    int T, H, P, G, N, D_per_channel;
    const float *x, *delta, *B, *C, *A, *D;
    int ldx, ldd, ldb;
} sl_ssd_in;

/* The backward recomputes the states this many positions at a time from
 * the state the forward kept before them. */
#ifndef SL_SSD_CHUNK
#define SL_SSD_CHUNK 16
#endif

/* The scan's state, [H][N][P] (P innermost, so that the inner loop runs
 * across a head's channels): per head, a = exp(delta A) is one scalar. */
static inline size_t sl_ssd_state_floats(int H, int P, int N) { return (size_t)H * P * N; }
/* The states kept every SL_SSD_CHUNK positions for a backward of up to L
 * positions (slot 0 unused: the zero state). */
size_t sl_ssd_ckpt_floats(int H, int P, int N, int L);
/* The backward's scratch: one chunk's states and decays, the carried
 * gradient and the partial sums of dB and dC. */
size_t sl_ssd_scratch_floats(int H, int P, int G, int N);

/* S_t[h] = exp(delta_t[h] A[h]) S_{t-1}[h] + delta_t[h] x_t[h] (x) B_t[g],
 * y_t[h] = S_t[h] C_t[g] + D x_t[h], from S_{-1} = 0 in state; ckpt (or
 * NULL) receives the state before each chunk after the first. Eight
 * channels to a vector where P is a multiple of 8, plain loops otherwise. */
void sl_ssd(const sl_ssd_in *in, float *state, float *y, int ldy, float *ckpt);
/* The same from S_{-1} = init (a kept state, [H][N][P]; NULL: 0): a pass
 * over the positions after a chunk boundary, from the state kept there,
 * gives them the whole pass's bits. */
void sl_ssd_from(const sl_ssd_in *in, const float *init, float *state, float *y, int ldy, float *ckpt);
/* The plain loops whatever P (the reference the vectors are tested against). */
void sl_ssd_scalar(const sl_ssd_in *in, float *state, float *y, int ldy, float *ckpt);
/* y = D x: the scan ablated (ablate --component ssm). */
void sl_ssd_skip(const sl_ssd_in *in, float *y, int ldy);

/* The reverse scan from dy, the states recomputed a chunk at a time from
 * ckpt (as sl_ssd left it for the same inputs): dx [H P], dd [H], dB and
 * dC [G N] (rows of lddb) are written, not added to. */
void sl_ssd_backward(const sl_ssd_in *in, const float *ckpt, const float *dy, int lddy, float *scratch, float *dx,
                     int lddx, float *dd, int lddd, float *dB, float *dC, int lddb);
void sl_ssd_backward_scalar(const sl_ssd_in *in, const float *ckpt, const float *dy, int lddy, float *scratch,
                            float *dx, int lddx, float *dd, int lddd, float *dB, float *dC, int lddb);

/* Mamba-2's gated RMSNorm (mamba_ssm's RMSNormGated with group_size) on T
 * rows of di channels, groups of `group`: out = RMSNorm(y g) w, or with
 * before RMSNorm(y) w g, where g = SiLU(z) already formed; w NULL (no gated
 * norm) out = y g. out may be y. */
void sl_gated_norm(const float *y, int ldy, const float *g, int ldg, int T, int di, const float *w, int group,
                   float eps, int before, float *out, int ldo);
/* Its backward from dout with z before its SiLU: dy and dz written; dy may
 * be dout. */
void sl_gated_norm_backward(const float *y, int ldy, const float *z, int ldz, int T, int di, const float *w, int group,
                            float eps, int before, const float *dout, int lddo, float *dy, int lddy, float *dz,
                            int lddz);

#endif
