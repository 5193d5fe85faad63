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
    return TEST_SUMMARY();
}
