/* Eight float lanes through GCC's vector extensions: one AVX register where
 * the build targets AVX2, a pair of SSE registers otherwise, plain C on other
 * machines. Sixteen lanes (v16f): one AVX-512 register; kernels pick them
 * only where __AVX512F__ is defined, since elsewhere they are split in two.
 * Loads and stores go through memcpy, so no alignment is assumed. */
#ifndef SL_SIMD_H
#define SL_SIMD_H

#include <string.h>
#if defined(__AVX__)
#include <immintrin.h>
#endif

typedef float v8f __attribute__((vector_size(32)));

/* Holds v in a vector register from here on: where a value stays live
 * across a loop beside many others, GCC may keep it in its stack slot and
 * read it from memory in every FMA that uses it, and then the loads, not
 * the FMAs, set the loop's pace. An empty asm: no instruction. Only where
 * a v8f is one register (AVX). */
#if defined(__AVX__)
#define SL_IN_REGISTER(v) __asm__("" : "+x"(v))
#else
#define SL_IN_REGISTER(v) ((void)0)
#endif

static inline v8f v8_load(const float *p)
{
    v8f v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void v8_store(float *p, v8f v) { memcpy(p, &v, sizeof v); }

static inline v8f v8_set1(float x) { return (v8f){x, x, x, x, x, x, x, x}; }

/* Lane by lane a > b ? a : b: b where either is NaN (as the max
 * instructions do). */
static inline v8f v8_max(v8f a, v8f b)
{
#if defined(__AVX__)
    return (v8f)_mm256_max_ps((__m256)a, (__m256)b);
#else
    v8f r;
    for (int i = 0; i < 8; i++) r[i] = a[i] > b[i] ? a[i] : b[i];
    return r;
#endif
}

/* a * b + c rounded once where the target has FMA, twice where it has
 * not: written out, not left to -ffp-contract, whose choice follows the
 * tuning (GCC's Zen tuning keeps a sum's chain of FMAs as multiplies and
 * adds), so that a sum's bits are the ones its definition names on every
 * machine (sl_fma1 the same on one float). */
static inline v8f v8_fma(v8f a, v8f b, v8f c)
{
#if defined(__FMA__)
    return (v8f)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c);
#else
    return a * b + c;
#endif
}

#if defined(__AVX__)
/* c[k][j] = r[j][k]: the 8 x 8 transpose of eight rows in registers
 * (unpack, shuffle, then swap 128-bit halves: 24 shuffles, no memory) */
static inline void v8_transpose8(const v8f r[8], v8f c[8])
{
    __m256 a[8], b[8];
    for (int j = 0; j < 8; j += 2) {
        a[j] = _mm256_unpacklo_ps((__m256)r[j], (__m256)r[j + 1]);
        a[j + 1] = _mm256_unpackhi_ps((__m256)r[j], (__m256)r[j + 1]);
    }
    for (int j = 0; j < 8; j += 4) {
        b[j] = _mm256_shuffle_ps(a[j], a[j + 2], 0x44);
        b[j + 1] = _mm256_shuffle_ps(a[j], a[j + 2], 0xee);
        b[j + 2] = _mm256_shuffle_ps(a[j + 1], a[j + 3], 0x44);
        b[j + 3] = _mm256_shuffle_ps(a[j + 1], a[j + 3], 0xee);
    }
    for (int j = 0; j < 4; j++) {
        c[j] = (v8f)_mm256_permute2f128_ps(b[j], b[j + 4], 0x20);
        c[j + 4] = (v8f)_mm256_permute2f128_ps(b[j], b[j + 4], 0x31);
    }
}
#endif

static inline float sl_fma1(float a, float b, float c)
{
#if defined(__FMA__)
    return __builtin_fmaf(a, b, c);
#else
    return a * b + c;
#endif
}

typedef float v16f __attribute__((vector_size(64)));

static inline v16f v16_load(const float *p)
{
    v16f v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void v16_store(float *p, v16f v) { memcpy(p, &v, sizeof v); }

static inline v16f v16_set1(float x) { return (v16f){x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x}; }

static inline v16f v16_fma(v16f a, v16f b, v16f c)
{
#if defined(__AVX512F__)
    return (v16f)_mm512_fmadd_ps((__m512)a, (__m512)b, (__m512)c);
#else
    return a * b + c;
#endif
}

static inline v16f v16_max(v16f a, v16f b)
{
#if defined(__AVX512F__)
    return (v16f)_mm512_max_ps((__m512)a, (__m512)b);
#else
    v16f r;
    for (int i = 0; i < 16; i++) r[i] = a[i] > b[i] ? a[i] : b[i];
    return r;
#endif
}

#endif
