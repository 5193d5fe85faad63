/* Weights saved with torch.save: the fixtures under tests/fixtures/pt
 * (written by tests/reference/make_pt_fixtures.py from other fixtures'
 * tensors) load to exactly the original float32 weights; the restricted
 * unpickler refuses everything a state_dict does not need, and every
 * malformed archive is one input error (exit 2, one line) naming the file.
 * Hostile pickles are built byte by byte here: nothing is ever run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zip.h>

#include "core/pickle.h"
#include "core/ptfile.h"
#include "core/safetensors.h"
#include "core/weights.h"
#include "models/model.h"
#include "tests/testing.h"
#include "tests/pt_builders.h"

#define W "build/tests/pt"
#define FIX "tests/fixtures"

/* ---- the fixtures: the same tensors as the safetensors originals ---- */

static void same_tensors(const char *pt_dir, const char *orig)
{
    char path[512];
    snprintf(path, sizeof path, FIX "/%s/model.safetensors", orig);
    st_file a, b;
    sl_error err = {0};
    int rc = sl_weights_open(&a, pt_dir, &err);
    CHECK(rc == SL_OK, "%s: %s", pt_dir, err.msg);
    rc |= st_open(&b, path, &err);
    CHECK(rc == SL_OK && a.n == b.n, "%s: %d tensors, %s has %d (%s)", pt_dir, a.n, orig, b.n, err.msg);
    for (int i = 0; !rc && i < b.n; i++) {
        const st_tensor *want = &b.tensors[i], *got = st_find(&a, want->name);
        int ok = got && got->dtype == want->dtype && got->ndim == want->ndim;
        for (int k = 0; ok && k < want->ndim; k++) ok = got->shape[k] == want->shape[k];
        size_t n = (size_t)st_numel(want);
        float *x = malloc(n * sizeof *x + 1), *y = malloc(n * sizeof *y + 1);
        if (ok) {
            st_to_f32(&a, got, x);
            st_to_f32(&b, want, y);
            ok = !memcmp(x, y, n * sizeof *x);
        }
        CHECK(ok, "%s: tensor '%s' differs from %s's", pt_dir, want->name, orig);
        free(x);
        free(y);
    }
    st_close(&a);
    st_close(&b);
    /* and the model built from it: the same float32 weights, bit for bit */
    sl_model m1, m2;
    snprintf(path, sizeof path, FIX "/%s", orig);
    sl_error e1 = {0}, e2 = {0};
    int r1 = sl_model_load(&m1, pt_dir, &e1), r2 = sl_model_load(&m2, path, &e2);
    CHECK(!r1 && !r2 && m1.n_params == m2.n_params && !memcmp(m1.weights, m2.weights, m1.n_params * sizeof(float)),
          "%s: model weights differ from %s's (%s %s)", pt_dir, orig, e1.msg, e2.msg);
    if (!r1) sl_model_free(&m1);
    if (!r2) sl_model_free(&m2);
}

static void fixture_cases(void)
{
    static const char *const pairs[][2] = {
        {"tf_pt", "tf_pre_relu_learned"},       {"tf_bin", "tf_pre_relu_learned"},
        {"tf_views_pt", "tf_pre_relu_learned"}, {"tf_f16_pth", "tf_pre_gelu_sin_f16"},
        {"tf_bf16_pt", "tf_post_relu_rope_causal_bf16"}, {"mamba_pt", "mamba_mean_f32"},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof *pairs; i++) {
        char dir[256];
        snprintf(dir, sizeof dir, FIX "/pt/%s", pairs[i][0]);
        same_tensors(dir, pairs[i][1]);
    }
}

static int load(const pkb *p, sl_error *err)
{
    pk_state_dict sd;
    int rc = pk_load_state_dict(p->b, p->n, "x.pt: data.pkl", &sd, err);
    pk_free(&sd);
    return rc;
}

#define REFUSED(p, needle)                                                                                             \
    do {                                                                                                               \
        sl_error e_ = {0};                                                                                             \
        int r_ = load(p, &e_);                                                                                         \
        CHECK(r_ == SL_EINPUT && strstr(e_.msg, needle) && strstr(e_.msg, "x.pt: data.pkl"),                           \
              "rc %d, message '%s' lacks '%s'", r_, e_.msg, needle);                                                   \
    } while (0)

