/* Eight float lanes through GCC's vector extensions: one AVX register where
 * the build targets AVX2, a pair of SSE registers otherwise, plain C on other
 * machines. Sixteen lanes (v16f): one AVX-512 register; kernels pick them
 * only where __AVX512F__ is defined, since elsewhere they are split in two.
 * Loads and stores go through memcpy, so no alignment is assumed. */
#ifndef SL_SIMD_H
#define SL_SIMD_H

#include <string.h>

typedef float v8f __attribute__((vector_size(32)));

static inline v8f v8_load(const float *p)
{
    v8f v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void v8_store(float *p, v8f v) { memcpy(p, &v, sizeof v); }

static inline v8f v8_set1(float x) { return (v8f){x, x, x, x, x, x, x, x}; }

typedef float v16f __attribute__((vector_size(64)));

static inline v16f v16_load(const float *p)
{
    v16f v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void v16_store(float *p, v16f v) { memcpy(p, &v, sizeof v); }

static inline v16f v16_set1(float x) { return (v16f){x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x}; }

#endif
