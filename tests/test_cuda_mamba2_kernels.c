/* Mamba-2's device kernels (cuda/mamba2_kernels.h) through the batch
 * launches of cuda/batch_kernels.h, run thread by thread on the CPU: the
 * SSD forward against a plain float64 recurrence, its chunked backward
 * (every chunk length from 1 to past the batch's width) against central
 * differences of that recurrence, delta2 and the gated norm (both orders,
 * with and without the norm's weight, grouped) forward and backward the
 * same way, and the gate activated in place on in_proj's first columns.
 * Inputs sit in strided views of wider rows, as in the device's buffers,
 * with sentinels around them: every value a kernel must write is written
 * (outputs start as NaN) and nothing outside its view is touched. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/batch_kernels.h"
#include "tests/testing.h"

#define SENTINEL 7.25f

static unsigned long long rng_state = 12345;

static double uniform(double lo, double hi)
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return lo + (hi - lo) * (double)(rng_state >> 11) / 9007199254740992.0;
}

/* Every thread of launch k, in order, as the host grid runs it. */
static void launch(int k, const sl_kargs *a)
{
    long n = sl_kernel_threads(k, a);
    for (long i = 0; i < n; i++) sl_kernel_thread(k, a, i);
}

/* max |got - want| / max |want| over n values, want in double. */
static double rel_d(const float *got, const double *want, long n)
{
    double diff = 0, scale = 0;
    for (long i = 0; i < n; i++) {
        double e = fabs(got[i] - want[i]);
        if (!(e <= diff)) diff = e;
        scale = fmax(scale, fabs(want[i]));
    }
    return scale > 0 ? diff / scale : diff;
}

/* ---- the SSD ---- */

typedef struct {
    int B, Lb, H, P, G, S, D_ch;
    int32_t len[4];
    /* dense float64 inputs [B][Lb][...]: x [di], delta [H], B and C [G S]; A [H], D [H] or [di] */
    double *x, *dl, *Bm, *Cm, *A, *D, *dy;
} ssd_case;

static int di_of(const ssd_case *q) { return q->H * q->P; }

/* L = sum over valid positions of dy . y, y from the plain recurrence in
 * float64 (y_out, when given, receives y [B][Lb][di], 0 at padding). */
static double ssd_ref(const ssd_case *q, int ablated, double *y_out)
{
    int di = di_of(q), GS = q->G * q->S;
    double loss = 0, *st = calloc((size_t)q->S, sizeof *st);
    if (y_out) memset(y_out, 0, (size_t)q->B * q->Lb * di * sizeof *y_out);
    for (int b = 0; b < q->B; b++)
        for (int h = 0; h < q->H; h++)
            for (int p = 0; p < q->P; p++) {
                int ch = h * q->P + p, g = h / (q->H / q->G);
                memset(st, 0, (size_t)q->S * sizeof *st);
                for (int t = 0; t < q->len[b]; t++) {
                    long r = (long)b * q->Lb + t;
                    double xt = q->x[r * di + ch], d = q->dl[r * q->H + h], a = exp(d * q->A[h]), y = 0;
                    for (int n = 0; !ablated && n < q->S; n++) {
                        st[n] = a * st[n] + d * xt * q->Bm[r * GS + g * q->S + n];
                        y += st[n] * q->Cm[r * GS + g * q->S + n];
                    }
                    y += (q->D_ch ? q->D[ch] : q->D[h]) * xt;
                    if (y_out) y_out[r * di + ch] = y;
                    loss += q->dy[r * di + ch] * y;
                }
            }
    free(st);
    return loss;
}

/* The device's buffers: xBC rows [x | B | C | one more] of ld nxbc + 1 at
 * column offset 0, delta in rows of H + 2 at column 1. */
typedef struct {
    int ldx, ldd;
    float *xbc, *delta, *A, *D, *y, *dy, *dxbc, *dd;
} ssd_bufs;

static float *filled(long n, float v)
{
    float *p = malloc((size_t)n * sizeof *p);
    for (long i = 0; i < n; i++) p[i] = v;
    return p;
}

