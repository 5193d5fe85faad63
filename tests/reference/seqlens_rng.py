"""seqlens' random generator (core/rng.h: splitmix64 with Lemire's bounded draw), step for step,
so that reference scripts can replay the C code's resamples and splits exactly."""

MASK = (1 << 64) - 1


class SplitMix:
    def __init__(self, seed):
        self.s = (seed ^ 0x9E3779B97F4A7C15) & MASK

    def next(self):
        self.s = (self.s + 0x9E3779B97F4A7C15) & MASK
        z = self.s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def below(self, n):
        while True:
            m = self.next() * n
            low = m & MASK
            if low >= n or low >= ((1 << 64) - n) % n:
                return m >> 64