static void pickle_cases(void)
{
    pkb *p = calloc(1, sizeof *p);
    sl_error err = {0};
    one_tensor(p, &A23);
    pk_state_dict sd;
    int rc = pk_load_state_dict(p->b, p->n, "x.pt: data.pkl", &sd, &err);
    CHECK(rc == SL_OK && sd.n == 1 && !strcmp(sd.t[0].name, "a") && !strcmp(sd.t[0].key, "0") && sd.t[0].ndim == 2
              && sd.t[0].shape[1] == 3 && sd.t[0].stride[0] == 3 && sd.t[0].dtype == ST_F32,
          "a one-tensor state_dict: %s", err.msg);
    pk_free(&sd);

    /* every prefix of a valid pickle is truncated */
    size_t full = p->n;
    int truncated_ok = 1;
    for (size_t n = 0; n < full; n++) {
        p->n = n;
        sl_error e = {0};
        truncated_ok &= load(p, &e) == SL_EINPUT;
    }
    CHECK(truncated_ok, "a truncated pickle was accepted");
    p->n = full - 1;
    REFUSED(p, "without STOP");
    p->n = full;
    op(p, 'N');
    REFUSED(p, "1 bytes after STOP");

    /* code: a global outside the whitelist, whichever way it is named */
    p->n = 0;
    put(p, "\x80\x02", 2);
    glob(p, "posix", "system");
    ustr(p, "touch " W "/pwned");
    put(p, "\x85R.", 3);
    REFUSED(p, "global posix.system is not allowed");
    p->n = 0;
    put(p, "\x80\x04", 2);
    op(p, 0x8c);
    op(p, 8);
    put(p, "builtins", 8);
    op(p, 0x8c);
    op(p, 4);
    put(p, "eval", 4);
    op(p, 0x93);
    REFUSED(p, "global builtins.eval is not allowed");
    one_tensor(p, &(view){"LongStorage", "0", 6, 0, 1, {6}, {1}});
    REFUSED(p, "tensor 'a': storage type torch.LongStorage (int64) is not read");
    one_tensor(p, &(view){"ComplexFloatStorage", "0", 6, 0, 1, {6}, {1}});
    REFUSED(p, "storage type torch.ComplexFloatStorage is not read");
    p->n = 0;
    put(p, "\x80\x02", 2);
    glob(p, "torch", "FloatStorage");
    put(p, ")R.", 3);
    REFUSED(p, "REDUCE calls a float32 storage type");

    /* opcodes a state_dict never uses: INST, OBJ, EXT1, an undefined byte */
    static const unsigned char bad[] = {'i', 'o', 0x82, 0xff, 'P'};
    for (size_t i = 0; i < sizeof bad; i++) {
        p->n = 0;
        put(p, "\x80\x02}", 3);
        op(p, bad[i]);
        op(p, '.');
        char needle[32];
        snprintf(needle, sizeof needle, "opcode 0x%02x", bad[i]);
        REFUSED(p, needle);
    }

    /* nesting: MARKs, tuples, a dict put into itself through the memo */
    p->n = 0;
    put(p, "\x80\x02", 2);
    for (int i = 0; i < 40; i++) op(p, '(');
    REFUSED(p, "MARKs nested deeper than 32");
    p->n = 0;
    put(p, "\x80\x02)", 3);
    for (int i = 0; i < 40; i++) op(p, 0x85);
    REFUSED(p, "nested deeper than 32");
    p->n = 0;
    put(p, "\x80\x02}q\x00", 5);
    for (int i = 0; i < 40; i++) put(p, "h\x00h\x00s", 5); /* d[d] = d */
    REFUSED(p, "nested deeper than 32");

    /* the memo: an index never put, a sparse one */
    p->n = 0;
    put(p, "\x80\x02h\x05.", 5);
    REFUSED(p, "memo index 5 out of range (0 entries)");
    p->n = 0;
    put(p, "\x80\x02}r\x40\x42\x0f\x00.", 9);
    REFUSED(p, "memo index 1000000 out of range");

    /* lengths past the end; a string that is not UTF-8 */
    p->n = 0;
    put(p, "\x80\x02X\xff\xff\xff\x7f", 7);
    REFUSED(p, "runs past the end");
    p->n = 0;
    put(p, "\x80\x02\x8d\xff\xff\xff\xff\xff\xff\xff\xff", 11);
    REFUSED(p, "runs past the end");
    p->n = 0;
    put(p, "\x80\x02X\x02\x00\x00\x00\xc3(.", 10);
    REFUSED(p, "not UTF-8");

    /* structure: underflow, a non-dict target, a non-tensor value, no dict */
    p->n = 0;
    put(p, "\x80\x02R.", 4);
    REFUSED(p, "REDUCE needs 2 values");
    p->n = 0;
    put(p, "\x80\x02)(NNu.", 7);
    REFUSED(p, "not a dict");
    p->n = 0;
    put(p, "\x80\x02}", 3);
    ustr(p, "epoch");
    put(p, "K\x03s.", 4);
    REFUSED(p, "'epoch' is a int, not a tensor");
    p->n = 0;
    put(p, "\x80\x02N.", 4);
    REFUSED(p, "holds a None, not a state_dict");
    p->n = 0;
    put(p, "\x80\x09}.", 4);
    REFUSED(p, "pickle protocol 9");
    view v = A23;
    v.ndim = 9;
    one_tensor(p, &v);
    REFUSED(p, "size is not a tuple of at most 8 ints");
    v = A23;
    v.offset = -1;
    one_tensor(p, &v);
    REFUSED(p, "storage offset is not a non-negative int");
    free(p);
}