static void ssd_put(const ssd_case *q, ssd_bufs *f)
{
    int di = di_of(q), GS = q->G * q->S;
    long rows = (long)q->B * q->Lb;
    f->ldx = di + 2 * GS + 1, f->ldd = q->H + 2;
    f->xbc = filled(rows * f->ldx, SENTINEL), f->delta = filled(rows * f->ldd, SENTINEL);
    f->y = filled(rows * (di + 3), SENTINEL), f->dy = filled(rows * (di + 3), SENTINEL);
    f->dxbc = filled(rows * f->ldx, SENTINEL), f->dd = filled(rows * f->ldd, SENTINEL);
    f->A = malloc((size_t)q->H * sizeof *f->A), f->D = malloc((size_t)di * sizeof *f->D);
    for (long r = 0; r < rows; r++) {
        for (int c = 0; c < di; c++) f->xbc[r * f->ldx + c] = (float)q->x[r * di + c];
        for (int c = 0; c < GS; c++) {
            f->xbc[r * f->ldx + di + c] = (float)q->Bm[r * GS + c];
            f->xbc[r * f->ldx + di + GS + c] = (float)q->Cm[r * GS + c];
        }
        for (int h = 0; h < q->H; h++) f->delta[r * f->ldd + 1 + h] = (float)q->dl[r * q->H + h];
        for (int c = 0; c < di; c++) f->dy[r * (di + 3) + 2 + c] = (float)q->dy[r * di + c];
    }
    for (int h = 0; h < q->H; h++) f->A[h] = (float)q->A[h];
    for (int c = 0; c < (q->D_ch ? di : q->H); c++) f->D[c] = (float)q->D[c];
}

static void ssd_free(ssd_bufs *f)
{
    free(f->xbc), free(f->delta), free(f->A), free(f->D), free(f->y), free(f->dy), free(f->dxbc), free(f->dd);
}

static sl_k_ssd_in ssd_in(const ssd_case *q, const ssd_bufs *f)
{
    int di = di_of(q), GS = q->G * q->S;
    return (sl_k_ssd_in){.x = f->xbc, .ldx = f->ldx, .delta = f->delta + 1, .ldd = f->ldd, .B = f->xbc + di,
                         .C = f->xbc + di + GS, .ldbc = f->ldx, .A = f->A, .D = f->D, .H = q->H, .P = q->P, .G = q->G,
                         .S = q->S, .D_ch = q->D_ch};
}

/* Values of a view outside [off, off + cols) of each row still the sentinel. */
static int untouched(const float *buf, long rows, int ld, int off, int cols)
{
    for (long r = 0; r < rows; r++)
        for (int c = 0; c < ld; c++)
            if ((c < off || c >= off + cols) && buf[r * ld + c] != SENTINEL) return 0;
    return 1;
}

static void ssd_forward_check(const ssd_case *q, const char *name)
{
    int di = di_of(q);
    long rows = (long)q->B * q->Lb;
    ssd_bufs f;
    ssd_put(q, &f);
    sl_kbatch bt = {.B = q->B, .Lb = q->Lb, .len = q->len};
    double *want = malloc((size_t)rows * di * sizeof *want);
    float *got = malloc((size_t)rows * di * sizeof *got);
    for (int ablated = 0; ablated < 2; ablated++) {
        for (long i = 0; i < rows * (di + 3); i++) f.y[i] = i % (di + 3) >= 1 && i % (di + 3) < 1 + di ? NAN : SENTINEL;
        launch(sl_ssd_kernel(q->S, 0), &(sl_kargs){.bt = bt, .ssd = ssd_in(q, &f), .flag = ablated, .y = f.y + 1, .ldy = di + 3});
        ssd_ref(q, ablated, want);
        for (long r = 0; r < rows; r++) memcpy(got + r * di, f.y + r * (di + 3) + 1, (size_t)di * sizeof *got);
        double e = rel_d(got, want, rows * di);
        CHECK(e <= 1e-5, "%s: SSD forward%s: relative error %.2e", name, ablated ? " (ablated)" : "", e);
        CHECK(untouched(f.y, rows, di + 3, 1, di), "%s: SSD forward wrote outside y", name);
    }
    free(want), free(got);
    ssd_free(&f);
}

/* The chunked backward with chunks of K positions, against central
 * differences of ssd_ref in every input. */
