/* Bad input never crashes: every malformed model, dataset or option is exit
 * status 2 with one line on stderr naming the culprit, and leaves no output
 * file. Unit cases for the parsers, then the binary on files made here. */
#include <cjson/cJSON.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/config.h"
#include "core/dataset.h"
#include "core/safetensors.h"
#include "tests/testing.h"
#include "tests/pt_builders.h"

#define BAD "build/tests/bad"
#define FIXM "tests/fixtures/mamba_mean_f32"
#define FIXT "tests/fixtures/tf_pre_relu_learned"

static const char *seqlens;
static void limited_case(const char *args, int want, const char *needle, double max_seconds);

/* ---- safetensors parser on in-memory images ---- */

static int parse_image(const char *header, size_t data_len, sl_error *err)
{
    size_t hl = strlen(header), n = 8 + hl + data_len;
    unsigned char *buf = calloc(n, 1);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(hl >> (8 * i));
    memcpy(buf + 8, header, hl);
    st_file f;
    int rc = st_parse(&f, "x.safetensors", buf, n, err);
    st_close(&f);
    return rc;
}

static void st_case(const char *header, size_t data_len, const char *needle)
{
    sl_error err = {0};
    int rc = parse_image(header, data_len, &err);
    CHECK(rc == SL_EINPUT && strstr(err.msg, needle), "header %s: rc %d, message '%s' lacks '%s'", header, rc, err.msg,
          needle);
}

