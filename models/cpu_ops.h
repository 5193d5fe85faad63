/* The CPU backend's operations (models/ops.h): one example at a time, on
 * its rows of a thread's workspace. Internal to models/. */
#ifndef SL_CPU_OPS_H
#define SL_CPU_OPS_H

#include "models/mamba2_cpu.h"
#include "models/cpu_prefix.h"
#include "models/mamba_scan.h"
#include "models/ops.h"
#include "models/workspace.h"

typedef struct {
    sl_ops ops;
    const sl_example *ex;
    sl_workspace *ws;
    const sl_mamba_tape *tape; /* the gradient's taped forward of a Mamba block: its activations go there */
    float *logit;              /* where SL_LOGITS lies */
    float *h_in;               /* the backward of a block: SL_H_IN, its input on the tape */
    const struct sl_tf_tape *tf_tape; /* the backward of a Transformer block: what its taped forward kept */
    float *ssd_ckpt;           /* the backward of a Mamba-2 block: where its ssd keeps the states ssd_backward
                                * restarts from (NULL elsewhere) */
    /* prefix reuse of a Mamba block (models/cpu_prefix.h): what its forward
     * keeps for a restart (NULL elsewhere), or, in a pass over positions
     * row0..len-1 only, where it resumes from */
    const sl_mamba_kept *kept;
    const sl_mamba_kept *resume;
    int row0;                  /* the pass's first position (its ex is shifted by row0) */
    const sl_example *full;    /* the whole example, which hooks see */
    const struct sl_ig_path *ig; /* the gradient along integrated gradients' path (ops.ig_path): its products */
} sl_cpu_ops;

/* The operations on ex's rows of ws, with hooks (or NULL); SL_LOGITS is
 * *logit. */
sl_cpu_ops sl_cpu_ops_on(const sl_model *m, const sl_example *ex, sl_workspace *ws, const sl_hooks *hooks,
                         float *logit);

/* The operations of a pass over rows row0.. of ex only: *sx becomes ex
 * seen from row0 and sw must hold ws's rows from row0 on; hooks see all of
 * ex's rows (those before row0 as the pass found them) and the pooling
 * reads every row. */
sl_cpu_ops sl_cpu_ops_from(const sl_model *m, const sl_example *ex, int row0, sl_example *sx, sl_workspace *sw,
                           const sl_hooks *hooks, float *logit);
/* Before such a pass's pooling: rows fin_rows..row0-1 of what it reads
 * (fin, [len][d]) from the unmodified pass's (kept), *fin_rows of them
 * already there (as an earlier such pass left them); then *fin_rows = row0. */
void sl_cpu_kept_rows_before(float *fin, const float *kept, int d, int row0, int *fin_rows);

/* Where view v lies in o's example's memory, and its rows. */
float *sl_cpu_at(sl_ops *o, sl_view v);
int sl_cpu_rows(sl_ops *o, sl_view v);
/* The SSD's inputs (models/mamba2_cpu.h) from the views of the ssd
 * operations (B and C in rows of one stride). */
sl_ssd_in sl_cpu_ssd_in(sl_ops *o, sl_view x, sl_view delta, sl_view B, sl_view C, const float *A, const float *D);
/* The backward's operations (models/cpu_grad_ops.c). */
extern const sl_grad_table sl_cpu_grad_table;

#endif