static void ssd_backward_check(const ssd_case *q, int K, const char *name)
{
    int di = di_of(q), GS = q->G * q->S, B = q->B, nck = (q->Lb + K - 1) / K;
    long rows = (long)B * q->Lb, state = (long)q->S * di;
    ssd_bufs f;
    ssd_put(q, &f);
    sl_kbatch bt = {.B = B, .Lb = q->Lb, .len = q->len};
    /* outputs NaN inside their views: each must be written */
    for (long r = 0; r < rows; r++) {
        for (int c = 0; c < di + 2 * GS; c++) f.dxbc[r * f.ldx + c] = NAN;
        for (int h = 0; h < q->H; h++) f.dd[r * f.ldd + 1 + h] = NAN;
    }
    float *ck = filled(B * nck * state, NAN), *st = filled(B * K * state, NAN), *ds = filled(B * state, NAN);
    float *dp = filled((long)B * K * di, NAN), *dBp = filled(B * K * state, NAN), *dCp = filled(B * K * state, NAN);
    sl_kargs a = {.bt = bt, .ssd = ssd_in(q, &f),
                  .sbw = {.ck = ck, .st = st, .ds = ds, .dp = dp, .dBp = dBp, .dCp = dCp, .K = K},
                  .dy = f.dy + 2, .lddy = di + 3, .dx = f.dxbc, .lddx = f.ldx, .dd = f.dd + 1, .lddd = f.ldd,
                  .dB = f.dxbc + di, .dC = f.dxbc + di + GS, .lddbc = f.ldx};
    /* as cuda/device_grad_ops.c runs it */
    launch(sl_ssd_kernel(q->S, 1), &a);
    launch(SK_ZERO, &(sl_kargs){.bt = bt, .y = ds, .n = B * state});
    for (int c = nck - 1; c >= 0; c--) {
        a.sbw.c = c;
        launch(SK_SSD_BW, &a);
        launch(SK_SSD_BW_REDUCE, &a);
    }
    /* central differences: dx, ddelta, dB, dC */
    double *vars[4] = {q->x, q->dl, q->Bm, q->Cm};
    int widths[4] = {di, q->H, GS, GS};
    const char *names[4] = {"dx", "ddelta", "dB", "dC"};
    for (int v = 0; v < 4; v++) {
        long n = rows * widths[v];
        double *want = malloc((size_t)n * sizeof *want);
        float *got = malloc((size_t)n * sizeof *got);
        for (long i = 0; i < n; i++) {
            double keep = vars[v][i], h = 1e-6 * fmax(1.0, fabs(keep));
            vars[v][i] = keep + h;
            double up = ssd_ref(q, 0, NULL);
            vars[v][i] = keep - h;
            double down = ssd_ref(q, 0, NULL);
            vars[v][i] = keep;
            want[i] = (up - down) / (2 * h);
            long r = i / widths[v];
            int c = (int)(i % widths[v]);
            got[i] = v == 0 ? f.dxbc[r * f.ldx + c]
                     : v == 1 ? f.dd[r * f.ldd + 1 + c]
                     : f.dxbc[r * f.ldx + di + (v == 3 ? GS : 0) + c];
        }
        double e = rel_d(got, want, n);
        CHECK(e <= 1e-4, "%s, chunks of %d: SSD backward %s: relative error %.2e", name, K, names[v], e);
        free(want), free(got);
    }
    CHECK(untouched(f.dxbc, rows, f.ldx, 0, di + 2 * GS), "%s, chunks of %d: wrote outside dxBC's view", name, K);
    CHECK(untouched(f.dd, rows, f.ldd, 1, q->H), "%s, chunks of %d: wrote outside ddelta's view", name, K);
    free(ck), free(st), free(ds), free(dp), free(dBp), free(dCp);
    ssd_free(&f);
}