static void safetensors_cases(void)
{
    sl_error err = {0};
    CHECK(parse_image("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, &err) == SL_OK,
          "valid image refused: %s", err.msg);
    CHECK(parse_image("{\"__metadata__\":{\"format\":\"pt\"}}", 0, &err) == SL_OK, "metadata refused: %s", err.msg);
    st_case("[1,2]", 0, "not a JSON object");
    st_case("{\"a\":", 0, "not a JSON object");
    st_case("{\"a\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8, "unsupported dtype I64");
    st_case("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8, "run past the end");
    st_case("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 8, "4 bytes for 2 elements");
    st_case("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
            "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, "overlap");
    st_case("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 8, "shape entry 0");
    st_case("{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 8, "shape entry 0");
    st_case("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8, "data_offsets");
    st_case("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 8, "needs dtype, shape and data_offsets");
    st_case("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
            "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "appears twice");
    st_case("{\"a\":3}", 0, "not an object");
    /* cJSON ends a string at an escaped NUL: "a\u0000x" would read as "a" */
    st_case("{\"a\\u0000x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "header byte 11 escapes a NUL");
    CHECK(parse_image("{\"a\\\\u0000\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, &err) == SL_OK,
          "an escaped backslash before u0000 is no NUL: %s", err.msg);

    /* the reference implementation's rules (huggingface/safetensors) */
    const char *A8 = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    char buf[256];
    snprintf(buf, sizeof buf, "%s  \n ", A8);
    CHECK(parse_image(buf, 8, &err) == SL_OK, "whitespace padding refused: %s", err.msg);
    snprintf(buf, sizeof buf, "%sx", A8);
    st_case(buf, 8, "1 bytes after its JSON object that are not whitespace");
    snprintf(buf, sizeof buf, "%s {}", A8);
    st_case(buf, 8, "after its JSON object");
    snprintf(buf, sizeof buf, " %s", A8);
    st_case(buf, 8, "not a JSON object");
    st_case(A8, 12, "4 bytes after the last tensor's data");
    st_case("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8,
            "bytes [0, 4) of the data section belong to no tensor (before 'a')");
    st_case("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
            "\"b\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[2,2]}}", 4, "overlap");
    st_case("{\"a\xff\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "header byte 11 (0xff) is not UTF-8");
    st_case("{\"a\xc0\xaf\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "not UTF-8");
    st_case("{\"a\x01\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "(0x01) is not UTF-8");
    st_case("{\"__metadata__\":{\"format\":1}}", 0, "__metadata__ must map strings to strings");
    st_case("{\"a\":{\"dtype\":\"F32\",\"shape\":[9000000000000000,9000000000000000,0],\"data_offsets\":[0,0]}}", 0,
            "element count overflows");
    CHECK(parse_image("{\"\xc3\xa9\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, &err) == SL_OK,
          "UTF-8 name refused: %s", err.msg);

    unsigned char *tiny = calloc(4, 1);
    st_file f;
    CHECK(st_parse(&f, "t", tiny, 4, &err) == SL_EINPUT && strstr(err.msg, "too short"), "4-byte file: %s", err.msg);
    st_close(&f);
    unsigned char *huge = calloc(16, 1);
    huge[0] = 0xff;
    huge[7] = 0x7f;
    err.code = 0;
    CHECK(st_parse(&f, "t", huge, 16, &err) == SL_EINPUT && strstr(err.msg, "past the end of the file"),
          "huge header length: %s", err.msg);
    st_close(&f);
}

/* A header of n one-float tensors t0..t{n-1}, back to back; with dup the
 * last one is named t0 again. */
static char *many_header(int n, int dup)
{
    size_t cap = (size_t)n * 80 + 16, k = 0;
    char *h = malloc(cap);
    k += (size_t)snprintf(h + k, cap - k, "{");
    for (int i = 0; i < n; i++)
        k += (size_t)snprintf(h + k, cap - k, "%s\"t%d\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[%d,%d]}",
                              i ? "," : "", dup && i == n - 1 ? 0 : i, 4 * i, 4 * i + 4);
    snprintf(h + k, cap - k, "}");
    return h;
}

static double seconds_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0->tv_nsec);
}

/* Parsing is n log n in the entries: 200,000 of them (a 12 MB header) take
 * far under a second, accepted or refused. A complexity check (the
 * pairwise name check took minutes), not a benchmark. */
static void safetensors_scale_cases(void)
{
    enum { N = 200000 };
    for (int dup = 0; dup < 3; dup++) {
        char *h = many_header(N, dup == 1);
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        sl_error err = {0};
        int rc = parse_image(h, 4 * (size_t)N + (dup == 2 ? 4 : 0), &err);
        double t = seconds_since(&t0);
        if (dup == 0) CHECK(rc == SL_OK, "%d entries refused: %s", N, err.msg);
        if (dup == 1) CHECK(rc == SL_EINPUT && strstr(err.msg, "'t0' appears twice"), "%d entries, one repeated: %s", N, err.msg);
        if (dup == 2) CHECK(rc == SL_EINPUT && strstr(err.msg, "4 bytes after the last tensor"), "%d entries, a tail: %s", N, err.msg);
        CHECK(t < 10.0, "%d header entries (case %d) took %.1f s", N, dup, t); /* pairwise: ~100 s */
        free(h);
    }
}

/* The header length is checked against the file's size before the file is
 * read: a 1 GB (sparse) file declaring a 500 MB header is refused without
 * this process ever holding it. Runs first, while the peak RSS is small. */
static void safetensors_length_first(void)
{
    const char *path = BAD "/sparse.safetensors";
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    unsigned char len[8] = {0};
    uint64_t hl = 500000000;
    for (int i = 0; i < 8; i++) len[i] = (unsigned char)(hl >> (8 * i));
    int ok = fd >= 0 && write(fd, len, 8) == 8 && ftruncate(fd, 1L << 30) == 0;
    if (fd >= 0) close(fd);
    CHECK(ok, "cannot make %s", path);
    st_file f;
    sl_error err = {0};
    int rc = st_open(&f, path, &err);
    st_close(&f);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    CHECK(rc == SL_EINPUT && strstr(err.msg, "header length 500000000 is larger than 100000000 bytes"), "sparse file: %s",
          err.msg);
    CHECK(ru.ru_maxrss < 200 * 1024, "refusing a 500 MB header length peaked at %ld MB resident", ru.ru_maxrss / 1024);
    remove(path);
}

/* ---- config parser ---- */

static void cfg_case(const char *json, const char *needle)
{
    sl_config c;
    sl_error err = {0};
    int rc = sl_config_parse(&c, "config.json", json, &err);
    CHECK(rc == SL_EINPUT && strstr(err.msg, needle), "config %s: rc %d, '%s' lacks '%s'", json, rc, err.msg, needle);
}

static void config_cases(void)
{
    const char *m = "\"arch\":\"mamba\",\"vocab_size\":11,\"d_model\":8,\"n_layers\":2,\"d_state\":4,\"d_conv\":4,\"pooling\":\"mean\"";
    char buf[512];
    snprintf(buf, sizeof buf, "{%s,\"expand\":2}", m);
    sl_config c;
    sl_error err = {0};
    CHECK(sl_config_parse(&c, "config.json", buf, &err) == SL_OK && c.dt_rank == 1 && c.d_inner == 16,
          "valid mamba config: %s", err.msg);
    cfg_case("[]", "not a JSON object");
    /* what Python's json.load would refuse or read otherwise (it keeps the
     * last of two equal keys): never a silent choice */
    snprintf(buf, sizeof buf, "{%s,\"expand\":2} {}", m);
    cfg_case(buf, "text after the JSON object");
    snprintf(buf, sizeof buf, "{%s,\"expand\":2,\"d_model\":16}", m);
    cfg_case(buf, "key 'd_model' appears twice in one object");
    snprintf(buf, sizeof buf, "{%s,\"expand\":2,\"ssm_cfg\":{\"d_state\":4,\"x\":1,\"d_state\":8}}", m);
    cfg_case(buf, "key 'd_state' appears twice");
    snprintf(buf, sizeof buf, "{%s,\"expand\":2,\"d_model\\u0000x\":16}", m);
    cfg_case(buf, "escapes a NUL character");
    cfg_case("{\"vocab_size\":3}", "missing keys 'arch' (");
    cfg_case("{\"arch\":\"rnn\"}", "'arch' must be one of");
    snprintf(buf, sizeof buf, "{%s}", m);
    cfg_case(buf, "missing key 'expand'");
    snprintf(buf, sizeof buf, "{%s,\"expand\":\"2\"}", m);
    cfg_case(buf, "'expand' must be an integer");
    snprintf(buf, sizeof buf, "{%s,\"expand\":0}", m);
    cfg_case(buf, "'expand' = 0 is out of range");
    snprintf(buf, sizeof buf, "{%s,\"expand\":1e300}", m);
    cfg_case(buf, "'expand' = 1e+300 is out of range");
    snprintf(buf, sizeof buf, "{%s,\"expand\":2.5}", m);
    cfg_case(buf, "'expand' must be an integer");
    snprintf(buf, sizeof buf, "{%s,\"expand\":2,\"norm_eps\":-1}", m);
    cfg_case(buf, "'norm_eps'");
    snprintf(buf, sizeof buf, "{%s,\"expand\":2,\"pad_token_id\":11}", m);
    cfg_case(buf, "pad_token_id 11");
    const char *t = "\"arch\":\"transformer\",\"vocab_size\":11,\"d_model\":8,\"n_layers\":1,\"d_ff\":4,\"pooling\":\"cls\"";
    snprintf(buf, sizeof buf, "{%s,\"n_heads\":3,\"norm_first\":false,\"activation\":\"relu\",\"positional\":\"none\"}", t);
    cfg_case(buf, "not divisible by n_heads 3");
    snprintf(buf, sizeof buf, "{%s,\"n_heads\":8,\"norm_first\":false,\"activation\":\"relu\",\"positional\":\"rope\"}", t);
    cfg_case(buf, "even head dimension");
    snprintf(buf, sizeof buf, "{%s,\"n_heads\":2,\"activation\":\"swish\"}", t);
    cfg_case(buf, "'activation' must be one of");
    snprintf(buf, sizeof buf, "{%s,\"n_heads\":2,\"norm_first\":1,\"activation\":\"relu\",\"positional\":\"none\"}", t);
    cfg_case(buf, "'norm_first' must be true or false");
    snprintf(buf, sizeof buf, "{%s,\"n_heads\":2,\"norm_first\":false,\"activation\":\"relu\",\"positional\":\"learned\"}", t);
    cfg_case(buf, "needs key 'max_len'");
}

/* ---- files for the binary ---- */

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(data, 1, n, f);
        fclose(f);
    }
}

static unsigned char *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*n);
    if (fread(b, 1, *n, f) != *n) *n = 0;
    fclose(f);
    return b;
}

/* A copy of a fixture model whose safetensors header went through edit(). */
static void model_variant(const char *name, const char *from, void (*edit)(cJSON *), int nan_weights)
{
    char dir[256], path[300], cmd[1024];
    snprintf(dir, sizeof dir, BAD "/%s", name);
    snprintf(cmd, sizeof cmd, "rm -rf %s && mkdir -p %s && cp %s/config.json %s/", dir, dir, from, dir);
    if (system(cmd)) return;
    snprintf(path, sizeof path, "%s/model.safetensors", from);
    size_t n;
    unsigned char *b = read_file(path, &n);
    if (!b) return;
    size_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = (hl << 8) | b[i];
    cJSON *h = cJSON_ParseWithLength((char *)b + 8, hl);
    if (edit) edit(h);
    char *text = cJSON_PrintUnformatted(h);
    size_t nhl = strlen(text), data = n - 8 - hl;
    unsigned char *o = malloc(8 + nhl + data);
    for (int i = 0; i < 8; i++) o[i] = (unsigned char)(nhl >> (8 * i));
    memcpy(o + 8, text, nhl);
    memcpy(o + 8 + nhl, b + 8 + hl, data);
    /* 0xffffffff is a NaN; the first 32 bytes are the pad token's embedding
     * row in the fixtures (8 floats), which no valid position reads */
    if (nan_weights) memset(o + 8 + nhl, 0xff, 32);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    write_file(path, o, 8 + nhl + data);
    free(o);
    free(text);
    cJSON_Delete(h);
    free(b);
}

/* renamed, not deleted: its bytes must still belong to a tensor */
static void drop_in_proj(cJSON *h)
{
    cJSON *t = cJSON_DetachItemFromObject(h, "layers.1.mixer.in_proj.weight");
    cJSON_AddItemToObject(h, "layers.1.mixer.in_proj.weigth", t);
}
static void add_extra(cJSON *h)
{
    cJSON_AddItemToObject(h, "layers.9.mixer.D", cJSON_Parse("{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}"));
}
static void transpose_out_proj(cJSON *h)
{
    cJSON *s = cJSON_GetObjectItem(cJSON_GetObjectItem(h, "layers.0.mixer.out_proj.weight"), "shape");
    cJSON_ReplaceItemInArray(s, 0, cJSON_CreateNumber(16));
    cJSON_ReplaceItemInArray(s, 1, cJSON_CreateNumber(8));
}
static void dtype_i32(cJSON *h)
{
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(h, "norm_f.weight"), "dtype", cJSON_CreateString("I32"));
}

/* A dataset with the fixture's shape: 4 examples of 12, vocabulary 11. */
typedef struct {
    int n, L;
    long long tokens[64][16];
    long long labels[64], lengths[64], of_token[16];
    int of_token_len, with_lengths, tokens_float, skip_labels;
} toy;

static toy toy_default(void)
{
    toy t;
    memset(&t, 0, sizeof t);
    t.n = 4;
    t.L = 12;
    t.of_token_len = 11;
    t.with_lengths = 1;
    for (int e = 0; e < t.n; e++) {
        t.lengths[e] = 12 - 3 * e;
        t.labels[e] = e % 2;
        for (int i = 0; i < t.lengths[e]; i++) t.tokens[e][i] = 1 + (e + i) % 10;
    }
    for (int v = 0; v < 11; v++) t.of_token[v] = v == 0 ? -1 : v % 3;
    return t;
}

static void h5_write(hid_t f, const char *name, hid_t type, int rank, const hsize_t *dims, const void *data)
{
    hid_t s = H5Screate_simple(rank, dims, NULL);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t d = H5Dcreate2(f, name, type == H5T_NATIVE_FLOAT ? H5T_IEEE_F32LE : H5T_STD_I64LE, s, lcpl, H5P_DEFAULT,
                         H5P_DEFAULT);
    H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    H5Dclose(d);
    H5Pclose(lcpl);
    H5Sclose(s);
}

static void write_toy(const char *name, const toy *t)
{
    char path[256];
    snprintf(path, sizeof path, BAD "/%s", name);
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    long long tok[64 * 16];
    float ftok[64 * 16];
    for (int e = 0; e < t->n; e++)
        for (int i = 0; i < t->L; i++) ftok[e * t->L + i] = (float)(tok[e * t->L + i] = t->tokens[e][i]);
    hsize_t dims[2] = {(hsize_t)t->n, (hsize_t)t->L}, n1 = (hsize_t)t->n, nv = (hsize_t)t->of_token_len, nf = 3;
    if (t->tokens_float) h5_write(f, "tokens", H5T_NATIVE_FLOAT, 2, dims, ftok);
    else h5_write(f, "tokens", H5T_NATIVE_LLONG, 2, dims, tok);
    if (!t->skip_labels) h5_write(f, "labels", H5T_NATIVE_LLONG, 1, &n1, t->labels);
    if (t->with_lengths) h5_write(f, "lengths", H5T_NATIVE_LLONG, 1, &n1, t->lengths);
    h5_write(f, "families/of_token", H5T_NATIVE_LLONG, 1, &nv, t->of_token);
    const char *names[3] = {"a", "b", "c"};
    hid_t st = H5Tcopy(H5T_C_S1);
    H5Tset_size(st, H5T_VARIABLE);
    hid_t s = H5Screate_simple(1, &nf, NULL), d = H5Dcreate2(f, "families/names", st, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(d, st, H5S_ALL, H5S_ALL, H5P_DEFAULT, names);
    H5Dclose(d);
    H5Sclose(s);
    H5Tclose(st);
    H5Fclose(f);
}

/* Runs `seqlens ARGS` and checks status 2, one stderr line holding needle,
 * and no output (nor OUT.tmp) left behind. */
static void expect_bad(const char *args, const char *needle)
{
    char cmd[2048], out[64] = BAD "/out.h5", tmp[80];
    snprintf(tmp, sizeof tmp, "%s.tmp", out);
    remove(out);
    snprintf(cmd, sizeof cmd, "%s %s > " BAD "/stdout.txt 2> " BAD "/stderr.txt", seqlens, args);
    int st = system(cmd);
    int code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    size_t n = 0;
    unsigned char *e = read_file(BAD "/stderr.txt", &n);
    char *msg = e ? strndup((char *)e, n) : strdup("");
    int lines = 0;
    for (size_t i = 0; i < n; i++) lines += msg[i] == '\n';
    CHECK(code == 2, "`seqlens %s`: exit %d, want 2 (stderr: %s)", args, code, msg);
    CHECK(lines == 1, "`seqlens %s`: %d stderr lines, want 1: %s", args, lines, msg);
    CHECK(strstr(msg, needle) != NULL, "`seqlens %s`: stderr '%s' does not name '%s'", args, msg, needle);
    CHECK(access(out, F_OK) != 0 && access(tmp, F_OK) != 0, "`seqlens %s` left %s behind", args, out);
    free(msg);
    free(e);
}

static void model_cases(void)
{
    char args[1024];
    mkdir(BAD "/nocfg", 0755);
    expect_bad("info " BAD "/nocfg", "config.json: cannot open");
    system("mkdir -p " BAD "/badjson && echo '{\"arch\": ' > " BAD "/badjson/config.json");
    expect_bad("info " BAD "/badjson", "config.json: not a JSON object");

    model_variant("missing", FIXM, drop_in_proj, 0);
    expect_bad("info " BAD "/missing", "missing tensor 'layers.1.mixer.in_proj.weight' [32, 8]");
    model_variant("extra", FIXM, add_extra, 0);
    expect_bad("info " BAD "/extra", "'n_layers' is 2 (config) but the weights give 10 (tensor 'layers.9.mixer.D'");
    model_variant("shape", FIXM, transpose_out_proj, 0);
    expect_bad("info " BAD "/shape", "'layers.0.mixer.out_proj.weight' has shape [16, 8]");
    model_variant("dtype", FIXM, dtype_i32, 0);
    expect_bad("info " BAD "/dtype", "unsupported dtype I32");

    model_variant("trunc", FIXM, NULL, 0);
    system("truncate -s 1000 " BAD "/trunc/model.safetensors");
    expect_bad("eval " BAD "/trunc " FIXM "/data.h5 -o " BAD "/out.h5", "model.safetensors");
    system("mkdir -p " BAD "/empty && cp " FIXM "/config.json " BAD "/empty/ && : > " BAD "/empty/model.safetensors");
    expect_bad("eval " BAD "/empty " FIXM "/data.h5 -o " BAD "/out.h5", "too short");
    system("mkdir -p " BAD "/hdrlen && cp " FIXM "/config.json " BAD "/hdrlen/ && printf '\\377\\377\\377\\0\\0\\0\\0\\0{}' > " BAD "/hdrlen/model.safetensors");
    expect_bad("info " BAD "/hdrlen", "runs past the end of the file");
    system("mkdir -p " BAD "/nojson && cp " FIXM "/config.json " BAD "/nojson/ && printf '\\004\\0\\0\\0\\0\\0\\0\\0abcd' > " BAD "/nojson/model.safetensors");
    expect_bad("info " BAD "/nojson", "header is not a JSON object");

    /* NaN weights the run never reads: the results, then a warning (NaN
     * logits are an error: tests/test_hostile_compute.sh) */
    model_variant("nan", FIXM, NULL, 1);
    snprintf(args, sizeof args, "%s eval " BAD "/nan " FIXM "/data.h5 > /dev/null 2> " BAD "/nan.txt", seqlens);
    int st = system(args);
    size_t n = 0;
    unsigned char *e = read_file(BAD "/nan.txt", &n);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "NaN weights: exit %d", WEXITSTATUS(st));
    char *msg = e ? strndup((char *)e, n) : NULL;
    CHECK(msg && strstr(msg, "8 weights are NaN or infinite"), "NaN weights: no warning");
    free(msg);
    free(e);
}

/* ---- torch.save weights: a model directory with a hostile model.pt ---- */

#define FIXPT "tests/fixtures/pt/tf_pt"

/* BAD/NAME holds tf_pt's config.json and a model.pt of pickle p over a
 * storage of storage_bytes; info and eval on it exit 2 naming needle. */
static void pt_case(const char *name, const pkb *p, size_t storage_bytes, const char *needle)
{
    char dir[256], path[300], cmd[1024];
    snprintf(dir, sizeof dir, BAD "/%s", name);
    snprintf(cmd, sizeof cmd, "rm -rf %s && mkdir -p %s && cp " FIXPT "/config.json %s/", dir, dir, dir);
    CHECK(system(cmd) == 0, "%s", cmd);
    snprintf(path, sizeof path, "%s/model.pt", dir);
    archive_with(path, p, storage_bytes, NULL, 0);
    snprintf(cmd, sizeof cmd, "info %s", dir);
    expect_bad(cmd, needle);
    snprintf(cmd, sizeof cmd, "eval %s " FIXT "/data.h5 -o " BAD "/out.h5", dir);
    expect_bad(cmd, needle);
}

static void pt_cases(void)
{
    pkb *p = calloc(1, sizeof *p);
    /* an opcode a state_dict never uses */
    put(p, "\x80\x02}\xff.", 5);
    pt_case("pt_opcode", p, sizeof SIX, "model.pt: archive/data.pkl: byte 3: opcode 0xff");
    /* code, by either name of the module */
    static const char *const mods[] = {"os", "posix"};
    for (int i = 0; i < 2; i++) {
        char needle[64];
        p->n = 0;
        put(p, "\x80\x02", 2);
        glob(p, mods[i], "system");
        ustr(p, "touch " BAD "/pwned");
        put(p, "\x85R.", 3);
        snprintf(needle, sizeof needle, "global %s.system is not allowed", mods[i]);
        pt_case("pt_global", p, sizeof SIX, needle);
        CHECK(access(BAD "/pwned", F_OK) != 0, "the pickle's command ran");
    }
    /* a storage shorter than the pickle says, a view past its storage */
    one_tensor(p, &A23);
    pt_case("pt_storage", p, 5 * sizeof(float), "storage data/0 holds 20 bytes, the pickle says 6 elements of F32");
    one_tensor(p, &(view){"FloatStorage", "0", 6, 0, 2, {2, 3}, {4, 1}});
    pt_case("pt_strides", p, sizeof SIX, "reaches element 6 of storage '0'");
    /* deep recursion: MARKs, then tuples inside tuples */
    p->n = 0;
    put(p, "\x80\x02", 2);
    for (int i = 0; i < 60000; i++) op(p, '(');
    pt_case("pt_marks", p, sizeof SIX, "MARKs nested deeper than 32");
    p->n = 0;
    put(p, "\x80\x02)", 3);
    for (int i = 0; i < 60000; i++) op(p, 0x85);
    pt_case("pt_tuples", p, sizeof SIX, "nested deeper than 32");
    free(p);
}

static void data_cases(void)
{
    toy t = toy_default();
    write_toy("ok.h5", &t);
    char args[1024];
    snprintf(args, sizeof args, "%s eval " FIXM " " BAD "/ok.h5 > /dev/null", seqlens);
    CHECK(system(args) == 0, "the valid toy dataset is refused");

#define DATA_CASE(file, cmd, needle) \
    expect_bad(cmd " " FIXM " " BAD "/" file " -o " BAD "/out.h5", needle)
    write_file(BAD "/text.h5", "not hdf5\n", 9);
    DATA_CASE("text.h5", "eval", "text.h5: not an HDF5 file");
    DATA_CASE("absent.h5", "eval", "absent.h5: cannot open");
    t = toy_default(); t.tokens[2][3] = 11; write_toy("oov.h5", &t);
    DATA_CASE("oov.h5", "eval", "/tokens[2, 3] = 11 is outside the vocabulary [0, 11)");
    t = toy_default(); t.tokens[1][0] = -4; write_toy("neg.h5", &t);
    DATA_CASE("neg.h5", "capture --hook embed", "/tokens[1, 0] = -4 is outside the vocabulary");
    t = toy_default(); t.labels[3] = 2; write_toy("label.h5", &t);
    DATA_CASE("label.h5", "eval", "/labels[3] = 2 is outside [0, 1]");
    t = toy_default(); t.lengths[0] = 0; write_toy("len0.h5", &t);
    DATA_CASE("len0.h5", "eval", "/lengths[0] = 0 is outside [1, 12]");
    t = toy_default(); t.lengths[1] = 13; write_toy("len13.h5", &t);
    DATA_CASE("len13.h5", "eval", "/lengths[1] = 13 is outside [1, 12]");
    t = toy_default(); t.of_token_len = 12; t.of_token[11] = 0; write_toy("fam.h5", &t);
    DATA_CASE("fam.h5", "eval", "/families/of_token has 12 entries, expected at most 11");
    /* a shorter table: the model padded its embedding (MambaLMHeadModel);
     * the ids past it belong to no family */
    t = toy_default(); t.of_token_len = 10; write_toy("famshort.h5", &t);
    limited_case("eval " FIXM " " BAD "/famshort.h5", 0, NULL, 30);
    limited_case("ablate " FIXM " " BAD "/famshort.h5 --family all --bootstrap 0", 0, NULL, 30);
    t = toy_default(); t.of_token[4] = 3; write_toy("famidx.h5", &t);
    DATA_CASE("famidx.h5", "eval", "/families/of_token[4] = 3 is outside [-1, 2]");
    t = toy_default(); t.skip_labels = 1; write_toy("nolabels.h5", &t);
    DATA_CASE("nolabels.h5", "eval", "missing dataset /labels");
    t = toy_default(); t.tokens_float = 1; write_toy("float.h5", &t);
    DATA_CASE("float.h5", "eval", "/tokens must hold integers");
    t = toy_default(); for (int e = 0; e < 4; e++) t.labels[e] = 1; write_toy("oneclass.h5", &t);
    DATA_CASE("oneclass.h5", "eval", "AUC is undefined");
    DATA_CASE("oneclass.h5", "reverse-test", "AUC is undefined");
    DATA_CASE("oov.h5", "reverse-test", "outside the vocabulary");
    t = toy_default(); t.with_lengths = 0; memset(t.tokens[2], 0, sizeof t.tokens[2]); write_toy("allpad.h5", &t);
    DATA_CASE("allpad.h5", "eval", "example 2 has no non-pad token");
    /* learned positions cover max_len 16; 20 positions do not fit */
    t = toy_default(); t.L = 16; t.lengths[0] = 16; for (int i = 0; i < 16; i++) t.tokens[0][i] = 3; write_toy("long.h5", &t);
    snprintf(args, sizeof args, "%s eval " FIXT " " BAD "/long.h5 > /dev/null 2>&1", seqlens);
    CHECK(system(args) == 0, "16 positions within max_len 16 refused");
}

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

/* Runs `seqlens ARGS` for at most `seconds` and, except under ASan (which
 * reserves terabytes of address space), in `gib` GiB of address space.
 * Returns the exit status (minus the signal when killed); msg receives
 * stderr, *took the wall time. */
static int run_limited(const char *args, int seconds, int gib, char *msg, size_t msg_n, double *took)
{
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    if (pid == 0) {
        int e = open(BAD "/limited.txt", O_WRONLY | O_CREAT | O_TRUNC, 0644), o = open("/dev/null", O_WRONLY);
        if (e < 0 || o < 0 || dup2(e, 2) < 0 || dup2(o, 1) < 0) _exit(126);
        if (!UNDER_ASAN && !strstr(seqlens, "asan")) {
            struct rlimit r = {(rlim_t)gib << 30, (rlim_t)gib << 30};
            setrlimit(RLIMIT_AS, &r);
        }
        alarm((unsigned)seconds); /* survives exec: SIGALRM ends a hang */
        char cmd[2048];
        snprintf(cmd, sizeof cmd, "exec %s %s", seqlens, args);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    *took = seconds_since(&t0);
    size_t n = 0;
    unsigned char *e = read_file(BAD "/limited.txt", &n);
    snprintf(msg, msg_n, "%.*s", (int)n, e ? (char *)e : "");
    free(e);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
}

static void limited_case(const char *args, int want, const char *needle, double max_seconds)
{
    char msg[2048];
    double took;
    int code = run_limited(args, 30, 2, msg, sizeof msg, &took);
    CHECK(code == want, "`seqlens %s`: exit %d, want %d (stderr: %s)", args, code, want, msg);
    CHECK(!needle || strstr(msg, needle), "`seqlens %s`: stderr '%s' does not name '%s'", args, msg, needle);
    CHECK(took < max_seconds, "`seqlens %s` took %.1f s (at most %.0f)", args, took, max_seconds);
}

static hid_t reopen(const char *name)
{
    char path[256];
    snprintf(path, sizeof path, BAD "/%s", name);
    return H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
}

/* n family names family0.., the last one repeating the first with dup. */
static void replace_names(const char *file, int n, int dup)
{
    hid_t f = reopen(file);
    H5Ldelete(f, "families/names", H5P_DEFAULT);
    char **names = malloc((size_t)n * sizeof *names);
    for (int i = 0; i < n; i++) {
        names[i] = malloc(24);
        snprintf(names[i], 24, "family%d", dup && i == n - 1 ? 0 : i);
    }
    hsize_t nn = (hsize_t)n;
    hid_t st = H5Tcopy(H5T_C_S1);
    H5Tset_size(st, H5T_VARIABLE);
    hid_t sp = H5Screate_simple(1, &nn, NULL), d = H5Dcreate2(f, "families/names", st, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(d, st, H5S_ALL, H5S_ALL, H5P_DEFAULT, names);
    H5Dclose(d);
    H5Sclose(sp);
    H5Tclose(st);
    H5Fclose(f);
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

/* /labels as an enum on int8, as h5py stores numpy bool (or with a member
 * worth 2). */
static void enum_labels(const char *file, int with_two)
{
    hid_t f = reopen(file);
    H5Ldelete(f, "labels", H5P_DEFAULT);
    hid_t e = H5Tenum_create(H5T_STD_I8LE);
    signed char v = 0;
    H5Tenum_insert(e, "FALSE", &v);
    v = with_two ? 2 : 1;
    H5Tenum_insert(e, "TRUE", &v);
    signed char data[4] = {0, v, 0, v};
    hsize_t n = 4;
    hid_t sp = H5Screate_simple(1, &n, NULL), d = H5Dcreate2(f, "labels", e, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(d, e, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    H5Dclose(d);
    H5Sclose(sp);
    H5Tclose(e);
    H5Fclose(f);
}

/* The toy's /tokens replaced by one [2, width] in chunks of chunk_cols
 * columns, only the first 8 columns written. */
static void write_wide_tokens(const char *name, hsize_t width, hsize_t chunk_cols)
{
    toy t = toy_default();
    t.n = 2;
    t.lengths[0] = 3;
    t.lengths[1] = 5;
    write_toy(name, &t);
    hid_t f = reopen(name);
    H5Ldelete(f, "tokens", H5P_DEFAULT);
    hsize_t dims[2] = {2, width}, chunk[2] = {1, chunk_cols}, slab[2] = {2, 8}, at[2] = {0, 0};
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 2, chunk);
    hid_t sp = H5Screate_simple(2, dims, NULL), ms = H5Screate_simple(2, slab, NULL);
    hid_t d = H5Dcreate2(f, "tokens", H5T_STD_I64LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    long long few[2][8];
    for (int e = 0; e < 2; e++)
        for (int i = 0; i < 8; i++) few[e][i] = t.tokens[e][i];
    H5Sselect_hyperslab(sp, H5S_SELECT_SET, at, NULL, slab, NULL);
    H5Dwrite(d, H5T_NATIVE_LLONG, ms, sp, H5P_DEFAULT, few);
    H5Dclose(d);
    H5Sclose(ms);
    H5Sclose(sp);
    H5Pclose(dcpl);
    H5Fclose(f);
}

/* Files that declare more than they hold, or hold it elsewhere. */
static void hostile_data_cases(void)
{
    /* /tokens [2, 2^30] in 4096-wide chunks, only the first written: a
     * 16 GiB declaration in a small file, refused at once */
    write_wide_tokens("huge.h5", 1ull << 30, 4096);
    limited_case("eval " FIXM " " BAD "/huge.h5", 2, "huge.h5: /tokens declares shape [2, 1073741824]", 10);
    limited_case("baseline " BAD "/huge.h5", 2, "/tokens declares shape [2, 1073741824]", 10);
    /* 16 MB declared, within what is always read, but in 8-column chunks:
     * 262,144 chunks, 2 written. Reading them took HDF5 gigabytes (a chunk's
     * bookkeeping each) and seconds (the fuzzer's find) */
    write_wide_tokens("chunks.h5", 1ull << 20, 8);
    limited_case("eval " FIXM " " BAD "/chunks.h5", 2, "chunks.h5: /tokens declares 262144 chunks but the file has written 2 of them", 10);

    /* 100,000 family names open in well under the minute pairwise
     * comparison took; a repeat among them is found as fast */
    toy t = toy_default();
    write_toy("names.h5", &t);
    replace_names("names.h5", 100000, 0);
    limited_case("eval " FIXM " " BAD "/names.h5", 0, NULL, 20); /* quadratic: 42 s */
    replace_names("names.h5", 100000, 1);
    limited_case("eval " FIXM " " BAD "/names.h5", 2, "family name 'family0' appears twice in /families/names", 20);

    /* h5py's bool labels */
    write_toy("bool.h5", &t);
    enum_labels("bool.h5", 0);
    limited_case("eval " FIXM " " BAD "/bool.h5", 0, NULL, 30);
    enum_labels("bool.h5", 1);
    limited_case("eval " FIXM " " BAD "/bool.h5", 2, "/labels[1] = 2 is outside [0, 1]", 30);

    /* an external link to a FIFO would block in HDF5's open */
    remove(BAD "/link.fifo");
    CHECK(mkfifo(BAD "/link.fifo", 0644) == 0, "mkfifo failed");
    write_toy("elink.h5", &t);
    hid_t f = reopen("elink.h5");
    H5Ldelete(f, "tokens", H5P_DEFAULT);
    H5Lcreate_external(BAD "/link.fifo", "/tokens", f, "tokens", H5P_DEFAULT, H5P_DEFAULT);
    H5Fclose(f);
    limited_case("eval " FIXM " " BAD "/elink.h5", 2, "/tokens is a link to another file", 10);

    /* raw data in an external file: it could be any file at all */
    write_toy("extern.h5", &t);
    f = reopen("extern.h5");
    H5Ldelete(f, "labels", H5P_DEFAULT);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_external(dcpl, BAD "/labels.bin", 0, 4 * 8);
    hsize_t n = 4;
    hid_t sp = H5Screate_simple(1, &n, NULL);
    hid_t d = H5Dcreate2(f, "labels", H5T_STD_I64LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Dwrite(d, H5T_NATIVE_LLONG, H5S_ALL, H5S_ALL, H5P_DEFAULT, t.labels);
    H5Dclose(d);
    H5Sclose(sp);
    H5Pclose(dcpl);
    H5Fclose(f);
    limited_case("eval " FIXM " " BAD "/extern.h5", 2, "/labels keeps its data outside the file", 10);

    /* a /split that puts every example in training: probe's message names
     * the dataset (it named nothing) */
    write_toy("alltrain.h5", &t);
    f = reopen("alltrain.h5");
    long long zeros[4] = {0, 0, 0, 0};
    h5_write(f, "split", H5T_NATIVE_LLONG, 1, &n, zeros);
    H5Fclose(f);
    limited_case("probe " FIXM " " BAD "/alltrain.h5 --layer 0 -o " BAD "/probe.json", 2,
                 BAD "/alltrain.h5: the test split holds no probe rows", 30);

    /* the CLI's file checks: MODEL must be a directory */
    limited_case("info " FIXM "/config.json", 2, "config.json: is not a directory", 10);
}

static void option_cases(void)
{
    expect_bad("eval " FIXM " " FIXM "/data.h5 --frobnicate 3", "unknown option --frobnicate");
    expect_bad("eval " FIXM " " FIXM "/data.h5 --examples 3", "--examples '3'");
    expect_bad("eval " FIXM " " FIXM "/data.h5 --examples 2:9", "--examples 2:9 is outside the 4 examples");
    expect_bad("eval " FIXM " " FIXM "/data.h5 --threads 0", "--threads '0'");
    expect_bad("eval " FIXM " " FIXM "/data.h5 --device cuda", "--device cuda");
    expect_bad("capture " FIXM " " FIXM "/data.h5 --hook blocks.7.resid_post -o " BAD "/out.h5", "--hook 'blocks.7.resid_post' matches no hook point");
    expect_bad("capture " FIXM " " FIXM "/data.h5 --hook embed", "-o OUT.h5 is required");
    expect_bad("capture " FIXM " " FIXM "/data.h5 -o " BAD "/out.h5", "--hook PATTERN is required");
    expect_bad("capture " FIXM " " FIXM "/data.h5 --hook embed --dtype f64 -o " BAD "/out.h5", "--dtype 'f64'");
    expect_bad("reverse-test " FIXM " " FIXM "/data.h5 --seed -3 -o " BAD "/out.h5", "--seed '-3'");
    expect_bad("ablate " FIXM " " FIXM "/data.h5 -o " BAD "/out.h5", "give one of --family NAME|all, --layer I|all and --component");
    expect_bad("ablate " FIXM " " FIXM "/data.h5 --family all --layer 0 -o " BAD "/out.h5", "give one of --family");
    expect_bad("ablate " FIXM " " FIXM "/data.h5 --family motif_z -o " BAD "/out.h5", "--family 'motif_z': " FIXM "/data.h5 has no such family (it has: motif_a, motif_b, filler)");
    expect_bad("ablate " FIXM " " FIXM "/data.h5 --family all --mode zeroes -o " BAD "/out.h5", "--mode: family ablation takes");
    /* skip is a family mode of Mamba models only: a Transformer refuses it */
    expect_bad("ablate " FIXT " " FIXT "/data.h5 --family all --mode skip -o " BAD "/out.h5",
               "ablate --mode skip: a transformer has no step size delta to set to 0");
    expect_bad("ablate " FIXM " " FIXM "/data.h5 --layer 2 -o " BAD "/out.h5", "--layer '2': expected all or layer indices 0..1");
    expect_bad("ablate " FIXM " " FIXM "/data.h5 --layer all --mode zero -o " BAD "/out.h5", "layer ablation skip or mean");
    expect_bad("ablate " FIXM " " FIXM "/data.h5 --layer all --bootstrap -1 -o " BAD "/out.h5", "--bootstrap '-1'");
    expect_bad("gym --task parity --n 10 --len 64 -o " BAD "/out.h5", "--task: expected count, order, distant or recall");
    expect_bad("gym --task count --n 10 --len 8 -o " BAD "/out.h5", "--len 8: at least 32 positions");
    expect_bad("gym --task count --n 10 --len 64 --noise 0.7 -o " BAD "/out.h5", "--noise '0.7'");
    expect_bad("gym --task count --len 64 -o " BAD "/out.h5", "--task, --n, --len and -o are required");
    expect_bad("baseline " BAD "/text.h5 -o " BAD "/out.h5", "text.h5: not an HDF5 file");
    expect_bad("baseline " BAD "/oov.h5 -o " BAD "/out.h5", "outside the vocabulary");
    expect_bad("attribute " FIXM " " FIXM "/data.h5 --method saliency -o " BAD "/out.h5", "--method: expected grad-input or ig");
    expect_bad("attribute " FIXM " " FIXM "/data.h5 --method ig --baseline mean -o " BAD "/out.h5", "--baseline: expected pad or zero");
    expect_bad("attribute " FIXM " " FIXM "/data.h5 --method ig --steps 0 -o " BAD "/out.h5", "--steps '0'");
    expect_bad("attribute " FIXM " " BAD "/oov.h5 --tokens " BAD "/out.h5", "outside the vocabulary");
    expect_bad("probe " FIXM " " FIXM "/data.h5 --site middle -o " BAD "/out.h5", "--site: expected pooled, last or tokens");
    expect_bad("probe " FIXM " " FIXM "/data.h5 --target nosuch -o " BAD "/out.h5", "no dataset /concepts/nosuch");
    expect_bad("inspect " FIXM " " BAD "/oov.h5 -o " BAD "/out.h5", "outside the vocabulary");
    expect_bad("compare " FIXM " " FIXT " " BAD "/oneclass.h5 -o " BAD "/out.h5", "AUC is undefined");
    expect_bad("nonsense", "unknown command 'nonsense'");
    expect_bad("eval " FIXM, "usage: seqlens eval");
}

int main(void)
{
    sl_h5_quiet();
    seqlens = getenv("SEQLENS") ? getenv("SEQLENS") : "bin/seqlens";
    system("mkdir -p " BAD);
    safetensors_length_first();
    safetensors_cases();
    safetensors_scale_cases();
    config_cases();
    model_cases();
    pt_cases();
    data_cases();
    hostile_data_cases();
    option_cases();
    return TEST_SUMMARY();
}
