/* Replays the fuzz seed corpus and every crasher the fuzzers once found
 * (tests/fuzz/corpus/NAME, tests/fuzz/crashers/NAME) through the same
 * target functions, without libFuzzer: under make asan a regression is an
 * ASan report, here a crash. Each input that runs through is a pass. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/testing.h"

#define FUZZ_ENTRY fuzz_safetensors
#include "tests/fuzz/fuzz_safetensors.c"
#undef FUZZ_ENTRY
#define FUZZ_ENTRY fuzz_config
#include "tests/fuzz/fuzz_config.c"
#undef FUZZ_ENTRY
#define FUZZ_ENTRY fuzz_model
#include "tests/fuzz/fuzz_model.c"
#undef FUZZ_ENTRY
#define FUZZ_ENTRY fuzz_dataset
#include "tests/fuzz/fuzz_dataset.c"
#undef FUZZ_ENTRY
#define FUZZ_ENTRY fuzz_pickle
#include "tests/fuzz/fuzz_pickle.c"
#undef FUZZ_ENTRY
#define FUZZ_ENTRY fuzz_npy
#include "tests/fuzz/fuzz_npy.c"
#undef FUZZ_ENTRY

static int replay(const char *dir, int (*target)(const uint8_t *, size_t))
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "rb");
        if (!f) continue;
        unsigned char *buf = malloc(1 << 20);
        size_t n = buf ? fread(buf, 1, 1 << 20, f) : 0;
        fclose(f);
        target(buf, n);
        free(buf);
        CHECK(1, "%s", path);
        count++;
    }
    closedir(d);
    return count;
}

int main(void)
{
    static const struct {
        const char *name;
        int (*fn)(const uint8_t *, size_t);
    } T[] = {{"safetensors", fuzz_safetensors}, {"config", fuzz_config}, {"model", fuzz_model}, {"dataset", fuzz_dataset}, {"pickle", fuzz_pickle}, {"npy", fuzz_npy}};
    for (size_t i = 0; i < sizeof T / sizeof *T; i++) {
        char dir[128];
        snprintf(dir, sizeof dir, "tests/fuzz/corpus/%s", T[i].name);
        int seeds = replay(dir, T[i].fn);
        CHECK(seeds > 0, "no seed corpus in %s", dir);
        snprintf(dir, sizeof dir, "tests/fuzz/crashers/%s", T[i].name);
        replay(dir, T[i].fn);
    }
    return TEST_SUMMARY();
}
