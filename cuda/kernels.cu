// The __global__ entry points: one instance of sl_g_kernel per kernel of
// cuda/batch_kernels.h, each running the same per-thread function the CPU
// tests run on the host grid (tests/test_device_model.c). The kernel number
// is a template constant, so each instance compiles to its own case only
// (its own register budget: the scan's state and attention's accumulators
// do not weigh on the elementwise kernels).
#include <cuda_runtime.h>

#include "cuda/batch_kernels.h"
#include "cuda/kernels.h"

// 128 threads a block: the register-heavy kernels (a d_state 64 scan, a
// d_state 128 SSD row, a d_head 128 attention row) must still launch at up
// to 255 registers a thread.
#define SL_BLOCK 128

template <int K> __global__ void __launch_bounds__(SL_BLOCK) sl_g_kernel(sl_kargs a, long n)
{
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) sl_kernel_thread(K, &a, i);
}

typedef void (*sl_g_fn)(sl_kargs, long);

#define SL_G(k) sl_g_kernel<k>
static const sl_g_fn sl_g_table[SK_COUNT] = {
    SL_G(SK_EMBED),       SL_G(SK_ADD_POS),     SL_G(SK_BIAS),       SL_G(SK_RMSNORM),     SL_G(SK_LAYERNORM),
    SL_G(SK_CONV),        SL_G(SK_SOFTPLUS),    SL_G(SK_SCAN),       SL_G(SK_GATE),        SL_G(SK_ADD),
    SL_G(SK_ACTIVATION),  SL_G(SK_ROPE),        SL_G(SK_ATTENTION),  SL_G(SK_PROBS),       SL_G(SK_APPLY),
    SL_G(SK_POOL),        SL_G(SK_HEAD),        SL_G(SK_REPLACE),    SL_G(SK_COPY),        SL_G(SK_SILU),
    SL_G(SK_CONV_PRE),    SL_G(SK_CONV_BW),     SL_G(SK_SCAN_KEEP),  SL_G(SK_SCAN_BW),     SL_G(SK_SCAN_BW_REDUCE),
    SL_G(SK_GATE_BW),     SL_G(SK_SOFTPLUS_BW), SL_G(SK_SILU_BW),    SL_G(SK_ACTIVATION_BW), SL_G(SK_RMSNORM_BW),
    SL_G(SK_LAYERNORM_BW), SL_G(SK_LSE),        SL_G(SK_ATTN_D),     SL_G(SK_ATTN_DQ),     SL_G(SK_ATTN_DKV),
    SL_G(SK_TAIL_BW),     SL_G(SK_LERP),       SL_G(SK_IG_SCALE),    SL_G(SK_MUL),
    SL_G(SK_ROWSUM),      SL_G(SK_ZERO),       SL_G(SK_DELTA2),      SL_G(SK_SSD),         SL_G(SK_GATED_NORM),
    SL_G(SK_DELTA2_BW),   SL_G(SK_SSD_CKPT),   SL_G(SK_SSD_BW),      SL_G(SK_SSD_BW_REDUCE), SL_G(SK_GATED_NORM_BW),
    SL_G(SK_SSD_S32),     SL_G(SK_SSD_S64),    SL_G(SK_SSD_CKPT_S32), SL_G(SK_SSD_CKPT_S64),
};
static_assert(SK_SSD_CKPT_S64 + 1 == SK_COUNT, "sl_g_table lists every kernel in enum order");

extern "C" int sl_cuda_launch(int kernel, const sl_kargs *a, cudaStream_t stream, sl_error *err)
{
    if (kernel < 0 || kernel >= SK_COUNT) return sl_fail(err, SL_ERUNTIME, "CUDA launch: no kernel %d", kernel);
    long n = sl_kernel_threads(kernel, a);
    if (n <= 0) return SL_OK;
    long blocks = (n + SL_BLOCK - 1) / SL_BLOCK;
    if (blocks > 0x7fffffffL) return sl_fail(err, SL_ERUNTIME, "CUDA launch of kernel %d: %ld threads is too many", kernel, n);
    sl_g_table[kernel]<<<(unsigned)blocks, SL_BLOCK, 0, stream>>>(*a, n);
    cudaError_t e = cudaGetLastError();
    return e == cudaSuccess ? SL_OK
                            : sl_fail(err, SL_ERUNTIME, "CUDA launch of kernel %d (%ld threads): %s", kernel, n,
                                      cudaGetErrorString(e));
}
