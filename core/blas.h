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

/* The BLAS this build was compiled against, e.g. "OpenBLAS 0.3.21". */
const char *sl_blas_name(void);

#endif