/* A training checkpoint as PyTorch's tutorial saves one: the state_dict is
 * the one entry that is a dict of tensors; the optimizer's state (int keys,
 * lists, floats) is parsed and left. Two state_dicts are ambiguous. */
static void checkpoint_dict_cases(void)
{
    pkb *p = calloc(1, sizeof *p);
    put(p, "\x80\x02}(", 4);
    ustr(p, "epoch");
    put(p, "K\x1d", 2);
    ustr(p, "loss");
    put(p, "G?\xd0\x00\x00\x00\x00\x00\x00", 9); /* 0.25 */
    ustr(p, "optimizer_state_dict");
    put(p, "}(", 2);
    ustr(p, "state");
    put(p, "}K\x00}", 4); /* {0: {"exp_avg": tensor, "step": int64 tensor}} */
    ustr(p, "exp_avg");
    tensor(p, &(view){"FloatStorage", "9", 6, 0, 2, {2, 3}, {3, 1}});
    put(p, "s", 1);
    ustr(p, "step"); /* an int64 tensor outside the state_dict read: never looked at */
    tensor(p, &(view){"LongStorage", "8", 1, 0, 0, {0}, {0}});
    put(p, "ss", 2);
    ustr(p, "param_groups");
    put(p, "](}", 3); /* [{"betas": (0.9, 0.999), "params": [0, 1]}] */
    ustr(p, "betas");
    put(p, "G?\xec\xcc\xcc\xcc\xcc\xcc\xcdG?\xef\xf7\xce\xd9\x16\x87+\x86s", 20);
    ustr(p, "params");
    put(p, "]K\x00" "aK\x01" "ase", 9);
    put(p, "u", 1);
    ustr(p, "model_state_dict");
    size_t model_at = p->n;
    put(p, "}", 1);
    ustr(p, "w");
    tensor(p, &A23);
    put(p, "su.", 3);
    pk_state_dict sd;
    sl_error err = {0};
    int rc = pk_load_state_dict(p->b, p->n, "x.pt: data.pkl", &sd, &err);
    CHECK(rc == SL_OK && sd.n == 1 && !strcmp(sd.t[0].name, "w") && !strcmp(sd.t[0].key, "0"),
          "the model_state_dict of a training checkpoint: rc %d, %d tensors, %s", rc, sd.n, err.msg);
    pk_free(&sd);

    /* the same with a second state_dict beside it ("ema"): which one is meant? */
    size_t end = p->n - 2; /* before the final "u." */
    p->n = end;
    ustr(p, "ema");
    put(p, "}", 1);
    ustr(p, "w");
    tensor(p, &A23);
    put(p, "su.", 3);
    REFUSED(p, "holds 2 state_dicts ('model_state_dict', 'ema')");

    /* no state_dict in it: the first entry that is no tensor is named */
    p->n = model_at - 5 - strlen("model_state_dict");
    put(p, "u.", 2);
    REFUSED(p, "'epoch' is a int, not a tensor, and no entry is a state_dict");

    /* APPEND(S) only onto a list; a list put into itself nests too deep */
    p->n = 0;
    put(p, "\x80\x02}K\x01" "a.", 7);
    REFUSED(p, "APPEND(S) onto something that is not a list");
    p->n = 0;
    put(p, "\x80\x02]q\x00", 5);
    for (int i = 0; i < 40; i++) put(p, "h\x00h\x00" "a", 5); /* l.append(l) */
    REFUSED(p, "nested deeper than 32");
    free(p);
}

