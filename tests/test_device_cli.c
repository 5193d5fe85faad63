/* Every command's device path end to end, through the command line: each
 * command on the example models (Mamba-2 a subset) with --device cpu, and with --device cuda
 * on the host grid stand-in (SEQLENS_TEST_HOST_DEVICE), must give the same
 * JSON up to rounding, and the device run must say it ran there. This is
 * what checks the wiring (sessions, batch sizes, analyze handing --device
 * to its stages) that tests/test_device_model.c, at the library level,
 * cannot. The two paths add in different orders, so numbers are compared
 * within 1e-3 (relative above 1, absolute below), p-values not at all: a
 * wiring fault (wrong examples, a pass left out) moves them far more. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fixture_files.h"
#include "tests/testing.h"

#define DIR "build/tests/device_cli"

static const char *seqlens(void)
{
    const char *s = getenv("SEQLENS");
    return s && *s ? s : "bin/seqlens";
}

/* With --real-device (bench/gpu.sh, a CUDA build on a GPU) the device runs
 * are the GPU's; otherwise the host grid stands in for it. */
static int real_device;

static const char *device_env(void) { return real_device ? "" : "SEQLENS_TEST_HOST_DEVICE=1 "; }

/* Structure, keys and strings equal; numbers within the tolerance. */
static int json_close(const cJSON *a, const cJSON *b, char *where, size_t n)
{
    if (!a || !b || a->type != b->type) return snprintf(where, n, "type"), 0;
    if (cJSON_IsNumber(a)) {
        double x = a->valuedouble, y = b->valuedouble;
        if (!(fabs(x - y) <= 1e-3 * fmax(1.0, fabs(x)))) return snprintf(where, n, "%.9g vs %.9g", x, y), 0;
        return 1;
    }
    if (cJSON_IsString(a)) return strcmp(a->valuestring, b->valuestring) ? (snprintf(where, n, "\"%s\"", a->valuestring), 0) : 1;
    if (cJSON_IsArray(a) || cJSON_IsObject(a)) {
        if (cJSON_GetArraySize(a) != cJSON_GetArraySize(b)) return snprintf(where, n, "size"), 0;
        const cJSON *y = b->child;
        for (const cJSON *x = a->child; x; x = x->next, y = y->next) {
            if (x->string && (!y->string || strcmp(x->string, y->string))) return snprintf(where, n, "key %s", x->string), 0;
            /* DeLong's p-value of a near-zero effect swings with the last
             * bits of the logits (0.325 against 0.335 under -O1, where sums
             * contract differently): not a wiring check */
            if (x->string && !strcmp(x->string, "p_value")) continue;
            size_t used = strlen(where);
            if (x->string) snprintf(where + used, n - used, ".%s", x->string);
            if (!json_close(x, y, where + strlen(where), n - strlen(where))) return 0;
            where[used] = 0;
        }
    }
    return 1;
}

/* 1 when the file contains the text. */
static int file_has(const char *path, const char *text)
{
    FILE *f = fopen(path, "rb");
    char buf[8192];
    size_t got = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) fclose(f);
    buf[got] = 0;
    return strstr(buf, text) != NULL;
}

static void compare_files(const char *what, const char *cpu, const char *dev)
{
    cJSON *a = read_json(cpu), *b = read_json(dev);
    char where[512] = "";
    CHECK(a && b, "%s: no JSON from %s", what, a ? "the device run" : "the CPU run");
    if (a && b) CHECK(json_close(a, b, where, sizeof where), "%s: differs at %s", what, where);
    cJSON_Delete(a);
    cJSON_Delete(b);
}

/* ARGS with MODEL and DATA in front: once per device, then compared. */
static void same_on_both(const char *name, const char *model, const char *args)
{
    char cmd[2048], cpu[256], dev[256], err[256];
    snprintf(cpu, sizeof cpu, DIR "/%s.cpu.json", name);
    snprintf(dev, sizeof dev, DIR "/%s.dev.json", name);
    snprintf(err, sizeof err, DIR "/%s.dev.err", name);
    snprintf(cmd, sizeof cmd, "%s %s --device cpu >%s 2>/dev/null", seqlens(), args, cpu);
    CHECK(system(cmd) == 0, "%s: %s failed on the CPU", name, model);
    snprintf(cmd, sizeof cmd, "%s%s %s --device cuda >%s 2>%s", device_env(), seqlens(), args, dev, err);
    CHECK(system(cmd) == 0, "%s: %s failed on the device", name, model);
    CHECK(real_device || file_has(err, "on the host grid"), "%s: the device run did not say it ran on the device", name);
    compare_files(name, cpu, dev);
}