static void ssd_case_run(int B, int Lb, const int32_t *len, int H, int P, int G, int S, int D_ch, const char *name)
{
    ssd_case q = {B, Lb, H, P, G, S, D_ch, {0}, 0, 0, 0, 0, 0, 0, 0};
    memcpy(q.len, len, (size_t)B * sizeof *len);
    int di = H * P, GS = G * S;
    long rows = (long)B * Lb;
    q.x = malloc((size_t)rows * di * sizeof(double)), q.dy = malloc((size_t)rows * di * sizeof(double));
    q.dl = malloc((size_t)rows * H * sizeof(double));
    q.Bm = malloc((size_t)rows * GS * sizeof(double)), q.Cm = malloc((size_t)rows * GS * sizeof(double));
    q.A = malloc((size_t)H * sizeof(double)), q.D = malloc((size_t)di * sizeof(double));
    /* float-representable values, so that the reference sees what the kernel sees */
    for (long i = 0; i < rows * di; i++) q.x[i] = (float)uniform(-1, 1), q.dy[i] = (float)uniform(-1, 1);
    for (long i = 0; i < rows * H; i++) q.dl[i] = (float)uniform(0.05, 0.9);
    for (long i = 0; i < rows * GS; i++) q.Bm[i] = (float)uniform(-1, 1), q.Cm[i] = (float)uniform(-1, 1);
    for (int h = 0; h < H; h++) q.A[h] = (float)-exp(uniform(-1.5, 1));
    for (int c = 0; c < di; c++) q.D[c] = (float)uniform(-1, 1);
    ssd_forward_check(&q, name);
    int Ks[] = {1, 2, 3, Lb, Lb + 5};
    for (size_t k = 0; k < sizeof Ks / sizeof *Ks; k++) ssd_backward_check(&q, Ks[k], name);
    free(q.x), free(q.dy), free(q.dl), free(q.Bm), free(q.Cm), free(q.A), free(q.D);
}

/* ---- delta2 ---- */

static void delta2_check(float lo, float hi, const char *name)
{
    int B = 2, Lb = 5, H = 3, ldt = 9, off = 4, ldd = H + 1;
    long rows = (long)B * Lb;
    int32_t len[2] = {5, 2};
    sl_kbatch bt = {.B = B, .Lb = Lb, .len = len};
    float *dt = filled(rows * ldt, SENTINEL), *delta = filled(rows * ldd, SENTINEL), bias[3];
    float *dd = filled(rows * ldd, SENTINEL), *ddt = filled(rows * ldt, SENTINEL);
    for (int h = 0; h < H; h++) bias[h] = (float)uniform(-1, 1);
    for (long r = 0; r < rows; r++)
        for (int h = 0; h < H; h++) {
            /* a spread that crosses softplus's threshold (20) and the clamps */
            dt[r * ldt + off + h] = (float)(r == 3 && h == 1 ? 25.0 : uniform(-4, 3));
            delta[r * ldd + h] = ddt[r * ldt + off + h] = NAN;
            dd[r * ldd + h] = (float)uniform(-1, 1);
        }
    launch(SK_DELTA2, &(sl_kargs){.bt = bt, .x = dt + off, .ldx = ldt, .b = bias, .lo = lo, .hi = hi, .y = delta,
                                  .ldy = ldd, .heads = H});
    launch(SK_DELTA2_BW, &(sl_kargs){.bt = bt, .x = dt + off, .ldx = ldt, .b = bias, .lo = lo, .hi = hi, .dy = dd,
                                     .lddy = ldd, .y = ddt + off, .ldy = ldt, .heads = H});
    double worst = 0, worst_bw = 0;
    int clamped = 0;
    for (long r = 0; r < rows; r++)
        for (int h = 0; h < H; h++) {
            double u = (double)dt[r * ldt + off + h] + bias[h], v = u > 20 ? u : log1p(exp(u));
            double want = v < lo ? lo : v > hi ? hi : v, sig = 1 / (1 + exp(-u));
            double want_bw = v >= lo && v <= hi ? dd[r * ldd + h] * (u > 20 ? 1.0 : sig) : 0.0;
            clamped += v < lo || v > hi;
            worst = fmax(worst, fabs(delta[r * ldd + h] - want) / fmax(1.0, fabs(want)));
            worst_bw = fmax(worst_bw, fabs(ddt[r * ldt + off + h] - want_bw));
        }
    CHECK(worst <= 1e-6, "%s: delta2: error %.2e", name, worst);
    CHECK(worst_bw <= 1e-6, "%s: delta2 backward: error %.2e", name, worst_bw);
    CHECK(untouched(delta, rows, ldd, 0, H), "%s: delta2 wrote outside delta", name);
    CHECK(untouched(ddt, rows, ldt, off, H), "%s: delta2 backward wrote outside ddt", name);
    if (hi < INFINITY) CHECK(clamped > 0, "%s: no value was clamped", name);
    free(dt), free(delta), free(dd), free(ddt);
}

