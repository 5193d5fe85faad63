/* Prefix reuse inside a Mamba block on the CPU (ablation/variants.h): an
 * intervention that changes positions p.. of a causal model leaves
 * positions 0..p-1 of every block as they were, so a variant need only run
 * positions row0..len-1, row0 at or before p (sl_restart_row: a
 * multiple of SL_RESTART_ALIGN, itself a multiple of SL_SCAN_CHUNK). The
 * unmodified forward pass keeps, per block and per chunk,
 * what a restart there needs: the scan's state before the chunk and the
 * d_conv - 1 conv inputs before it. The scan and the conv then give the
 * bits the whole pass gives; the projections (BLAS) on fewer rows may
 * round differently (README "What is guaranteed"). Internal to models/. */
#ifndef SL_CPU_PREFIX_H
#define SL_CPU_PREFIX_H

#include "models/model.h"

/* One block's kept values; the blocks of one thread share tmp. */
typedef struct {
    int S, di, K; /* d_state, d_inner, d_conv */
    int cw;       /* the conv's channels: d_inner, or a Mamba-2's xBC */
    float *state; /* [n_chunks][S * di]: the state before each chunk (chunk 0: unused, the zero state) */
    float *xleft; /* [n_chunks][K - 1][cw]: the conv's input rows before each chunk (zeros before position 0) */
    float *tmp;   /* [2][2 (K - 1)][cw]: scratch of sl_mamba_resume_conv */
    float *fin;   /* [max_len][d_model]: the final norm's output (the same for every block) */
    /* NULL, or the block's activations for a switched block
     * (sl_mamba_block_switched): in_proj's x and z [max_len][2 di], the
     * conv + SiLU [max_len][di], the scan's y [max_len][di] */
    float *xz, *xc, *y;
} sl_mamba_kept;

/* Where a variant that changes positions first_row.. restarts (a Mamba's,
 * or a causal Transformer's: models/cpu_tf_patch.h): a multiple
 * of SL_RESTART_ALIGN (and of SL_SCAN_CHUNK) at least SL_RESTART_ROWS
 * before len (0: from the start). Why: a projection's BLAS call over rows
 * row0..len-1 gives those rows the bits of the whole pass's call only when
 * row0 falls on the kernels' tiles, the call is not a small one and BLAS
 * runs on one thread (models/run.c; a threaded one splits the rows between
 * its threads where the row counts differ). With
 * OpenBLAS 0.3.21, measured on the shapes of Mamba's projections: its
 * Haswell kernels need a multiple of 24, its generic ones nothing, and its
 * SkylakeX kernels (tests/test_patch.c's restarts, 4,320 cells) gave the
 * whole pass's bits from multiples of 24, 48 and 96 with at least 64 rows,
 * not from multiples of 32 or 64, nor with 32, 34 or 48 rows; 48 serves all
 * three (96 did too, but restarted 24 rows more on average: analyze's patch
 * stage, 16 positions before the end, took about 7% longer), and the
 * restart's logits are then the whole pass's bit for bit. Another
 * BLAS may round the restarted rows differently (within float32 rounding:
 * tests/test_patch.c checks 1e-5). */
#define SL_RESTART_ALIGN 48
#define SL_RESTART_ROWS 64
int sl_restart_row(int first_row, int len);

/* The bytes sl_mamba_kept_new takes for n_layers blocks of max_len
 * positions (with each block's activations when `activations`). */
size_t sl_mamba_kept_bytes(const sl_model *m, int max_len, int activations);
/* [n_layers] blocks' kept values, or NULL (out of memory); free with sl_mamba_kept_free. */
sl_mamba_kept *sl_mamba_kept_new(const sl_model *m, int max_len, int activations);
void sl_mamba_kept_free(sl_mamba_kept *k);

/* The state a restart at row0 (a multiple of SL_SCAN_CHUNK) starts from;
 * NULL (zeros) at 0. */
const float *sl_mamba_kept_state(const sl_mamba_kept *k, int row0);
/* From the conv's input x [T][ldx] of the whole pass: the rows before each chunk. */
void sl_mamba_keep_conv_input(const sl_mamba_kept *k, const float *x, int ldx, int T, int di, int K);
/* In a pass from row0, the conv + SiLU of its first d_conv - 1 rows again,
 * now with the kept rows before them (the kernel saw zeros there). */
void sl_mamba_resume_conv(const sl_mamba_kept *k, int row0, const float *x, int ldx, int T, int di, int K,
                          const float *w, const float *b, float *y);

/* Keeps a block's activations where kept has room for them. */
void sl_mamba_keep_rows(float *dst, const float *src, int T, int cols);

/* Block i of a variant that changes nothing but the block's own switches
 * `off` (SL_OFF_*: ablate --component), without hooks: it starts from the
 * unmodified pass's activations of the block at the first step a switch
 * changes (the conv, else the scan, else the gate), the same operations
 * on the same rows after that, so the bits of the whole block. */
int sl_mamba_block_switched(const sl_model *m, const sl_example *ex, sl_workspace *ws, int i, unsigned off,
                            const sl_mamba_kept *kept, sl_error *err);

/* sl_forward, keeping kept[n_layers] on the way (the same bits). */
int sl_forward_keeping(const sl_model *m, const sl_example *ex, sl_workspace *ws, const sl_hooks *hooks,
                       const sl_mamba_kept *kept, float *logit, sl_error *err);
/* sl_forward_from over positions row0..len-1 of the blocks from
 * first_layer on: sl_workspace_residual(ws) holds first_layer's input at
 * those rows; kept is the unmodified pass's, whose final norm gives the
 * pooling its rows before row0. row0 is a multiple of SL_SCAN_CHUNK below
 * len. Hooks see rows before row0 as the workspace holds them: only writes
 * at row0.. are meaningful. *fin_rows: how many leading rows of the final
 * norm's buffer already hold kept's (0 after any other pass; the kept pass
 * leaves len); updated. */
int sl_forward_suffix(const sl_model *m, const sl_example *ex, sl_workspace *ws, const sl_hooks *hooks, int first_layer,
                      int row0, const sl_mamba_kept *kept, int *fin_rows, float *logit, sl_error *err);

#endif
