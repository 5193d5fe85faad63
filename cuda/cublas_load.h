// cuBLAS, loaded on first use instead of linked: a linked cuBLAS is loaded
// at every start, device used or not, and cost every command, --device cpu
// and --help included, 0.15-0.2 s. Only the .cu files that call cuBLAS
// include this; they call it through the table.
#ifndef SL_CUBLAS_LOAD_H
#define SL_CUBLAS_LOAD_H

#include <cublas_v2.h>

#include "core/error.h"

struct sl_cublas {
    decltype(&cublasCreate_v2) create;
    decltype(&cublasDestroy_v2) destroy;
    decltype(&cublasSetMathMode) set_math_mode;
    decltype(&cublasSetStream_v2) set_stream;
    decltype(&cublasSgemm_v2) sgemm;
    decltype(&cublasSgemmStridedBatched) sgemm_strided_batched;
    decltype(&cublasGetStatusName) status_name;
    decltype(&cublasGetStatusString) status_string;
};

// The table, loading the library (the soname of the cuBLAS major version
// this was built with) on the first call; thread-safe. NULL with an error
// naming the library or the missing function.
extern "C" const sl_cublas *sl_cublas_get(sl_error *err);

#endif
