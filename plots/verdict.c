#include "plots/verdict.h"

#include <math.h>
#include <stdio.h>

#include "plots/results.h"

void sl_verdict_probe(const cJSON *probe, char *out, size_t size)
{
    out[0] = 0;
    if (!probe) return;
    const cJSON *row, *best = NULL;
    cJSON_ArrayForEach(row, cJSON_GetObjectItemCaseSensitive(probe, "layers"))
    {
        double a = sl_jnum(row, "test_accuracy");
        if (isfinite(a) && (!best || a > sl_jnum(best, "test_accuracy"))) best = row;
    }
    if (!best) return;
    double acc = sl_jnum(best, "test_accuracy"), maj = sl_jnum(best, "majority_baseline");
    double sel = sl_jnum(best, "selectivity");
    const char *target = sl_jstr(probe, "target");
    if (acc < maj + SL_PROBE_MARGIN) {
        snprintf(out, size,
                 "No layer encodes '%s' linearly beyond the majority baseline (best: layer %.0f, accuracy %.3f vs %.3f).",
                 target, sl_jnum(best, "layer"), acc, maj);
        return;
    }
    snprintf(out, size, "'%s' is linearly decodable; best at layer %.0f: accuracy %.3f vs majority %.3f (control %.3f, "
                        "selectivity %.3f)%s.",
             target, sl_jnum(best, "layer"), acc, maj, sl_jnum(best, "control_accuracy"), sel,
             sel < SL_LOW_SELECTIVITY ? ": low selectivity, so the probe may be reading token identity rather than the "
                                        "target"
                                      : "");
}