/* Every command on examples/ARCH; with `some`, the Mamba-2 set: the commands
 * whose device path differs by architecture (its hooks and knockouts, skip,
 * the backward), not the wiring every architecture shares (kept short: this
 * test once took 235 s). */
static void commands(const char *arch, const char *other_hook, int some)
{
    char model[64], args[1024], name[128];
    snprintf(model, sizeof model, "examples/%s", arch);
    static const char *const mamba2_runs[] = {"eval", "family-skip", "family-zero", "layer-mean", "component",
                                              "inspect", "attribute-ig", "patch-resid"};
    const struct {
        const char *name, *args;
    } runs[] = {
        {"eval", "eval %s examples/data.h5 --examples 0:160"},
        {"family-zero", "ablate %s examples/data.h5 --examples 0:160 --family all --mode zero --bootstrap 50"},
        {"family-mean", "ablate %s examples/data.h5 --examples 0:160 --family all --mode mean --bootstrap 0"},
        {"family-pad", "ablate %s examples/data.h5 --examples 0:160 --family all --mode pad --bootstrap 0"},
        {"family-skip", "ablate %s examples/data.h5 --examples 0:160 --family all --mode skip --bootstrap 0"},
        {"layer-mean", "ablate %s examples/data.h5 --examples 0:160 --layer all --mode mean --bootstrap 0"},
        {"component", "ablate %s examples/data.h5 --examples 0:160 --component all --mode mean --bootstrap 0"},
        {"reverse", "reverse-test %s examples/data.h5 --examples 0:160"},
        {"inspect", "inspect %s examples/data.h5 --examples 0:160"},
        {"attribute-ig", "attribute %s examples/data.h5 --examples 0:160 --method ig --steps 4"},
        {"attribute-grad", "attribute %s examples/data.h5 --examples 0:160 --method grad-input"},
        {"probe", "probe %s examples/data.h5 --examples 0:160 --layer all"},
        {"patch-resid", "patch %s examples/data.h5 --examples 0:160 --hook blocks.*.resid_post --positions -1,-2,0 --n-pairs 20"},
    };
    for (size_t i = 0; i < sizeof runs / sizeof *runs; i++) {
        int wanted = !some;
        for (size_t k = 0; some && k < sizeof mamba2_runs / sizeof *mamba2_runs; k++) wanted |= !strcmp(runs[i].name, mamba2_runs[k]);
        /* skip sets delta, which a Transformer lacks (its refusal is test_ablate's) */
        if (!wanted || (!strcmp(runs[i].name, "family-skip") && !strcmp(arch, "transformer"))) continue;
        snprintf(args, sizeof args, runs[i].args, model);
        snprintf(name, sizeof name, "%s-%s", arch, runs[i].name);
        same_on_both(name, model, args);
    }
    snprintf(args, sizeof args, "patch %s examples/data.h5 --examples 0:160 --hook %s --positions -1,3 --n-pairs 20", model, other_hook);
    snprintf(name, sizeof name, "%s-patch-hook", arch);
    same_on_both(name, model, args);
}

/* analyze hands --device to every stage; each stage's JSON must agree. */
static void analyze(const char *arch)
{
    static const char *outputs[] = {"eval.json", "baseline.json", "ablate-family.json", "ablate-layer.json",
                                    "ablate-component.json", "reverse.json", "inspect.json", "attribute.json",
                                    "probe.json", "patch.json", "ablate-skip.json"};
    /* ablate-skip.json: Mamba models' only */
    size_t n_outputs = sizeof outputs / sizeof *outputs - (strncmp(arch, "mamba", 5) != 0);
    char cmd[1024], a[256], b[256];
    snprintf(cmd, sizeof cmd, "rm -rf " DIR "/an-%s-cpu " DIR "/an-%s-dev", arch, arch);
    CHECK(system(cmd) == 0, "rm");
    snprintf(cmd, sizeof cmd, "%s analyze examples/%s examples/data.h5 --examples 0:160 --steps 4 --device cpu -o " DIR "/an-%s-cpu >/dev/null 2>&1",
             seqlens(), arch, arch);
    CHECK(system(cmd) == 0, "analyze %s on the CPU failed", arch);
    snprintf(cmd, sizeof cmd, "%s%s analyze examples/%s examples/data.h5 --examples 0:160 --steps 4 --device cuda -o " DIR "/an-%s-dev >/dev/null 2>&1",
             device_env(), seqlens(), arch, arch);
    CHECK(system(cmd) == 0, "analyze %s on the device failed", arch);
    for (size_t i = 0; i < n_outputs; i++) {
        char what[128];
        snprintf(a, sizeof a, DIR "/an-%s-cpu/%s", arch, outputs[i]);
        snprintf(b, sizeof b, DIR "/an-%s-dev/%s", arch, outputs[i]);
        snprintf(what, sizeof what, "analyze %s: %s", arch, outputs[i]);
        compare_files(what, a, b);
    }
}