/* ---- the gated norm ---- */

typedef struct {
    int rows, di, gs, before, has_w;
    float eps;
    double *y, *z, *w, *dout; /* dense [rows][di] (w [di]) */
} gn_case;

/* out (dense [rows][di]) of mamba_ssm's RMSNormGated in float64; returns
 * sum dout . out. */
static double gn_ref(const gn_case *q, double *out)
{
    double loss = 0;
    for (int r = 0; r < q->rows; r++)
        for (int g0 = 0; g0 < q->di; g0 += q->gs) {
            double ss = 0, v[256];
            for (int i = 0; i < q->gs; i++) {
                long k = (long)r * q->di + g0 + i;
                double s = q->z[k] / (1 + exp(-q->z[k]));
                v[i] = q->before ? q->y[k] : q->y[k] * s;
                ss += v[i] * v[i];
            }
            double rs = 1 / sqrt(ss / q->gs + q->eps);
            for (int i = 0; i < q->gs; i++) {
                long k = (long)r * q->di + g0 + i;
                double s = q->z[k] / (1 + exp(-q->z[k]));
                double o = !q->has_w ? q->y[k] * s : q->before ? v[i] * rs * q->w[g0 + i] * s : v[i] * rs * q->w[g0 + i];
                if (out) out[k] = o;
                loss += q->dout[k] * o;
            }
        }
    return loss;
}

static void gated_norm_check(int di, int gs, int before, int has_w, int in_place, const char *name)
{
    int rows = 6, ldz = di + 5, zoff = 2;
    gn_case q = {rows, di, gs, before, has_w, 1e-5f, 0, 0, 0, 0};
    long n = (long)rows * di;
    q.y = malloc((size_t)n * sizeof(double)), q.z = malloc((size_t)n * sizeof(double));
    q.dout = malloc((size_t)n * sizeof(double)), q.w = malloc((size_t)di * sizeof(double));
    for (long i = 0; i < n; i++)
        q.y[i] = (float)uniform(-2, 2), q.z[i] = (float)uniform(-3, 3), q.dout[i] = (float)uniform(-1, 1);
    for (int i = 0; i < di; i++) q.w[i] = (float)uniform(0.5, 1.5);
    /* y rows of di, the gate (SiLU(z), forward) or z (backward) in rows of ldz at zoff */
    float *y = malloc((size_t)n * 4), *s = filled((long)rows * ldz, SENTINEL), *z = filled((long)rows * ldz, SENTINEL);
    float *out = filled(n, NAN), *dout = malloc((size_t)n * 4), *dz = filled((long)rows * ldz, SENTINEL), w[256];
    for (int i = 0; i < di; i++) w[i] = (float)q.w[i];
    for (long i = 0; i < n; i++) {
        long r = i / di, c = i % di;
        y[i] = (float)q.y[i], dout[i] = (float)q.dout[i];
        s[r * ldz + zoff + c] = (float)(q.z[i] / (1 + exp(-q.z[i])));
        z[r * ldz + zoff + c] = (float)q.z[i];
        dz[r * ldz + zoff + c] = NAN;
    }
    sl_kbatch bt = {.B = 2, .Lb = 3};
    float *fo = in_place ? y : out;
    launch(SK_GATED_NORM, &(sl_kargs){.bt = bt, .x = y, .ldx = di, .z = s + zoff, .ldz = ldz, .w = has_w ? w : NULL,
                                      .cols = gs, .d = di, .eps = q.eps, .flag = before, .y = fo, .ldy = di});
    double *want = malloc((size_t)n * sizeof *want);
    gn_ref(&q, want);
    double e = rel_d(fo, want, n);
    CHECK(e <= 1e-5, "%s: gated norm forward: relative error %.2e", name, e);
    CHECK(untouched(s, rows, ldz, zoff, di), "%s: the gated norm wrote into its gate", name);
    /* backward: dy (in place over dout, or not) and dz */
    for (long i = 0; i < n; i++) y[i] = (float)q.y[i];
    float *dy = in_place ? dout : filled(n, NAN);
    launch(SK_GATED_NORM_BW, &(sl_kargs){.bt = bt, .x = y, .ldx = di, .z = z + zoff, .ldz = ldz, .w = has_w ? w : NULL,
                                         .cols = gs, .d = di, .eps = q.eps, .flag = before, .dy = dout, .lddy = di,
                                         .y = dy, .ldy = di, .dx = dz + zoff, .lddx = ldz});
    double *vars[2] = {q.y, q.z};
    for (int v = 0; v < 2; v++) {
        float *got = malloc((size_t)n * 4);
        for (long i = 0; i < n; i++) {
            double keep = vars[v][i], h = 1e-6 * fmax(1.0, fabs(keep));
            vars[v][i] = keep + h;
            double up = gn_ref(&q, NULL);
            vars[v][i] = keep - h;
            double down = gn_ref(&q, NULL);
            vars[v][i] = keep;
            want[i] = (up - down) / (2 * h);
            got[i] = v ? dz[(i / di) * ldz + zoff + i % di] : dy[i];
        }
        e = rel_d(got, want, n);
        CHECK(e <= 1e-4, "%s: gated norm backward %s: relative error %.2e", name, v ? "dz" : "dy", e);
        free(got);
    }
    CHECK(untouched(dz, rows, ldz, zoff, di), "%s: the gated norm's backward wrote outside dz", name);
    if (!in_place) free(dy);
    free(want), free(y), free(s), free(z), free(out), free(dout), free(dz);
    free(q.y), free(q.z), free(q.dout), free(q.w);
}

