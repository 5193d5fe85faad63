/* AUC, log-loss and accuracy against scikit-learn on small cases (values
 * from sklearn 1.x: roc_auc_score, log_loss), including ties and NaN. */
#include <math.h>

#include "core/metrics.h"
#include "tests/testing.h"

int main(void)
{
    /* ties across classes count one half */
    const float s[8] = {0.5f, 0.5f, 0.2f, 0.9f, 0.1f, 0.5f, 0.7f, 0.2f};
    const int32_t y[8] = {1, 0, 0, 1, 0, 1, 1, 0};
    CHECK(fabs(sl_auc(s, y, 8) - 0.9375) < 1e-12, "AUC with ties %.17g != sklearn 0.9375", sl_auc(s, y, 8));

    const float perfect[4] = {0.1f, 0.2f, 0.3f, 0.4f}, all_tied[4] = {1, 1, 1, 1};
    const int32_t y4[4] = {0, 0, 1, 1}, one_class[4] = {1, 1, 1, 1};
    CHECK(sl_auc(perfect, y4, 4) == 1.0, "separable scores: AUC %g", sl_auc(perfect, y4, 4));
    CHECK(sl_auc(all_tied, y4, 4) == 0.5, "all tied: AUC %g", sl_auc(all_tied, y4, 4));
    CHECK(isnan(sl_auc(perfect, one_class, 4)), "one class: AUC must be NaN");
    const float with_nan[4] = {0.1f, NAN, 0.3f, 0.4f};
    CHECK(isnan(sl_auc(with_nan, y4, 4)), "NaN score: AUC must be NaN (and return)");

    const float z[8] = {2.0f, -1.0f, 0.5f, 3.0f, -2.5f, 0.0f, 1.5f, -0.3f};
    CHECK(fabs(sl_log_loss(z, y, 8) - 0.37383243331822225) < 1e-7, "log-loss %.17g != sklearn 0.3738324333",
          sl_log_loss(z, y, 8));
    const float big[2] = {1000.0f, -1000.0f};
    const int32_t yb[2] = {1, 0};
    CHECK(sl_log_loss(big, yb, 2) < 1e-300 + 1e-12, "log-loss must not overflow on large logits");
    /* logit 0 predicts class 0: examples 2 (0.5, label 0) and 5 (0.0, label 1) are wrong */
    CHECK(fabs(sl_accuracy(z, y, 8) - 0.75) < 1e-12, "accuracy %g != 0.75", sl_accuracy(z, y, 8));
    return TEST_SUMMARY();
}
