/* Mamba-2's CPU kernels (models/mamba2_cpu.c) against plain double
 * loops written here from design.md section 2.4: the SSD (vectorised and
 * plain paths, headdim 5 to 64, ngroups 1 to 4, D per head and per channel,
 * lengths across the backward's chunks, strided rows), its backward (the
 * double reference itself checked against finite differences), the gated
 * norm both ways round and without weight, and delta's activation. The
 * headdims take every path: 16 lanes (16, 32, 48, 64 with AVX-512), 8
 * (8, 24, 40), the plain loops (1, 5); odd d_state the unrolled pairs' tail. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "models/mamba2_cpu.h"
#include "models/mamba_scan.h"
#include "tests/testing.h"

static unsigned long long rng = 0x9e3779b97f4a7c15ull;

static double uniform(double lo, double hi)
{
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return lo + (hi - lo) * (double)(rng >> 11) / 9007199254740992.0;
}

static void fill(float *p, size_t n, double lo, double hi)
{
    for (size_t i = 0; i < n; i++) p[i] = (float)uniform(lo, hi);
}

/* ---- the SSD ---- */

typedef struct {
    int T, H, P, G, N, Dc;
} shape;

/* One problem: x, B and C inside wider rows (the views' strides), delta
 * [T][H] in rows of H + 1. */
typedef struct {
    shape s;
    int di, ldx, ldd, ldb;
    float *x, *delta, *bc, *A, *D, *dy;
} problem;

static problem make(shape s)
{
    problem p = {.s = s, .di = s.H * s.P};
    p.ldx = p.di + 3;
    p.ldd = s.H + 1;
    p.ldb = 2 * s.G * s.N + 5;
    p.x = malloc((size_t)s.T * p.ldx * sizeof(float));
    p.delta = malloc((size_t)s.T * p.ldd * sizeof(float));
    p.bc = malloc((size_t)s.T * p.ldb * sizeof(float));
    p.A = malloc((size_t)s.H * sizeof(float));
    p.D = malloc((size_t)p.di * sizeof(float));
    p.dy = malloc((size_t)s.T * p.di * sizeof(float));
    fill(p.x, (size_t)s.T * p.ldx, -1, 1);
    fill(p.delta, (size_t)s.T * p.ldd, 0.001, 0.5);
    fill(p.bc, (size_t)s.T * p.ldb, -1, 1);
    fill(p.A, (size_t)s.H, -4, -0.1);
    fill(p.D, (size_t)p.di, -1, 1);
    fill(p.dy, (size_t)s.T * p.di, -1, 1);
    return p;
}

static void drop(problem *p)
{
    free(p->x), free(p->delta), free(p->bc), free(p->A), free(p->D), free(p->dy);
}

static sl_ssd_in input(const problem *p)
{
    const shape *s = &p->s;
    return (sl_ssd_in){s->T, s->H, s->P, s->G, s->N, s->Dc, p->x, p->delta, p->bc, p->bc + s->G * s->N, p->A, p->D,
                       p->ldx, p->ldd, p->ldb};
}

/* Double inputs in dense arrays, so that finite differences can move them. */
typedef struct {
    double *x, *delta, *B, *C; /* [T][di], [T][H], [T][G N], [T][G N] */
} dense;

static dense densify(const problem *p)
{
    const shape *s = &p->s;
    int GN = s->G * s->N;
    dense d = {malloc((size_t)s->T * p->di * 8), malloc((size_t)s->T * s->H * 8), malloc((size_t)s->T * GN * 8),
               malloc((size_t)s->T * GN * 8)};
    for (int t = 0; t < s->T; t++) {
        for (int c = 0; c < p->di; c++) d.x[t * p->di + c] = p->x[(size_t)t * p->ldx + c];
        for (int h = 0; h < s->H; h++) d.delta[t * s->H + h] = p->delta[(size_t)t * p->ldd + h];
        for (int q = 0; q < GN; q++) {
            d.B[t * GN + q] = p->bc[(size_t)t * p->ldb + q];
            d.C[t * GN + q] = p->bc[(size_t)t * p->ldb + GN + q];
        }
    }
    return d;
}