/* MPI ranks each on their device (tests/test_mpi.sh covers the CPU): the
 * gathered results must match one process on the CPU. Skipped without
 * mpirun or bin/seqlens-mpi. */
static void mpi_on_device(void)
{
    if (system("command -v mpirun >/dev/null 2>&1") != 0 || system("test -x bin/seqlens-mpi") != 0) {
        printf("skipped: MPI ranks on the device (no mpirun or bin/seqlens-mpi)\n");
        return;
    }
    const char *runs[][2] = {{"mpi-eval", "eval examples/mamba examples/data.h5"},
                             {"mpi-family", "ablate examples/transformer examples/data.h5 --family all --bootstrap 50"},
                             {"mpi-attribute", "attribute examples/mamba examples/data.h5 --method ig --steps 4"}};
    for (size_t i = 0; i < sizeof runs / sizeof *runs; i++) {
        char cmd[1024], cpu[256], dev[256], err[256];
        snprintf(cpu, sizeof cpu, DIR "/%s.cpu.json", runs[i][0]);
        snprintf(dev, sizeof dev, DIR "/%s.dev.json", runs[i][0]);
        snprintf(err, sizeof err, DIR "/%s.dev.err", runs[i][0]);
        snprintf(cmd, sizeof cmd, "%s %s --device cpu >%s 2>/dev/null", seqlens(), runs[i][1], cpu);
        CHECK(system(cmd) == 0, "%s: the CPU run failed", runs[i][0]);
        snprintf(cmd, sizeof cmd,
                 "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 %smpirun --oversubscribe -np 2 "
                 "bin/seqlens-mpi %s --device cuda >%s 2>%s",
                 device_env(), runs[i][1], dev, err);
        CHECK(system(cmd) == 0, "%s: 2 ranks on the device failed", runs[i][0]);
        CHECK(real_device || file_has(err, "on the host grid"), "%s: the ranks did not say they ran on the device",
              runs[i][0]);
        compare_files(runs[i][0], cpu, dev);
    }
}

int main(int argc, char **argv)
{
    real_device = argc > 1 && !strcmp(argv[1], "--real-device");
    CHECK(system("mkdir -p " DIR) == 0, "mkdir " DIR);
    commands("mamba", "blocks.0.mixer.out", 0);
    commands("transformer", "blocks.0.attn.out", 0);
    commands("mamba2", "blocks.0.mixer.y", 1);
    /* compare: a Mamba against a Transformer, and a Mamba-2 against a Mamba */
    const char *pairs[][3] = {{"compare", "mamba", "transformer"}, {"compare-mamba2", "mamba2", "mamba"}};
    for (int k = 0; k < 2; k++) {
        char cmd[1024], cpu[256], dev[256];
        snprintf(cpu, sizeof cpu, DIR "/%s.cpu.json", pairs[k][0]);
        snprintf(dev, sizeof dev, DIR "/%s.dev.json", pairs[k][0]);
        snprintf(cmd, sizeof cmd,
                 "%s%s compare examples/%s examples/%s examples/data.h5 --examples 0:160 --device cuda -o %s >/dev/null "
                 "2>&1 && %s compare examples/%s examples/%s examples/data.h5 --examples 0:160 --device cpu -o %s "
                 ">/dev/null 2>&1",
                 device_env(), seqlens(), pairs[k][1], pairs[k][2], dev, seqlens(), pairs[k][1], pairs[k][2], cpu);
        CHECK(system(cmd) == 0, "%s failed", pairs[k][0]);
        compare_files(pairs[k][0], cpu, dev);
    }
    analyze("mamba");
    analyze("transformer");
    mpi_on_device();
    return TEST_SUMMARY();
}
