#include "gym/gym.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/h5out.h"
#include "core/rng.h"

/* The vocabulary: 0 is the pad; then five families. */
enum { MARKER_A = 1, MARKER_B = 2, KEY0 = 3, NKEYS = 8, VALUE0 = 11, NVALUES = 8, FILLER0 = 19, NFILLER = 24,
       SEP0 = 43, NSEP = 5 };
static const char *const FAMILIES[] = {"marker", "key", "value", "filler", "sep"};
static const char *const TASKS[] = {"count", "order", "distant", "recall"};

#define MARKERS 8        /* markers per example in count and distant */
#define P_A_GIVEN_1 0.75 /* a marker is `a` with this probability when the label is 1, else 1 - it */
#define PAIRS 4          /* key-value pairs in recall */

int sl_gym_task(const char *name)
{
    for (int t = 0; t < GYM_TASKS; t++)
        if (!strcmp(name, TASKS[t])) return t;
    return -1;
}

const char *sl_gym_task_name(int task) { return TASKS[task]; }

static int family_of(int token)
{
    if (token == 0) return -1;
    if (token < KEY0) return 0;
    if (token < VALUE0) return 1;
    if (token < FILLER0) return 2;
    if (token < SEP0) return 3;
    return 4;
}

/* AUC of the Bayes-optimal score when the score takes k values, listed in
 * increasing likelihood ratio with probabilities p1[i] (label 1) and p0[i]
 * (label 0), and observed labels are flipped with probability eps. */
static double discrete_auc(const double *p1, const double *p0, int k, double eps)
{
    double auc = 0, below = 0;
    for (int i = 0; i < k; i++) {
        double q1 = (1 - eps) * p1[i] + eps * p0[i], q0 = (1 - eps) * p0[i] + eps * p1[i];
        auc += q1 * (below + 0.5 * q0);
        below += q0;
    }
    return auc;
}

static double binomial(int n, int k, double p)
{
    double c = 1;
    for (int i = 1; i <= k; i++) c = c * (n - k + i) / i;
    return c * pow(p, k) * pow(1 - p, n - k);
}

sl_gym_truth sl_gym_truth_of(const sl_gym_opts *o)
{
    sl_gym_truth t = {"marker", 0, 0};
    if (o->task == GYM_COUNT || o->task == GYM_DISTANT) {
        /* the number of `a` markers is sufficient; its likelihood ratio grows with it */
        double p1[MARKERS + 1], p0[MARKERS + 1];
        for (int k = 0; k <= MARKERS; k++) {
            p1[k] = binomial(MARKERS, k, P_A_GIVEN_1);
            p0[k] = binomial(MARKERS, k, 1 - P_A_GIVEN_1);
        }
        t.bayes_auc = discrete_auc(p1, p0, MARKERS + 1, o->noise);
    } else {
        /* order and recall: the rule decides the label exactly */
        double p1[2] = {0, 1}, p0[2] = {1, 0};
        t.bayes_auc = discrete_auc(p1, p0, 2, o->noise);
        t.order_matters = 1;
        if (o->task == GYM_RECALL) t.signal_family = "value";
    }
    return t;
}

static int filler(sl_rng *r)
{
    /* one in ten background events is a structural separator */
    return sl_rng_below(r, 10) == 0 ? SEP0 + (int)sl_rng_below(r, NSEP) : FILLER0 + (int)sl_rng_below(r, NFILLER);
}

/* k distinct positions in [0, span), in increasing order. */
static void positions(sl_rng *r, int span, int k, int *out)
{
    int n = 0;
    for (int i = 0; i < span && n < k; i++)
        if ((int)sl_rng_below(r, (uint64_t)(span - i)) < k - n) out[n++] = i; /* selection sampling */
}

/* One example with true label y; returns its length. */
static int generate(const sl_gym_opts *o, sl_rng *r, int y, int32_t *tok)
{
    int L = o->len;
    int len = o->task == GYM_DISTANT ? L : L / 2 + (int)sl_rng_below(r, (uint64_t)(L - L / 2 + 1));
    for (int t = 0; t < len; t++) tok[t] = filler(r);
    for (int t = len; t < L; t++) tok[t] = 0;
    int pos[MARKERS > 2 * PAIRS ? MARKERS : 2 * PAIRS];
    if (o->task == GYM_COUNT || o->task == GYM_DISTANT) {
        /* distant: the markers sit in the first 5% of the sequence only */
        int span = o->task == GYM_DISTANT ? (len / 20 > MARKERS ? len / 20 : MARKERS) : len;
        positions(r, span, MARKERS, pos);
        double pa = y ? P_A_GIVEN_1 : 1 - P_A_GIVEN_1;
        for (int i = 0; i < MARKERS; i++)
            tok[pos[i]] = (double)(sl_rng_next(r) >> 11) * 0x1p-53 < pa ? MARKER_A : MARKER_B;
    } else if (o->task == GYM_ORDER) {
        positions(r, len, 2, pos);
        tok[pos[0]] = y ? MARKER_A : MARKER_B;
        tok[pos[1]] = y ? MARKER_B : MARKER_A;
    } else {
        /* recall: PAIRS adjacent (key, value) pairs, then the query key last;
         * the label says whether the queried key's value is a high one */
        int keys[NKEYS];
        for (int i = 0; i < NKEYS; i++) keys[i] = i;
        for (int i = NKEYS - 1; i > 0; i--) {
            int j = (int)sl_rng_below(r, (uint64_t)i + 1), x = keys[i];
            keys[i] = keys[j];
            keys[j] = x;
        }
        positions(r, (len - 1) / 2, PAIRS, pos);
        int queried = (int)sl_rng_below(r, PAIRS);
        for (int i = 0; i < PAIRS; i++) {
            int value = (int)sl_rng_below(r, NVALUES / 2);
            int high = i == queried ? y : (int)sl_rng_below(r, 2);
            tok[2 * pos[i]] = KEY0 + keys[i];
            tok[2 * pos[i] + 1] = VALUE0 + value + (high ? NVALUES / 2 : 0);
        }
        tok[len - 1] = KEY0 + keys[queried];
    }
    return len;
}

