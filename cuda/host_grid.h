/* The CPU stand-in for a kernel launch: runs a per-thread function over
 * every (x, y) of a grid, in order. With it the test suite executes each
 * kernel's device code on the host (cuda/kernel_defs.h). */
#ifndef SL_HOST_GRID_H
#define SL_HOST_GRID_H

typedef void (*sl_grid_fn)(void *ctx, int x, int y);

static inline void sl_host_grid(int nx, int ny, sl_grid_fn fn, void *ctx)
{
    for (int y = 0; y < ny; y++)
        for (int x = 0; x < nx; x++) fn(ctx, x, y);
}

#endif
