/* Launching a batch kernel (cuda/batch_kernels.h) on the GPU: CUDA builds
 * only, called by the CUDA device table (cuda/dev_cuda.cu). */
#ifndef SL_KERNELS_H
#define SL_KERNELS_H

#include <cuda_runtime.h>

#include "core/error.h"
#include "cuda/batch_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Asynchronous on stream; a bad launch (configuration, resources) is
 * reported here, a fault during the kernel by the next synchronising call. */
int sl_cuda_launch(int kernel, const sl_kargs *a, cudaStream_t stream, sl_error *err);

#ifdef __cplusplus
}
#endif

#endif
