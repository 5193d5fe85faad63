/* The device model behind the backend interface (models/backend.h), and
 * its entry in the backend registry as "cuda": the only place that ties
 * the rest of seqlens to cuda/. */
#include <stdlib.h>
#include <string.h>

#include "cuda/device_internal.h"

/* Activations of one device batch: what fits beside the weights on a
 * small card; a large one fills with a larger --batch. */
#define DEVICE_BATCH_BYTES 4e9

typedef struct {
    sl_backend be;
    sl_dev_model *dm;
    int32_t *pad; /* [max_batch][L] the baseline's tokens, embed_gradient's */
} dev_backend;

static int dev_forward(sl_backend *be, const sl_batch *b, const sl_hooks *hooks, float *logits, sl_error *err)
{
    return sl_dev_forward(((dev_backend *)be)->dm, b, hooks, logits, err);
}

static int dev_variants(sl_backend *be, const sl_batch *b, const sl_variant *v, int n, sl_variant_edit edit, void *user,
                        float *base, float *out, long ld_out, sl_error *err)
{
    return sl_dev_forward_variants(((dev_backend *)be)->dm, b, v, n, edit, user, base, out, ld_out, err);
}

static int dev_embed_gradient(sl_backend *be, const sl_batch *b, const sl_path *p, const sl_path_out *out, sl_error *err)
{
    dev_backend *db = (dev_backend *)be;
    if (p->baseline && !db->pad && !(db->pad = malloc((size_t)be->max_batch * be->max_len * sizeof *db->pad)))
        return sl_fail(err, SL_ERUNTIME, "out of memory");
    for (int e = 0; p->baseline && e < b->count; e++)
        memcpy(db->pad + (long)e * b->L, p->baseline, (size_t)b->L * sizeof *db->pad);
    /* given logits (ig): no forward pass of the inputs for them */
    float *logits = p->steps > 0 && p->logits_given ? NULL : out->logits;
    int rc = sl_dev_attribute(db->dm, b, p->steps, db->pad, !p->baseline, out->attr, logits, out->base_logits, err);
    for (int e = 0; !rc && e < b->count; e++) {
        double total = 0;
        for (int t = 0; t < b->lengths[e]; t++) total += out->attr[(long)e * b->L + t];
        out->sum[e] = total;
    }
    return rc;
}

static void dev_free(sl_backend *be)
{
    dev_backend *db = (dev_backend *)be;
    sl_dev_model_free(db->dm);
    free(db->pad);
    free(db);
}

static const sl_backend_ops DEV_OPS = {dev_forward, dev_variants, dev_embed_gradient, dev_free};

sl_backend *sl_dev_backend(sl_dev_model *dm, sl_error *err)
{
    dev_backend *db = calloc(1, sizeof *db);
    if (!db) {
        sl_dev_model_free(dm);
        sl_fail(err, SL_ERUNTIME, "out of memory");
        return NULL;
    }
    db->be = (sl_backend){&DEV_OPS, dm->m, dm->dev.name, dm->max_batch, dm->L};
    db->dm = dm;
    return &db->be;
}

/* ---- the registry entry ---- */

/* SEQLENS_TEST_HOST_DEVICE puts the host grid stand-in (cuda/device.h) in
 * the GPU's place, so that the tests can drive every command's device path
 * end to end on a machine without one (tests/test_device_cli.c). */
static int host_stand_in(void)
{
    const char *v = getenv("SEQLENS_TEST_HOST_DEVICE");
    return v && *v && strcmp(v, "0");
}

static int cuda_accept(sl_error *err)
{
    return sl_device_cuda_built() || host_stand_in()
               ? SL_OK
               : sl_fail(err, SL_EINPUT, "this build has no CUDA backend (build with make CUDA=1 where nvcc is installed)");
}

static sl_backend *cuda_open(const sl_model *m, const sl_backend_want *w, sl_error *err)
{
    sl_device dev;
    if (host_stand_in()) sl_device_host(&dev);
    else if (sl_device_cuda(&dev, err)) return NULL;
    int batch = w->batch ? w->batch : sl_dev_batch_for(&m->c, w->max_len, w->backward, DEVICE_BATCH_BYTES);
    sl_dev_model *dm = sl_dev_model_new(m, &dev, batch, w->max_len, err);
    return dm ? sl_dev_backend(dm, err) : NULL;
}

static const char *cuda_notice(void)
{
    return host_stand_in() ? "--device cuda on the host grid (SEQLENS_TEST_HOST_DEVICE)" : NULL;
}

static sl_backend_kind CUDA_KIND = {"cuda", cuda_accept, sl_device_cuda_available, cuda_open, cuda_notice, NULL};

__attribute__((constructor)) static void register_cuda(void) { sl_backend_register(&CUDA_KIND); }