static double Dof(const problem *p, int c) { return p->s.Dc ? p->D[c] : p->D[c / p->s.P]; }

/* The recurrence as design.md writes it, in double; states [T + 1][di][N]
 * (row 0 the zero state) when S is not NULL. */
static void naive(const problem *p, const dense *in, double *y, double *S)
{
    const shape *s = &p->s;
    int N = s->N, GN = s->G * N, di = p->di;
    double *st = calloc((size_t)di * N, 8);
    if (S) memset(S, 0, (size_t)di * N * 8);
    for (int t = 0; t < s->T; t++) {
        for (int h = 0; h < s->H; h++) {
            int g = h / (s->H / s->G);
            double dl = in->delta[t * s->H + h], a = exp(dl * p->A[h]);
            for (int q = 0; q < s->P; q++) {
                int c = h * s->P + q;
                double xv = in->x[t * di + c], acc = Dof(p, c) * xv;
                for (int n = 0; n < N; n++) {
                    double *v = &st[(size_t)c * N + n];
                    *v = a * *v + dl * xv * in->B[t * GN + g * N + n];
                    acc += *v * in->C[t * GN + g * N + n];
                }
                y[t * di + c] = acc;
            }
        }
        if (S) memcpy(S + (size_t)(t + 1) * di * N, st, (size_t)di * N * 8);
    }
    free(st);
}

/* Reverse mode of naive, in double, from its states: dx, dd, dB, dC. */
static void naive_backward(const problem *p, const dense *in, const double *S, double *dx, double *dd, double *dB,
                           double *dC)
{
    const shape *s = &p->s;
    int N = s->N, GN = s->G * N, di = p->di;
    double *gs = calloc((size_t)di * N, 8);
    memset(dB, 0, (size_t)s->T * GN * 8);
    memset(dC, 0, (size_t)s->T * GN * 8);
    for (int t = s->T - 1; t >= 0; t--)
        for (int h = 0; h < s->H; h++) {
            int g = h / (s->H / s->G);
            double dl = in->delta[t * s->H + h], a = exp(dl * p->A[h]), ddl = 0;
            for (int q = 0; q < s->P; q++) {
                int c = h * s->P + q;
                double xv = in->x[t * di + c], gy = p->dy[t * di + c], u = 0;
                for (int n = 0; n < N; n++) {
                    size_t o = (size_t)c * N + n;
                    double cur = S[(size_t)(t + 1) * di * N + o], prev = S[(size_t)t * di * N + o];
                    double b = in->B[t * GN + g * N + n], cc = in->C[t * GN + g * N + n];
                    double gv = gs[o] + gy * cc;
                    dC[t * GN + g * N + n] += gy * cur;
                    dB[t * GN + g * N + n] += gv * dl * xv;
                    ddl += gv * (prev * a * p->A[h] + xv * b);
                    u += gv * b;
                    gs[o] = gv * a;
                }
                dx[t * di + c] = Dof(p, c) * gy + dl * u;
            }
            dd[t * s->H + h] = ddl;
        }
    free(gs);
}

static double loss(const problem *p, const dense *in, double *y)
{
    naive(p, in, y, NULL);
    double l = 0;
    for (int k = 0; k < p->s.T * p->di; k++) l += p->dy[k] * y[k];
    return l;
}

