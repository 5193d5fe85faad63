/* The one place that talks to CBLAS. */
#ifndef SL_BLAS_H
#define SL_BLAS_H

/* y[rows, out] = x[rows, in] . W[out, in]^T (+ b): a torch.nn.Linear over
 * row-major activations. ldx/ldy are row strides; b may be NULL. */
void sl_linear(const float *x, int ldx, int rows, int in, const float *W, const float *b, int out, float *y,
               int ldy);

/* BLAS runs single-threaded: seqlens parallelises over examples, and a
 * threaded BLAS inside that oversubscribes the cores on small GEMMs. */
void sl_blas_single_thread(void);

/* OpenBLAS picks its kernels for the CPU when it loads, and a release older
 * than the CPU does not know it: 0.3.21 on Emerald Rapids (family 6, model
 * 207) falls back to its Prescott (SSE3) kernels, whose sgemm is 5x slower
 * than its AVX-512 one (IG on the rotary Transformer: about 28% of the time).
 * Every Intel CPU with AVX-512 F, BW, DQ and VL runs the SkylakeX kernels
 * (OpenBLAS's later Intel targets add only bf16 ones), and OpenBLAS reads
 * OPENBLAS_CORETYPE only as it loads: where it fell back so on such a CPU
 * and the user named no core, this sets that variable and runs the program
 * (argv, /proc/self/exe) again; otherwise, or if exec fails, it returns.
 * Call it first in main. */
void sl_blas_pick_core(char **argv);

/* The BLAS this build was compiled against, e.g. "OpenBLAS 0.3.21". */
const char *sl_blas_name(void);

#endif
