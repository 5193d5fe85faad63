/* A small seeded generator (splitmix64): every resample, shuffle and draw
 * in seqlens comes from one of these, so a seed fixes the output. */
#ifndef SL_RNG_H
#define SL_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s;
} sl_rng;

static inline sl_rng sl_rng_seed(uint64_t seed) { return (sl_rng){seed ^ 0x9e3779b97f4a7c15ull}; }

static inline uint64_t sl_rng_next(sl_rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [0, n) without modulo bias (Lemire's multiply-shift with rejection). */
static inline uint64_t sl_rng_below(sl_rng *r, uint64_t n)
{
    for (;;) {
        uint64_t x = sl_rng_next(r);
        __uint128_t m = (__uint128_t)x * n;
        uint64_t low = (uint64_t)m;
        if (low >= n || low >= (0 - n) % n) return (uint64_t)(m >> 64);
    }
}

#endif