/* A state_dict of n tensors viewing one storage, through the memo as
 * torch.save writes repeats: n log n at most, accepted fast. */
static void pickle_scale_case(void)
{
    enum { N = 200000 };
    size_t cap = (size_t)N * 40 + 4096, n = 0;
    unsigned char *b = malloc(cap);
    pkb *head = calloc(1, sizeof *head);
    put(head, "\x80\x02}q\x00(", 6);
    ustr(head, "t0");
    tensor(head, &(view){"FloatStorage", "0", 1, 0, 1, {1}, {1}});
    put(head, "q\x01", 2);
    memcpy(b, head->b, head->n);
    n = head->n;
    /* key "t<i>" then the memoised tensor again */
    for (int i = 1; i < N; i++) {
        char key[16];
        int k = snprintf(key, sizeof key, "t%d", i);
        b[n++] = 'X';
        for (int j = 0; j < 4; j++) b[n++] = (unsigned char)((unsigned)k >> (8 * j));
        memcpy(b + n, key, (size_t)k);
        n += (size_t)k;
        b[n++] = 'h';
        b[n++] = 1;
    }
    b[n++] = 'u';
    b[n++] = '.';
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pk_state_dict sd;
    sl_error err = {0};
    int rc = pk_load_state_dict(b, n, "x.pt: data.pkl", &sd, &err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    CHECK(rc == SL_OK && sd.n == N, "%d entries: %s", N, err.msg);
    CHECK(s < 10.0, /* linear: well under 1 s even under ASan */ "%d entries took %.2f s", N, s);
    pk_free(&sd);
    free(head);
    free(b);
}

/* ---- archives ---- */

static int open_pt(const char *path, sl_error *err, float *out)
{
    st_file f;
    int rc = pt_open(&f, path, err);
    if (!rc && out && f.n == 1) st_to_f32(&f, &f.tensors[0], out);
    st_close(&f);
    return rc;
}

static void pt_refused(const char *path, const char *needle)
{
    sl_error err = {0};
    int rc = open_pt(path, &err, NULL);
    CHECK(rc == SL_EINPUT && strstr(err.msg, needle) && strstr(err.msg, path), "%s: rc %d, message '%s' lacks '%s'",
          path, rc, err.msg, needle);
}

static void archive_cases(void)
{
    pkb *p = calloc(1, sizeof *p);
    const char *f = W "/a.pt";
    sl_error err = {0};
    float got[6] = {0};

    one_tensor(p, &A23);
    archive_with(f, p, sizeof SIX, "little", 0);
    CHECK(open_pt(f, &err, got) == SL_OK && !memcmp(got, SIX, sizeof SIX), "a minimal archive: %s", err.msg);

    /* a transposed view, and one at an offset with a step: gathered */
    one_tensor(p, &(view){"FloatStorage", "0", 6, 0, 2, {3, 2}, {1, 3}});
    archive_with(f, p, sizeof SIX, NULL, 0);
    static const float T[6] = {0, 3, 1, 4, 2, 5};
    CHECK(open_pt(f, &err, got) == SL_OK && !memcmp(got, T, sizeof T), "a transposed view: %s", err.msg);
    one_tensor(p, &(view){"FloatStorage", "0", 6, 1, 1, {3}, {2}});
    archive_with(f, p, sizeof SIX, NULL, 0);
    CHECK(open_pt(f, &err, got) == SL_OK && got[0] == 1 && got[1] == 3 && got[2] == 5, "offset 1, stride 2: %s", err.msg);

    /* views past their storage */
    one_tensor(p, &(view){"FloatStorage", "0", 6, 4, 2, {2, 3}, {3, 1}});
    archive_with(f, p, sizeof SIX, NULL, 0);
    pt_refused(f, "reaches element 9 of storage '0', which holds 6");
    one_tensor(p, &(view){"FloatStorage", "0", 6, 0, 2, {2, 3}, {4, 1}});
    archive_with(f, p, sizeof SIX, NULL, 0);
    pt_refused(f, "reaches element 6 of storage '0'");
    one_tensor(p, &(view){"FloatStorage", "0", 6, 0, 2, {2, 3}, {0x7fffffff, 0x7fffffff}});
    archive_with(f, p, sizeof SIX, NULL, 0);
    pt_refused(f, "reaches element");
    /* the storage shorter than the pickle says */
    one_tensor(p, &A23);
    archive_with(f, p, 5 * sizeof(float), NULL, 0);
    pt_refused(f, "storage data/0 holds 20 bytes, the pickle says 6 elements of F32");
    /* a missing storage, a key that is not torch's */
    one_tensor(p, &(view){"FloatStorage", "7", 6, 0, 1, {6}, {1}});
    archive_with(f, p, sizeof SIX, NULL, 0);
    pt_refused(f, "its storage archive/data/7 is not in the archive");
    one_tensor(p, &(view){"FloatStorage", "../data.pkl", 6, 0, 1, {6}, {1}});
    archive_with(f, p, sizeof SIX, NULL, 0);
    pt_refused(f, "is not a name torch writes");
    /* one float viewed 10 million times (stride 0): past the expansion bound */
    one_tensor(p, &(view){"FloatStorage", "0", 6, 0, 1, {10000000}, {0}});
    archive_with(f, p, sizeof SIX, NULL, 0);
    pt_refused(f, "more than 4 times the file's");

    /* the container */
    one_tensor(p, &A23);
    archive_with(f, p, sizeof SIX, "big", 0);
    pt_refused(f, "only little-endian");
    archive_with(f, p, sizeof SIX, NULL, 1);
    pt_refused(f, "data.pkl is compressed");
    entry nopkl[] = {{"archive/data/0", SIX, sizeof SIX, 0}};
    CHECK(make_zip(f, nopkl, 1) == 0, "zip");
    pt_refused(f, "without ARCHIVE/data.pkl");
    entry two[] = {{"a/data.pkl", p->b, p->n, 0}, {"b/data.pkl", p->b, p->n, 0}};
    CHECK(make_zip(f, two, 2) == 0, "zip");
    pt_refused(f, "holds two data.pkl");
    /* data.pkl cut short inside the archive */
    size_t full = p->n;
    p->n = full / 2;
    archive_with(f, p, sizeof SIX, NULL, 0);
    pt_refused(f, "archive/data.pkl: byte");
    p->n = full;

    /* a byte of a stored tensor changed: the CRC says so */
    archive_with(f, p, sizeof SIX, NULL, 0);
    FILE *fp = fopen(f, "r+b");
    unsigned char *img = malloc(1 << 16);
    size_t n = fp ? fread(img, 1, 1 << 16, fp) : 0;
    const unsigned char *at = n > 8 ? memmem(img, n, SIX + 1, 8) : NULL;
    if (at) {
        fseek(fp, (long)(at - img), SEEK_SET);
        fputc(0x77, fp);
        img[at - img] = 0x77;
    }
    if (fp) fclose(fp);
    CHECK(at != NULL, "storage bytes not found in %s", f);
    pt_refused(f, "CRC");
    /* the same image in memory (the fuzzer's entry) */
    st_file sf;
    int rc = pt_parse(&sf, "mem.pt", img, n, &err);
    st_close(&sf);
    CHECK(rc == SL_EINPUT && strstr(err.msg, "CRC"), "in memory: %s", err.msg);
    /* truncated archives */
    for (size_t cut = 0; cut < n; cut += n / 7 + 1) {
        sl_error e = {0};
        rc = pt_parse(&sf, "mem.pt", img, cut, &e);
        st_close(&sf);
        CHECK(rc == SL_EINPUT && strstr(e.msg, "mem.pt"), "archive cut at %zu of %zu: %s", cut, n, e.msg);
    }
    free(img);

    /* legacy torch.save (a bare pickle), a tar, something else */
    FILE *o = fopen(W "/legacy.pt", "wb");
    /* PROTO 2, then LONG1 of torch's legacy magic number */
    static const unsigned char legacy[] = {0x80, 2, 0x8a, 10, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, '.'};
    fwrite(legacy, 1, sizeof legacy, o);
    fclose(o);
    pt_refused(W "/legacy.pt", "legacy format");
    o = fopen(W "/text.pt", "wb");
    fputs("hello", o);
    fclose(o);
    pt_refused(W "/text.pt", "not a torch.save file");
    pt_refused(W, "is a directory");
    free(p);

    /* protocol 4 (FRAME, MEMOIZE, SHORT_BINUNICODE, STACK_GLOBAL): a
     * transposed F32 view and an F16 nn.Parameter */
    st_file pf;
    rc = pt_open(&pf, "tests/fuzz/corpus/pickle/archive_proto4", &err);
    const st_tensor *ta = rc ? NULL : st_find(&pf, "a"), *tb = rc ? NULL : st_find(&pf, "b");
    float va[6] = {0}, vb[2] = {0};
    if (ta && tb && st_numel(ta) == 6 && st_numel(tb) == 2) {
        st_to_f32(&pf, ta, va);
        st_to_f32(&pf, tb, vb);
    }
    CHECK(ta && tb && tb->dtype == ST_F16 && !memcmp(va, T, sizeof T) && vb[0] == 1 && vb[1] == 1,
          "protocol 4 archive: %s", err.msg);
    st_close(&pf);
}

/* ---- the weights file a directory holds, and the binary's exit status ---- */

static int sh(const char *cmd) { return system(cmd); }

static const char *seqlens = "bin/seqlens"; /* $SEQLENS under make asan */

/* seqlens ARGS exits 2 with one stderr line holding needle. */
static void exit2(const char *args, const char *needle)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s %s >/dev/null 2>" W "/stderr", seqlens, args);
    int st = sh(cmd);
    char line[2048] = "";
    int lines = 0;
    FILE *e = fopen(W "/stderr", "r");
    for (char buf[2048]; e && fgets(buf, sizeof buf, e); lines++)
        if (!lines) snprintf(line, sizeof line, "%s", buf);
    if (e) fclose(e);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 2 && lines == 1 && strstr(line, needle),
          "seqlens %s: status %d, %d lines, '%s' lacks '%s'", args, WIFEXITED(st) ? WEXITSTATUS(st) : -1, lines, line,
          needle);
}