/* The double reverse mode against central differences of sum(dy y). */
static void backward_reference_checked(shape s)
{
    problem p = make(s);
    dense in = densify(&p);
    int di = p.di, GN = s.G * s.N;
    double *y = malloc((size_t)s.T * di * 8), *S = malloc((size_t)(s.T + 1) * di * s.N * 8);
    double *dx = malloc((size_t)s.T * di * 8), *dd = malloc((size_t)s.T * s.H * 8);
    double *dB = malloc((size_t)s.T * GN * 8), *dC = malloc((size_t)s.T * GN * 8);
    naive(&p, &in, y, S);
    naive_backward(&p, &in, S, dx, dd, dB, dC);
    struct {
        double *v, *g;
        int n;
    } parts[] = {{in.x, dx, s.T * di}, {in.delta, dd, s.T * s.H}, {in.B, dB, s.T * GN}, {in.C, dC, s.T * GN}};
    double worst = 0;
    for (int k = 0; k < 4; k++)
        for (int i = 0; i < parts[k].n; i++) {
            double keep = parts[k].v[i], h = 1e-6;
            parts[k].v[i] = keep + h;
            double up = loss(&p, &in, y);
            parts[k].v[i] = keep - h;
            double down = loss(&p, &in, y);
            parts[k].v[i] = keep;
            double e = fabs((up - down) / (2 * h) - parts[k].g[i]) / fmax(1, fabs(parts[k].g[i]));
            if (e > worst) worst = e;
        }
    CHECK(worst < 1e-7, "the test's double SSD backward against finite differences: %g", worst);
    free(y), free(S), free(dx), free(dd), free(dB), free(dC);
    free(in.x), free(in.delta), free(in.B), free(in.C);
    drop(&p);
}

static double rel_d(const float *got, int ldg, const double *want, int rows, int cols)
{
    double diff = 0, scale = 0;
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            double w = want[(size_t)r * cols + c], e = fabs(got[(size_t)r * ldg + c] - w);
            if (!(e <= diff)) diff = e;
            scale = fmax(scale, fabs(w));
        }
    return scale > 0 ? diff / scale : diff;
}

typedef void (*fwd_fn)(const sl_ssd_in *, float *, float *, int, float *);
typedef void (*bwd_fn)(const sl_ssd_in *, const float *, const float *, int, float *, float *, int, float *, int,
                       float *, float *, int);

/* Forward and backward of one path against the double loops. */
static void ssd_case(shape s, fwd_fn fwd, bwd_fn bwd, const char *path)
{
    problem p = make(s);
    dense in = densify(&p);
    sl_ssd_in si = input(&p);
    int di = p.di, GN = s.G * s.N, ldy = di + 2, ldg = GN + 1;
    double *y = malloc((size_t)s.T * di * 8), *S = malloc((size_t)(s.T + 1) * di * s.N * 8);
    double *dx = malloc((size_t)s.T * di * 8), *dd = malloc((size_t)s.T * s.H * 8);
    double *dB = malloc((size_t)s.T * GN * 8), *dC = malloc((size_t)s.T * GN * 8);
    naive(&p, &in, y, S);
    naive_backward(&p, &in, S, dx, dd, dB, dC);

    float *state = malloc(sl_ssd_state_floats(s.H, s.P, s.N) * sizeof(float));
    float *ckpt = malloc(sl_ssd_ckpt_floats(s.H, s.P, s.N, s.T) * sizeof(float));
    float *scratch = malloc(sl_ssd_scratch_floats(s.H, s.P, s.G, s.N) * sizeof(float));
    float *gy = calloc((size_t)s.T * ldy, sizeof(float)), *gdx = calloc((size_t)s.T * ldy, sizeof(float));
    float *gdd = calloc((size_t)s.T * (s.H + 2), sizeof(float));
    float *gdB = calloc((size_t)s.T * ldg, sizeof(float)), *gdC = calloc((size_t)s.T * ldg, sizeof(float));
    fwd(&si, state, gy, ldy, ckpt);
    double ey = rel_d(gy, ldy, y, s.T, di);
    /* the last state: what the scan leaves */
    double es = 0, ss = 0;
    for (int c = 0; c < di; c++)
        for (int n = 0; n < s.N; n++) {
            double want = S[(size_t)s.T * di * s.N + (size_t)c * s.N + n];
            float got = state[((size_t)(c / s.P) * s.N + n) * s.P + c % s.P];
            es = fmax(es, fabs(got - want));
            ss = fmax(ss, fabs(want));
        }
    bwd(&si, ckpt, p.dy, di, scratch, gdx, ldy, gdd, s.H + 2, gdB, gdC, ldg);
    double ex = rel_d(gdx, ldy, dx, s.T, di), ed = rel_d(gdd, s.H + 2, dd, s.T, s.H);
    double eb = rel_d(gdB, ldg, dB, s.T, GN), ec = rel_d(gdC, ldg, dC, s.T, GN);
    CHECK(ey <= 1e-5 && es <= 1e-5 * ss, "%s T %d H %d P %d G %d N %d D%s: y %.3g, state %.3g", path, s.T, s.H, s.P, s.G,
          s.N, s.Dc ? " per channel" : "", ey, es / ss);
    CHECK(ex <= 1e-5 && ed <= 1e-5 && eb <= 1e-5 && ec <= 1e-5,
          "%s backward T %d H %d P %d G %d N %d: dx %.3g, ddelta %.3g, dB %.3g, dC %.3g", path, s.T, s.H, s.P, s.G, s.N,
          ex, ed, eb, ec);
    /* padding columns are left alone */
    int pad_ok = 1;
    for (int t = 0; t < s.T; t++) pad_ok &= gy[(size_t)t * ldy + di] == 0 && gdB[(size_t)t * ldg + GN] == 0;
    CHECK(pad_ok, "%s: wrote past a row's columns", path);
    free(state), free(ckpt), free(scratch), free(gy), free(gdx), free(gdd), free(gdB), free(gdC);
    free(y), free(S), free(dx), free(dd), free(dB), free(dC);
    free(in.x), free(in.delta), free(in.B), free(in.C);
    drop(&p);
}

