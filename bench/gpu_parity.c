/* The device model core on a real GPU against the CPU core: the checks
 * tests/test_device_model.c runs on the host grid in every `make test`
 * (tests/device_parity.h), here through CUDA and cuBLAS. The tolerance is
 * 1e-4 relative (fp32 on both sides, TF32 off: cuBLAS in pedantic math
 * mode; the GPU sums in other orders and uses its own expf). */
#include "tests/device_parity.h"

int main(void)
{
    sl_error err = {0};
    sl_h5_quiet();
    sl_device dev;
    if (sl_device_cuda(&dev, &err)) {
        fprintf(stderr, "gpu_parity: %s\n", err.msg);
        return 2;
    }
    printf("device: %s\n", dev.name);
    dev.close(dev.ctx);
    int n = parity_all(sl_device_cuda, 1e-4, 3);
    CHECK(n >= 10, "only %d fixtures", n);
    return TEST_SUMMARY();
}
