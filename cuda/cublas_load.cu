#include <dlfcn.h>
#include <mutex>

#include "cuda/cublas_load.h"

#define SONAME_OF(major) "libcublas.so." #major
#define SONAME(major) SONAME_OF(major)

static sl_cublas table;
static char failure[256];

template <typename F> static bool find(void *lib, const char *name, F *fn)
{
    *fn = reinterpret_cast<F>(dlsym(lib, name));
    if (!*fn) snprintf(failure, sizeof failure, "%s has no %s", SONAME(CUBLAS_VER_MAJOR), name);
    return *fn != nullptr;
}

static void load()
{
    void *lib = dlopen(SONAME(CUBLAS_VER_MAJOR), RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        const char *why = dlerror();
        snprintf(failure, sizeof failure, "cannot load %s: %s", SONAME(CUBLAS_VER_MAJOR), why ? why : "unknown");
        return;
    }
    sl_cublas t;
    bool ok = find(lib, "cublasCreate_v2", &t.create) && find(lib, "cublasDestroy_v2", &t.destroy) &&
              find(lib, "cublasSetMathMode", &t.set_math_mode) && find(lib, "cublasSetStream_v2", &t.set_stream) &&
              find(lib, "cublasSgemm_v2", &t.sgemm) &&
              find(lib, "cublasSgemmStridedBatched", &t.sgemm_strided_batched) &&
              find(lib, "cublasGetStatusName", &t.status_name) &&
              find(lib, "cublasGetStatusString", &t.status_string);
    if (ok) table = t;
    else dlclose(lib); // a library without every function is not used at all
}

extern "C" const sl_cublas *sl_cublas_get(sl_error *err)
{
    static std::once_flag once;
    std::call_once(once, load);
    if (!table.create) {
        sl_fail(err, SL_ERUNTIME, "cuBLAS: %s", failure);
        return nullptr;
    }
    return &table;
}

extern "C" int sl_cublas_load(sl_error *err) { return sl_cublas_get(err) ? SL_OK : SL_ERUNTIME; }