/* The vectorised path and the plain loops give the same y bit for bit up
 * to the order of y's sum: within 1e-6 of each other. */
static void paths_agree(shape s)
{
    problem p = make(s);
    sl_ssd_in si = input(&p);
    size_t n = (size_t)s.T * p.di;
    float *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float));
    float *state = malloc(sl_ssd_state_floats(s.H, s.P, s.N) * sizeof(float));
    sl_ssd(&si, state, a, p.di, NULL);
    sl_ssd_scalar(&si, state, b, p.di, NULL);
    CHECK(rel_err(a, b, n) <= 1e-6, "P %d: vector and plain paths differ by %.3g", s.P, rel_err(a, b, n));
    /* ablated: y = D x */
    sl_ssd_skip(&si, a, p.di);
    int ok = 1;
    for (int t = 0; t < s.T; t++)
        for (int c = 0; c < p.di; c++) ok &= a[(size_t)t * p.di + c] == (float)(Dof(&p, c) * p.x[(size_t)t * p.ldx + c]);
    CHECK(ok, "skip is not D x");
    free(a), free(b), free(state);
    drop(&p);
}

/* ---- the gated norm ---- */

static double silu64(double z) { return z / (1 + exp(-z)); }

/* out in double as mamba_ssm's rms_norm_ref with group_size */
static void gnorm64(const double *y, const double *z, const float *w, int T, int di, int group, double eps, int before,
                    double *out)
{
    for (int t = 0; t < T; t++)
        for (int c0 = 0; c0 < di; c0 += w ? group : di) {
            int n = w ? group : di;
            double ss = 0;
            for (int i = 0; i < n; i++) {
                double v = before ? y[t * di + c0 + i] : y[t * di + c0 + i] * silu64(z[t * di + c0 + i]);
                ss += v * v;
            }
            double r = 1 / sqrt(ss / n + eps);
            for (int i = 0; i < n; i++) {
                int k = t * di + c0 + i;
                double g = silu64(z[k]);
                out[k] = !w ? y[k] * g : before ? y[k] * r * w[c0 + i] * g : y[k] * g * r * w[c0 + i];
            }
        }
}

