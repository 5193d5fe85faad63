/* The device model core (cuda/device_model.c) run on the host grid device:
 * the batching, padding, hook hand-over, weight layout and every kernel's
 * per-thread code, against the CPU core on every fixture. bench/gpu.sh runs
 * the same checks (tests/device_parity.h) on a GPU. */
#include "tests/device_parity.h"

static int open_host(sl_device *dev, sl_error *err)
{
    (void)err;
    sl_device_host(dev);
    return SL_OK;
}

/* Lengths vary within a batch somewhere, or padding goes untested. */
static void lengths_vary(const char *name, const char *path, void *user)
{
    (void)path;
    int *varied = user;
    fixture f;
    if (open_fixture(&f, name, 1, 1)) return;
    for (long e = 1; e < f.ds.n && e < 3; e++) *varied |= f.ds.lengths[e] != f.ds.lengths[0];
    close_fixture(&f);
}

/* Bad batches are refused, not run. */
static void refusals(void)
{
    fixture f;
    if (open_fixture(&f, "mamba_mean_f32", 1, 1)) return;
    sl_device dev;
    sl_device_host(&dev);
    sl_error err = {0};
    sl_dev_model *dm = sl_dev_model_new(&f.m, &dev, 2, f.ds.L, &err);
    CHECK(dm != NULL, "device model: %s", err.msg);
    if (dm) {
        int32_t tokens[2 * 512] = {0}, lens[3] = {1, 1, 1};
        float logits[3];
        int L = f.ds.L < 512 ? f.ds.L : 512;
        sl_batch b = {.count = 3, .L = L, .tokens = tokens, .lengths = lens};
        CHECK(sl_dev_forward(dm, &b, NULL, logits, &err) != 0, "a batch over max_batch ran");
        b.count = 2;
        lens[1] = 0;
        CHECK(sl_dev_forward(dm, &b, NULL, logits, &err) != 0, "length 0 ran");
        lens[1] = L + 1;
        CHECK(sl_dev_forward(dm, &b, NULL, logits, &err) != 0, "a length past L ran");
        lens[1] = 1;
        CHECK(sl_dev_forward(dm, &b, NULL, logits, &err) == 0, "a good batch: %s", err.msg);
        sl_dev_model_free(dm);
    }
    close_fixture(&f);
}

/* A Mamba-2 d_state over what the SSD kernel holds in registers is refused,
 * naming the limit, not run. */
static void state_limit(void)
{
    fixture f;
    if (open_fixture(&f, "mamba2_g1_h8_mean_f32", 1, 1)) return;
    sl_device dev;
    sl_device_host(&dev);
    sl_error err = {0};
    int S = f.m.c.d_state;
    f.m.c.d_state = SL_MAX_SSD_STATE + 1;
    sl_dev_model *dm = sl_dev_model_new(&f.m, &dev, 2, f.ds.L, &err);
    CHECK(!dm && err.code == SL_EINPUT && strstr(err.msg, "d_state 129") && strstr(err.msg, "128"),
          "d_state 129 on the device: %s", dm ? "opened" : err.msg);
    sl_dev_model_free(dm);
    f.m.c.d_state = S;
    close_fixture(&f);
}

/* ---- the batch sizing's memory estimate against what is allocated ---- */

static size_t counted;
static sl_device host_dev;

static int counting_alloc(void *ctx, size_t bytes, void **p, sl_error *err)
{
    counted += bytes;
    return host_dev.alloc(ctx, bytes, p, err);
}

/* Device bytes of a model core for batches of `batch` (with the backward
 * pass's buffers, which its first attribution allocates, when backward). */
static size_t bytes_for(fixture *f, int batch, int backward)
{
    sl_device dev;
    sl_device_host(&host_dev);
    dev = host_dev;
    dev.alloc = counting_alloc;
    counted = 0;
    sl_error err = {0};
    sl_dev_model *dm = sl_dev_model_new(&f->m, &dev, batch, f->ds.L, &err);
    CHECK(dm != NULL, "batch sizing: %s", err.msg);
    if (dm && backward) {
        int32_t *tok = calloc((size_t)f->ds.L, sizeof *tok), len = 1;
        float attr[1] = {0}, logit;
        tok[0] = 1;
        sl_batch b = {.count = 1, .L = f->ds.L, .tokens = tok, .lengths = &len};
        CHECK(sl_dev_attribute(dm, &b, 0, NULL, 1, attr, &logit, NULL, &err) == 0, "batch sizing: %s", err.msg);
        free(tok);
    }
    sl_dev_model_free(dm);
    return counted;
}

/* sl_dev_batch_for's estimate per example (its budget over the batch it
 * picks, at a budget where the batch is near 100, so that rounding is
 * small) against the device memory that one more example of batch
 * actually takes: within [0.7, 1.1] of it, so that a budget is neither
 * overrun (a card's memory) nor mostly wasted. */
static void batch_sizing(const char *name)
{
    fixture f;
    if (open_fixture(&f, name, 1, 1)) return;
    for (int backward = 0; backward < 2; backward++) {
        double budget = 1e3;
        int b = 1;
        while ((b = sl_dev_batch_for(&f.m.c, f.ds.L, backward, budget)) < 100) budget *= 1.1;
        double per_example = (double)(bytes_for(&f, b, backward) - bytes_for(&f, 1, backward)) / (b - 1);
        double ratio = per_example / (budget / b);
        CHECK(ratio >= 0.7 && ratio <= 1.1, "%s: %s: an example takes %.0f bytes on the device, the batch sizing "
              "counts %.0f (ratio %.2f)", name, backward ? "backward" : "forward", per_example, budget / b, ratio);
    }
    close_fixture(&f);
}

int main(void)
{
    int varied = 0;
    sl_h5_quiet(); /* a fixture without a pattern in expected.h5 is looked up, not an error */
    for_each_fixture("config.json", lengths_vary, &varied);
    CHECK(varied, "no fixture has examples of different lengths in a batch");
    int n = parity_all(open_host, 1e-5, 3);
    CHECK(n >= 10, "only %d fixtures", n);
    refusals();
    state_limit();
    const char *sized[] = {"mamba_mean_f32", "tf_long_dh16_rope_causal", "mamba2_h64_mean_dtlimit_nbg_f32",
                           "mamba2_long_g4_h4_bias_f32"};
    for (size_t i = 0; i < sizeof sized / sizeof *sized; i++) batch_sizing(sized[i]);
    return TEST_SUMMARY();
}
