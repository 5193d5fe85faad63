// The __global__ entry points: each maps its grid to the same per-thread
// SL_KERNEL_FN the CPU tests run through cuda/host_grid.h, so the device
// code compiled here is the code tests/test_cuda_kernels.c checks against
// PyTorch. Grids are (x: channel or row, y: position) over one example;
// the batched launch layer comes with the device model core.
#include "cuda/mamba_kernels.h"
#include "cuda/transformer_kernels.h"

extern "C" {

__global__ void sl_g_rmsnorm(const float *x, const float *w, float eps, int d, float *y, int T)
{
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t < T) sl_k_rmsnorm_row(x, w, eps, d, y, t);
}

__global__ void sl_g_conv_silu(const float *xz, int ldx, int di, int K, const float *w, const float *b, int identity,
                               float *out, int T)
{
    int c = blockIdx.x * blockDim.x + threadIdx.x, t = blockIdx.y;
    if (c < di && t < T) sl_k_conv_silu(xz, ldx, di, K, w, b, identity, out, t, c);
}

__global__ void sl_g_softplus(float *x, long n)
{
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) sl_k_softplus_inplace(x, i);
}

__global__ void sl_g_scan(const float *x, const float *delta, const float *xdbl, int ldb, int boff, int coff, int T,
                          int di, int S, const float *A_t, const float *D, int ssm_off, float *y)
{
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c < di) sl_k_scan_channel(x, delta, xdbl, ldb, boff, coff, T, di, S, A_t, D, ssm_off, y, c);
}

__global__ void sl_g_gate(float *xz, int ldx, int di, int gate_off, float *y, int T)
{
    int c = blockIdx.x * blockDim.x + threadIdx.x, t = blockIdx.y;
    if (c < di && t < T) sl_k_gate(xz, ldx, di, gate_off, y, t, c);
}

__global__ void sl_g_residual_add(float *h, const float *out, long n)
{
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) sl_k_residual_add(h, out, i);
}

__global__ void sl_g_layernorm(const float *x, const float *w, const float *b, float eps, int d, float *y, int T)
{
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t < T) sl_k_layernorm_row(x, w, b, eps, d, y, t);
}

__global__ void sl_g_activation(float *x, long n, int gelu)
{
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) sl_k_activation(x, i, gelu);
}

__global__ void sl_g_rope(float *qkv, const float *table, int d, int dh, int heads, int T)
{
    int hp = blockIdx.x * blockDim.x + threadIdx.x, t = blockIdx.y;
    if (hp < 2 * heads && t < T) sl_k_rope(qkv, table, d, dh, t, hp % heads, hp / heads);
}

__global__ void sl_g_attention(const float *qkv, const unsigned char *keep, int T, int d, int dh, int heads, int causal,
                               float *ctx)
{
    int head = blockIdx.x * blockDim.x + threadIdx.x, t = blockIdx.y;
    if (head < heads && t < T) sl_k_attention_row(qkv, keep, T, d, dh, causal, ctx, t, head);
}

} // extern "C"