static double gnorm_loss(const double *y, const double *z, const float *w, const float *dout, int T, int di, int group,
                         int before, double *out)
{
    gnorm64(y, z, w, T, di, group, 1e-5, before, out);
    double l = 0;
    for (int k = 0; k < T * di; k++) l += dout[k] * out[k];
    return l;
}

static void gated_norm_case(int di, int group, int before, int weighted)
{
    enum { T = 3 };
    int ld = di + 4, n = T * di;
    float *y = malloc((size_t)T * ld * 4), *z = malloc((size_t)T * ld * 4), *w = malloc((size_t)di * 4);
    float *g = malloc((size_t)T * ld * 4), *out = malloc((size_t)T * di * 4), *dout = malloc((size_t)T * di * 4);
    float *dz = malloc((size_t)T * ld * 4), *dy = malloc((size_t)T * di * 4);
    double *y64 = malloc((size_t)n * 8), *z64 = malloc((size_t)n * 8), *o64 = malloc((size_t)n * 8);
    double *gy = malloc((size_t)n * 8), *gz = malloc((size_t)n * 8);
    fill(y, (size_t)T * ld, -2, 2);
    fill(z, (size_t)T * ld, -4, 4);
    fill(w, (size_t)di, 0.5, 1.5);
    fill(dout, (size_t)n, -1, 1);
    const float *wp = weighted ? w : NULL;
    for (int t = 0; t < T; t++)
        for (int c = 0; c < di; c++) {
            y64[t * di + c] = y[t * ld + c];
            z64[t * di + c] = z[t * ld + c];
            g[t * ld + c] = (float)silu64(z[t * ld + c]);
        }
    gnorm64(y64, z64, wp, T, di, group, 1e-5, before, o64);
    sl_gated_norm(y, ld, g, ld, T, di, wp, group, 1e-5f, before, out, di);
    double ef = 0, sf = 0;
    for (int k = 0; k < n; k++) ef = fmax(ef, fabs(out[k] - o64[k])), sf = fmax(sf, fabs(o64[k]));
    CHECK(ef <= 1e-6 * sf, "gated norm di %d group %d before %d weight %d: relative error %.3g", di, group, before,
          weighted, ef / sf);
    /* in place: out = y */
    float *yy = malloc((size_t)T * ld * 4);
    memcpy(yy, y, (size_t)T * ld * 4);
    sl_gated_norm(yy, ld, g, ld, T, di, wp, group, 1e-5f, before, yy, ld);
    int same = 1;
    for (int t = 0; t < T; t++)
        for (int c = 0; c < di; c++) same &= yy[t * ld + c] == out[t * di + c];
    CHECK(same, "gated norm in place differs");
    /* the backward against central differences, dy written over dout (in place) */
    for (int k = 0; k < n; k++) {
        double h = 1e-6, keep = y64[k];
        y64[k] = keep + h;
        double up = gnorm_loss(y64, z64, wp, dout, T, di, group, before, o64);
        y64[k] = keep - h;
        gy[k] = (up - gnorm_loss(y64, z64, wp, dout, T, di, group, before, o64)) / (2 * h);
        y64[k] = keep;
        keep = z64[k];
        z64[k] = keep + h;
        up = gnorm_loss(y64, z64, wp, dout, T, di, group, before, o64);
        z64[k] = keep - h;
        gz[k] = (up - gnorm_loss(y64, z64, wp, dout, T, di, group, before, o64)) / (2 * h);
        z64[k] = keep;
    }
    memcpy(dy, dout, (size_t)n * 4);
    sl_gated_norm_backward(y, ld, z, ld, T, di, wp, group, 1e-5f, before, dy, di, dy, di, dz, ld);
    double ey = rel_d(dy, di, gy, T, di), ez = rel_d(dz, ld, gz, T, di);
    CHECK(ey <= 1e-5 && ez <= 1e-5, "gated norm backward di %d group %d before %d weight %d: dy %.3g, dz %.3g", di,
          group, before, weighted, ey, ez);
    free(y), free(z), free(w), free(g), free(out), free(dout), free(dz), free(dy), free(yy);
    free(y64), free(z64), free(o64), free(gy), free(gz);
}