/* The gate of models/mamba2.c: gate(ACTIVATE) on z, in_proj's first di
 * columns of rows of nin: z = SiLU(z) (1 when ablated) there, nothing else. */
static void gate_first_columns(void)
{
    int B = 2, Lb = 3, di = 4, nin = 11;
    long rows = (long)B * Lb;
    int32_t len[2] = {3, 1};
    float *zx = malloc((size_t)rows * nin * 4), *orig = malloc((size_t)rows * nin * 4);
    for (int ablated = 0; ablated < 2; ablated++) {
        for (long i = 0; i < rows * nin; i++) zx[i] = orig[i] = (float)uniform(-3, 3);
        launch(SK_GATE, &(sl_kargs){.bt = {.B = B, .Lb = Lb, .len = len}, .y = zx, .y2 = zx, .ld = nin, .di = di,
                                    .K = ablated, .flag = SL_GATE_ACTIVATE});
        int ok = 1;
        for (long r = 0; r < rows; r++)
            for (int c = 0; c < nin; c++) {
                float z = orig[r * nin + c], want = c >= di ? z : ablated ? 1.0f : z / (1.0f + expf(-z));
                ok &= fabsf(zx[r * nin + c] - want) <= 1e-6f * fmaxf(1.0f, fabsf(want));
            }
        CHECK(ok, "gate on in_proj's first columns (ablated %d): wrong values or columns", ablated);
    }
    free(zx), free(orig);
}

int main(void)
{
    int32_t lens3[] = {11, 7, 3}, lens2[] = {7, 4}, lens1[] = {6};
    ssd_case_run(3, 11, lens3, 4, 3, 1, 5, 0, "one group, D per head");
    ssd_case_run(3, 11, lens3, 4, 3, 2, 5, 1, "two groups, D per channel");
    ssd_case_run(3, 11, lens3, 6, 2, 3, 4, 0, "three groups");
    ssd_case_run(2, 7, lens2, 2, 3, 2, 33, 0, "d_state 33 (the 64-state instance)");
    ssd_case_run(1, 6, lens1, 2, 2, 1, 64, 0, "d_state 64");
    ssd_case_run(1, 6, lens1, 2, 2, 1, SL_MAX_SSD_STATE, 1, "d_state at the kernel's limit");
    delta2_check(0.0f, INFINITY, "no dt_limit");
    delta2_check(0.3f, 1.2f, "dt_limit (0.3, 1.2)");
    for (int before = 0; before < 2; before++)
        for (int has_w = 0; has_w < 2; has_w++) {
            char name[96];
            snprintf(name, sizeof name, "before %d, weight %d", before, has_w);
            gated_norm_check(12, 12, before, has_w, 0, name);
            snprintf(name, sizeof name, "before %d, weight %d, groups of 4, in place", before, has_w);
            gated_norm_check(12, 4, before, has_w, 1, name);
        }
    gate_first_columns();
    return TEST_SUMMARY();
}