#define CHUNK 1024

int sl_gym_write(const sl_gym_opts *o, const char *path, sl_error *err)
{
    if (o->len < 32) return sl_fail(err, SL_EINPUT, "seqlens gym: --len %d: at least 32 positions", o->len);
    if (o->n < 2) return sl_fail(err, SL_EINPUT, "seqlens gym: --n %ld: at least 2 examples", o->n);
    sl_h5out out = {.file = -1};
    sl_h5set st = {.ds = -1}, sl = {.ds = -1}, sn = {.ds = -1};
    hsize_t dims[2] = {(hsize_t)o->n, (hsize_t)o->len}, n = (hsize_t)o->n;
    int32_t *tok = malloc((size_t)CHUNK * o->len * sizeof *tok), *lab = malloc(CHUNK * sizeof *lab);
    int32_t *len = malloc(CHUNK * sizeof *len);
    int rc = tok && lab && len ? SL_OK : sl_fail(err, SL_ERUNTIME, "out of memory");
    if (!rc) rc = sl_h5out_create(&out, path, err);
    if (!rc) rc = sl_h5out_dataset(&out, &st, "tokens", H5OUT_I32, 2, dims, err);
    if (!rc) rc = sl_h5out_dataset(&out, &sl, "labels", H5OUT_I32, 1, &n, err);
    if (!rc) rc = sl_h5out_dataset(&out, &sn, "lengths", H5OUT_I32, 1, &n, err);
    sl_rng rng = sl_rng_seed(o->seed);
    for (long first = 0; !rc && first < o->n; first += CHUNK) {
        int cnt = (int)(o->n - first < CHUNK ? o->n - first : CHUNK);
        for (int e = 0; e < cnt; e++) {
            int y = (int)sl_rng_below(&rng, 2);
            len[e] = generate(o, &rng, y, tok + (long)e * o->len);
            int flip = (double)(sl_rng_next(&rng) >> 11) * 0x1p-53 < o->noise;
            lab[e] = flip ? 1 - y : y;
        }
        rc = sl_h5out_write(&out, &st, (hsize_t)first, (hsize_t)cnt, tok, err);
        if (!rc) rc = sl_h5out_write(&out, &sl, (hsize_t)first, (hsize_t)cnt, lab, err);
        if (!rc) rc = sl_h5out_write(&out, &sn, (hsize_t)first, (hsize_t)cnt, len, err);
    }
    sl_h5set_close(&st);
    sl_h5set_close(&sl);
    sl_h5set_close(&sn);
    if (!rc) rc = sl_h5out_strings(&out, "families/names", FAMILIES, 5, err);
    if (!rc) {
        int32_t of_token[GYM_VOCAB];
        hsize_t v = GYM_VOCAB;
        for (int i = 0; i < GYM_VOCAB; i++) of_token[i] = family_of(i);
        rc = sl_h5out_dataset(&out, &st, "families/of_token", H5OUT_I32, 1, &v, err);
        if (!rc) rc = sl_h5out_write(&out, &st, 0, v, of_token, err);
        sl_h5set_close(&st);
    }
    sl_gym_truth t = sl_gym_truth_of(o);
    if (!rc) rc = sl_h5out_attr_str(&out, "task", TASKS[o->task], err);
    if (!rc) rc = sl_h5out_attr_str(&out, "signal_family", t.signal_family, err);
    if (!rc) rc = sl_h5out_attr_int(&out, "order_matters", t.order_matters, err);
    if (!rc) rc = sl_h5out_attr_double(&out, "bayes_auc", t.bayes_auc, err);
    if (!rc) rc = sl_h5out_attr_double(&out, "label_noise", o->noise, err);
    if (!rc) rc = sl_h5out_attr_int(&out, "seed", (long)o->seed, err);
    if (!rc) rc = sl_h5out_attr_int(&out, "vocab_size", GYM_VOCAB, err);
    if (!rc) rc = sl_h5out_commit(&out, err);
    else sl_h5out_abort(&out);
    free(tok);
    free(lab);
    free(len);
    return rc;
}
