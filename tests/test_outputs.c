/* The writers' safety rules at the library level (design.md section 1):
 * the temporary file is created exclusively (a symlink or directory planted
 * at PATH.tmp is never written through), a failed write or create names
 * the path and the system's reason and leaves nothing behind, and
 * sl_outpath_check / sl_outdir_check refuse outputs that are inputs or new
 * files in an input directory (its subdirectories are the user's), and
 * unwritable places. A write that fails is
 * made with a file-size limit (RLIMIT_FSIZE, EFBIG), which needs no root,
 * in a child process so that the limit stays there. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/atomic.h"
#include "core/dataset.h"
#include "core/h5out.h"
#include "core/outpath.h"
#include "tests/testing.h"

#define DIR "build/tests/outputs"

static char *slurp(const char *path)
{
    static char buf[256];
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) fclose(f);
    buf[n] = 0;
    return buf;
}

static int exists(const char *path)
{
    struct stat st;
    return !lstat(path, &st);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void atomic_cases(void)
{
    sl_error err = {0};
    sl_atomic a;
    /* a symlink at OUT.tmp: removed, its target untouched */
    write_file(DIR "/victim", "precious");
    unlink(DIR "/a.json");
    symlink("victim", DIR "/a.json.tmp");
    CHECK(sl_atomic_open(&a, DIR "/a.json", &err) == 0, "atomic open over a symlink: %s", err.msg);
    fputs("{}\n", a.f);
    CHECK(sl_atomic_commit(&a, &err) == 0, "atomic commit: %s", err.msg);
    CHECK(!strcmp(slurp(DIR "/victim"), "precious"), "the symlink's target was written: '%s'", slurp(DIR "/victim"));
    CHECK(!strcmp(slurp(DIR "/a.json"), "{}\n"), "the output holds '%s'", slurp(DIR "/a.json"));
    CHECK(!exists(DIR "/a.json.tmp"), "a.json.tmp left behind");

    /* a stale OUT.tmp (a killed run's) does not block the rerun */
    write_file(DIR "/a.json.tmp", "half");
    memset(&err, 0, sizeof err);
    CHECK(sl_atomic_open(&a, DIR "/a.json", &err) == 0, "atomic open over a stale file: %s", err.msg);
    sl_atomic_abort(&a);
    CHECK(!exists(DIR "/a.json.tmp"), "abort left a.json.tmp");
    CHECK(!strcmp(slurp(DIR "/a.json"), "{}\n"), "abort changed the previous output");

    /* a directory at OUT.tmp: a clear failure, the directory kept */
    mkdir(DIR "/d.json.tmp", 0777);
    memset(&err, 0, sizeof err);
    CHECK(sl_atomic_open(&a, DIR "/d.json", &err) == SL_ERUNTIME, "atomic open over a directory succeeded");
    CHECK(strstr(err.msg, DIR "/d.json.tmp") && strstr(err.msg, strerror(EEXIST)), "message: %s", err.msg);
    rmdir(DIR "/d.json.tmp");

    /* a missing directory: the path and the reason */
    memset(&err, 0, sizeof err);
    CHECK(sl_atomic_open(&a, DIR "/nosuch/a.json", &err) == SL_ERUNTIME, "atomic open in a missing directory succeeded");
    CHECK(strstr(err.msg, DIR "/nosuch/a.json.tmp") && strstr(err.msg, strerror(ENOENT)), "message: %s", err.msg);
}

static int write_h5(const char *path, hsize_t n, sl_error *err)
{
    sl_h5out o = {.file = -1}; /* aborted below even when x could not be allocated */
    sl_h5set s = {.ds = -1};
    float *x = calloc(n, sizeof *x);
    int rc = x ? sl_h5out_create(&o, path, err) : sl_fail(err, SL_ERUNTIME, "out of memory");
    if (!rc) rc = sl_h5out_dataset(&o, &s, "x", H5OUT_F32, 1, &n, err);
    if (!rc) rc = sl_h5out_write(&o, &s, 0, n, x, err);
    sl_h5set_close(&s);
    if (!rc) rc = sl_h5out_commit(&o, err);
    else sl_h5out_abort(&o);
    free(x);
    return rc;
}

static void h5_cases(void)
{
    sl_error err = {0};
    write_file(DIR "/victim", "precious");
    unlink(DIR "/s.h5");
    symlink("victim", DIR "/s.h5.tmp");
    CHECK(write_h5(DIR "/s.h5", 100, &err) == 0, "h5 over a symlink: %s", err.msg);
    CHECK(!strcmp(slurp(DIR "/victim"), "precious"), "HDF5 wrote through the symlink at s.h5.tmp");
    CHECK(H5Fis_hdf5(DIR "/s.h5") > 0 && !exists(DIR "/s.h5.tmp"), "s.h5 not written, or s.h5.tmp left");

    memset(&err, 0, sizeof err);
    CHECK(write_h5(DIR "/nosuch/s.h5", 10, &err) == SL_ERUNTIME, "h5 into a missing directory succeeded");
    CHECK(strstr(err.msg, DIR "/nosuch/s.h5.tmp") && strstr(err.msg, strerror(ENOENT)), "message: %s", err.msg);

    /* a set left open at commit (a caller's slip) is closed with the file */
    sl_h5out o;
    sl_h5set s = {.ds = -1};
    hsize_t n = 4;
    float x[4] = {1, 2, 3, 4};
    memset(&err, 0, sizeof err);
    int rc = sl_h5out_create(&o, DIR "/open.h5", &err);
    if (!rc) rc = sl_h5out_dataset(&o, &s, "x", H5OUT_F32, 1, &n, &err);
    if (!rc) rc = sl_h5out_write(&o, &s, 0, n, x, &err);
    if (!rc) rc = sl_h5out_commit(&o, &err);
    CHECK(rc == 0, "commit with a set open: %s", err.msg);
    hid_t f = H5Fopen(DIR "/open.h5", H5F_ACC_RDONLY, H5P_DEFAULT), d = f < 0 ? -1 : H5Dopen2(f, "x", H5P_DEFAULT);
    float y[4] = {0};
    CHECK(d >= 0 && H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, y) >= 0 && y[3] == 4,
          "the set left open was not written whole");
    if (d >= 0) H5Dclose(d);
    if (f >= 0) H5Fclose(f);
}