/* ---- delta ---- */

static double delta64(double dt, double b, double lo, double hi)
{
    double v = dt + b > 20 ? dt + b : log1p(exp(dt + b));
    return fmin(fmax(v, lo), hi);
}

static void delta_case(float lo, float hi)
{
    enum { T = 50, H = 3, LD = 5 };
    float dt[T * LD], bias[H], delta[T * H], dd[T * H], ddt[T * LD];
    fill(dt, T * LD, -8, 8);
    fill(bias, H, -3, 3);
    fill(dd, T * H, -1, 1);
    dt[0] = 25.0f; /* past softplus's threshold */
    sl_delta2(dt, LD, T, H, bias, lo, hi, delta, H);
    sl_delta2_backward(dt, LD, T, H, bias, lo, hi, dd, H, ddt, LD);
    double ef = 0, eb = 0;
    int clamped = 0;
    for (int t = 0; t < T; t++)
        for (int h = 0; h < H; h++) {
            double x = dt[t * LD + h], want = delta64(x, bias[h], lo, hi);
            ef = fmax(ef, fabs(delta[t * H + h] - want) / fmax(want, 1e-30));
            double e = 1e-6, slope = (delta64(x + e, bias[h], lo, hi) - delta64(x - e, bias[h], lo, hi)) / (2 * e);
            /* torch.clamp passes the gradient on the bounds; differences there see half of it */
            if (want == lo || want == hi) clamped++, slope = 0;
            eb = fmax(eb, fabs(ddt[t * LD + h] - dd[t * H + h] * slope));
        }
    CHECK(ef <= 1e-6 && eb <= 1e-6, "delta2 [%g, %g]: forward %.3g, backward %.3g", lo, hi, ef, eb);
    CHECK(hi == INFINITY || clamped > 10, "delta2 [%g, %g]: only %d clamped", lo, hi, clamped);
    /* in place: delta over dt, ddt over ddelta */
    memcpy(ddt, dt, sizeof dt);
    sl_delta2(ddt, LD, T, H, bias, lo, hi, ddt, LD);
    int same = 1;
    for (int t = 0; t < T; t++)
        for (int h = 0; h < H; h++) same &= ddt[t * LD + h] == delta[t * H + h];
    CHECK(same, "delta2 in place differs");
}

int main(void)
{
    backward_reference_checked((shape){9, 4, 3, 2, 3, 0});
    backward_reference_checked((shape){7, 2, 4, 1, 2, 1});
    /* T across the backward's chunks (SL_SSD_CHUNK): one partial chunk,
     * exact multiples, a partial last chunk */
    shape shapes[] = {
        {1, 2, 16, 1, 16, 0},   {20, 4, 16, 2, 16, 0},  {64, 4, 8, 4, 5, 1},   {100, 2, 32, 2, 64, 0},
        {2 * SL_SSD_CHUNK + 7, 2, 64, 1, 16, 1}, {40, 3, 24, 3, 7, 0}, {37, 4, 5, 2, 3, 0},   {33, 1, 1, 1, 1, 1},
        {70, 6, 40, 2, 4, 1},   {45, 2, 16, 1, 7, 0},   {30, 3, 32, 3, 9, 1},  {21, 2, 48, 2, 3, 0},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        ssd_case(shapes[i], sl_ssd, sl_ssd_backward, "sl_ssd");
        ssd_case(shapes[i], sl_ssd_scalar, sl_ssd_backward_scalar, "sl_ssd_scalar");
        paths_agree(shapes[i]);
    }
    for (int before = 0; before <= 1; before++)
        for (int groups = 1; groups <= 4; groups *= 2) gated_norm_case(32, 32 / groups, before, 1);
    gated_norm_case(24, 24, 0, 0);
    delta_case(0.0f, INFINITY);
    delta_case(0.05f, 2.0f);
    return TEST_SUMMARY();
}