static void directory_cases(void)
{
    sh("rm -rf " W "/two " W "/twopt " W "/none " W "/evil && mkdir -p " W "/two " W "/twopt " W "/none " W "/evil");
    sh("cp " FIX "/tf_pre_relu_learned/config.json " FIX "/tf_pre_relu_learned/model.safetensors " W "/two/ && cp " FIX
       "/pt/tf_pt/model.pt " W "/two/");
    exit2("info " W "/two", "2 weights files (model.pt and model.safetensors)");
    sh("cp " FIX "/pt/tf_pt/config.json " FIX "/pt/tf_pt/model.pt " W "/twopt/ && cp " FIX "/pt/tf_pt/model.pt " W
       "/twopt/b.pth");
    exit2("info " W "/twopt", "2 weights files (b.pth and model.pt)");
    sh("cp " FIX "/pt/tf_pt/config.json " W "/none/ && touch " W "/none/model.safetensors.index.json");
    exit2("info " W "/none", "a sharded checkpoint (model.safetensors.index.json and its shards): seqlens reads one weights file");
    sh("rm " W "/none/model.safetensors.index.json");
    exit2("info " W "/none", "no weights file");
    char path[256];
    sl_error err = {0};
    CHECK(sl_weights_find(FIX "/pt/tf_bin", path, sizeof path, &err) == SL_OK
              && !strcmp(path, FIX "/pt/tf_bin/pytorch_model.bin"),
          "tf_bin: %s %s", path, err.msg);

    /* a pickle that would run a command, in a real model directory */
    pkb *p = calloc(1, sizeof *p);
    put(p, "\x80\x02", 2);
    glob(p, "posix", "system");
    ustr(p, "touch " W "/pwned");
    put(p, "\x85R.", 3);
    archive_with(W "/evil/model.pt", p, sizeof SIX, NULL, 0);
    sh("cp " FIX "/pt/tf_pt/config.json " W "/evil/");
    exit2("eval " W "/evil " FIX "/tf_pre_relu_learned/data.h5 -o " W "/out.h5", "evil/model.pt: archive/data.pkl: byte 2: global posix.system is not allowed");
    CHECK(access(W "/pwned", F_OK) != 0, "the pickle's command ran");
    CHECK(access(W "/out.h5", F_OK) != 0, "an output was left");
    sh("cp " W "/legacy.pt " W "/evil/model.pt");
    exit2("info " W "/evil", "legacy format");
    free(p);
    /* the binary on every fixture */
    static const char *const dirs[] = {"tf_pt", "tf_bin", "tf_views_pt", "tf_f16_pth", "tf_bf16_pt", "mamba_pt"};
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
        char cmd[256];
        snprintf(cmd, sizeof cmd, "%s info " FIX "/pt/%s >/dev/null", seqlens, dirs[i]);
        CHECK(sh(cmd) == 0, "%s", cmd);
    }
}

int main(void)
{
    if (getenv("SEQLENS")) seqlens = getenv("SEQLENS");
    sh("mkdir -p " W);
    fixture_cases();
    pickle_cases();
    checkpoint_dict_cases();
    pickle_scale_case();
    archive_cases();
    directory_cases();
    return TEST_SUMMARY();
}