/* In a child under a 16 KB file-size limit: every write fails with EFBIG
 * (the stand-in for a full disk), and the child must report it and exit
 * 1, not crash in HDF5's exit handler. */
static void limited_cases(void)
{
    static const char *const WHAT[2] = {"HDF5", "JSON"};
    for (int k = 0; k < 2; k++) {
        const char *out = k ? DIR "/big.json" : DIR "/big.h5";
        char tmp[256];
        snprintf(tmp, sizeof tmp, "%s.tmp", out);
        unlink(out);
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
            signal(SIGXFSZ, SIG_IGN);
            struct rlimit r = {16384, 16384};
            setrlimit(RLIMIT_FSIZE, &r);
            sl_error err = {0};
            int rc;
            if (!k) {
                rc = write_h5(out, 100000, &err);
            } else {
                sl_atomic a;
                rc = sl_atomic_open(&a, out, &err);
                for (int i = 0; !rc && i < 10000; i++) fprintf(a.f, "%d,", i);
                if (!rc) rc = sl_atomic_commit(&a, &err);
            }
            int named = strstr(err.msg, tmp) && strstr(err.msg, strerror(EFBIG));
            if (!named) fprintf(stderr, "message: %s\n", err.msg);
            exit(rc == SL_ERUNTIME && named ? 0 : 3);
        }
        int status = -1;
        waitpid(pid, &status, 0);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s past the file-size limit: status 0x%x (3: not exit 1 "
              "with the path and EFBIG)", WHAT[k], status);
        CHECK(!exists(out) && !exists(tmp), "%s past the file-size limit left %s or its .tmp", WHAT[k], out);
    }
}

static void outpath_cases(void)
{
    sl_error err = {0};
    mkdir(DIR "/model", 0777);
    mkdir(DIR "/model/sub", 0777);
    write_file(DIR "/model/model.safetensors", "weights");
    write_file(DIR "/model/config.json", "{}");
    write_file(DIR "/data.h5", "data");
    unlink(DIR "/hard.h5");
    link(DIR "/data.h5", DIR "/hard.h5");
    unlink(DIR "/sym.h5");
    symlink("data.h5", DIR "/sym.h5");
    unlink(DIR "/w.bin");
    link(DIR "/model/model.safetensors", DIR "/w.bin");
    const char *in[2] = {DIR "/model", DIR "/data.h5"};
    struct {
        const char *out;
        int code;
        const char *needle;
    } cases[] = {
        {DIR "/out.json", 0, NULL},
        {DIR "/data.h5", SL_EINPUT, DIR "/data.h5"},
        {DIR "/hard.h5", SL_EINPUT, DIR "/data.h5"},
        {DIR "/sym.h5", SL_EINPUT, DIR "/data.h5"},
        {DIR "/w.bin", SL_EINPUT, "model.safetensors"},
        {DIR "/model/model.safetensors", SL_EINPUT, DIR "/model"},
        {DIR "/model/new.json", SL_EINPUT, DIR "/model"},
        {DIR "/model/sub/new.json", 0, NULL}, /* a subdirectory of MODEL is the user's */
        {DIR "/model/../out.json", 0, NULL},
        {DIR "/model", SL_EINPUT, "directory"},
        {DIR "/nosuch/out.json", SL_ERUNTIME, strerror(ENOENT)},
        {DIR "/data.h5/out.json", SL_ERUNTIME, strerror(ENOTDIR)},
        {"", SL_EINPUT, "empty"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        memset(&err, 0, sizeof err);
        int rc = sl_outpath_check(cases[i].out, in, 2, &err);
        CHECK(rc == cases[i].code, "outpath '%s': %d, want %d (%s)", cases[i].out, rc, cases[i].code, err.msg);
        CHECK(!cases[i].needle || strstr(err.msg, cases[i].needle), "outpath '%s': '%s' lacks '%s'", cases[i].out,
              err.msg, cases[i].needle);
    }
    /* an input that does not exist is the command's to report */
    const char *missing[1] = {DIR "/nowhere"};
    memset(&err, 0, sizeof err);
    CHECK(sl_outpath_check(DIR "/out.json", missing, 1, &err) == 0, "a missing input: %s", err.msg);

    struct {
        const char *dir;
        int code;
    } dirs[] = {
        {DIR "/run", 0},           {DIR "/run/", 0},        {DIR, 0},
        {DIR "/model", SL_EINPUT}, {DIR "/model/run", 0}, {DIR "/data.h5", SL_EINPUT},
        {DIR "/nosuch/run", SL_ERUNTIME},
    };
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
        memset(&err, 0, sizeof err);
        int rc = sl_outdir_check(dirs[i].dir, in, 2, &err);
        CHECK(rc == dirs[i].code, "outdir '%s': %d, want %d (%s)", dirs[i].dir, rc, dirs[i].code, err.msg);
    }
}

int main(void)
{
    sl_h5_quiet();
    mkdir("build", 0777);
    mkdir("build/tests", 0777);
    mkdir(DIR, 0777);
    atomic_cases();
    h5_cases();
    limited_cases();
    outpath_cases();
    return TEST_SUMMARY();
}
