/* No string from an input reaches gnuplot as code (design.md section 1,
 * Safety). A dataset whose family names carry gnuplot command substitution
 * (`...`), string break-outs into system(), a newline and a macro is
 * analysed; result JSON with such hook and mode names is reported; a run
 * directory named like one is summarised. Each payload would create a file
 * named pwned-*; none may exist afterwards, nor after every kept .gp script
 * is run again by hand, as a person redrawing a figure would. */
#include <dirent.h>
#include <hdf5.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "tests/testing.h"

#define REL "build/tests/injection"

static char T[PATH_MAX];
static const char *seqlens;

/* argv run in dir (NULL: here), output discarded; the exit status, or -1. */
static int run(const char *dir, char *const argv[])
{
    pid_t pid = fork();
    if (pid == 0) {
        if (!freopen("/dev/null", "w", stdout) || !freopen("/dev/null", "w", stderr)) _exit(126);
        if (dir && chdir(dir)) _exit(126);
        execvp(argv[0], argv);
        _exit(127);
    }
    int st;
    if (pid < 0 || waitpid(pid, &st, 0) < 0) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Files named pwned* anywhere under dir: what a payload that ran left. */
static int pwned_under(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (!strncmp(e->d_name, "pwned", 5)) {
            fprintf(stderr, "payload ran: %s\n", p);
            n++;
        }
        struct stat st;
        if (!lstat(p, &st) && S_ISDIR(st.st_mode)) n += pwned_under(p);
    }
    closedir(d);
    return n;
}

/* Every payload: gnuplot's backquote substitution, a quote that ends the
 * string followed by system(), a newline that starts a new command, a macro. */
static void payloads(char names[][300], int n)
{
    const char *fmt[] = {"m`touch %s/pwned-tick`",
                         "k\" . system(\"touch %s/pwned-dquote\") . \"",
                         "v' . system('touch %s/pwned-squote') . '",
                         "f\nsystem 'touch %s/pwned-newline'\n",
                         "s@x $(touch %s/pwned-dollar) \\\" . system(\"touch %s/pwned-backslash\") . \"",
                         "p`touch pwned-relative`"};
    for (int i = 0; i < n; i++) snprintf(names[i], 300, fmt[i % 6], T, T);
}

/* The example dataset with every family renamed to a payload. */
static int hostile_dataset(const char *path)
{
    char cmd[PATH_MAX + 64];
    snprintf(cmd, sizeof cmd, "cp examples/data.h5 '%s'", path);
    if (system(cmd)) return -1;
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t ds = f < 0 ? -1 : H5Dopen2(f, "/families/names", H5P_DEFAULT);
    hid_t sp = ds < 0 ? -1 : H5Dget_space(ds);
    hsize_t n = 0;
    if (sp >= 0) H5Sget_simple_extent_dims(sp, &n, NULL);
    if (sp >= 0) H5Sclose(sp);
    if (ds >= 0) H5Dclose(ds);
    int rc = f >= 0 && n > 0 && n <= 64 && H5Ldelete(f, "/families/names", H5P_DEFAULT) >= 0 ? 0 : -1;
    char names[64][300];
    const char *ptr[64];
    if (!rc) {
        payloads(names, (int)n);
        for (hsize_t i = 0; i < n; i++) ptr[i] = names[i];
    }
    hid_t t = H5Tcopy(H5T_C_S1);
    hid_t s = H5Screate_simple(1, &n, NULL);
    if (!rc) rc = H5Tset_size(t, H5T_VARIABLE) < 0 ? -1 : 0;
    hid_t d = rc ? -1 : H5Dcreate2(f, "/families/names", t, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (d < 0 || H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, ptr) < 0) rc = -1;
    if (d >= 0) H5Dclose(d);
    H5Sclose(s);
    H5Tclose(t);
    if (f >= 0 && H5Fclose(f) < 0) rc = -1;
    return rc;
}

/* Runs every kept script again with gnuplot in its own directory; counts
 * the scripts, and those holding a backtick. A script redraws NAME.png and
 * NAME.svg themselves: no NAME.*.tmp may be left. */
static int redraw_all(const char *figdir, int *with_backtick)
{
    DIR *d = opendir(figdir);
    int n = 0;
    *with_backtick = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 4 || strcmp(e->d_name + len - 3, ".gp")) continue;
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/%s", figdir, e->d_name);
        FILE *f = fopen(p, "r");
        int c;
        while (f && (c = fgetc(f)) != EOF)
            if (c == '`') {
                (*with_backtick)++;
                break;
            }
        if (f) fclose(f);
        char *argv[] = {"gnuplot", e->d_name, NULL};
        CHECK(run(figdir, argv) == 0, "gnuplot %s failed", e->d_name);
        n++;
    }
    if (d) closedir(d);
    d = opendir(figdir);
    while (d && (e = readdir(d))) CHECK(!strstr(e->d_name, ".tmp"), "redrawing left %s/%s", figdir, e->d_name);
    if (d) closedir(d);
    return n;
}

/* Sets key of every element of the named array in DIR/file to value. */
static int rewrite_json(const char *dir, const char *file, const char *array, const char *key, const char *value)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/%s", dir, file);
    FILE *f = fopen(p, "r");
    if (!f) return -1;
    char *text = malloc(1 << 22);
    size_t got = text ? fread(text, 1, (1 << 22) - 1, f) : 0;
    fclose(f);
    if (!text) return -1;
    text[got] = 0;
    cJSON *j = cJSON_Parse(text), *row;
    free(text);
    if (!j) return -1;
    if (array) {
        cJSON_ArrayForEach(row, cJSON_GetObjectItem(j, array)) cJSON_ReplaceItemInObject(row, key, cJSON_CreateString(value));
    } else {
        cJSON_ReplaceItemInObject(j, key, cJSON_CreateString(value));
    }
    char *out = cJSON_Print(j);
    cJSON_Delete(j);
    f = fopen(p, "w");
    int rc = out && f && fputs(out, f) >= 0 ? 0 : -1;
    if (f && fclose(f)) rc = -1;
    free(out);
    return rc;
}

int main(void)
{
    seqlens = getenv("SEQLENS") ? getenv("SEQLENS") : "bin/seqlens";
    char *gp_version[] = {"gnuplot", "--version", NULL};
    if (run(NULL, gp_version) != 0) {
        /* gnuplot is a run-time dependency (scripts/install-deps.sh); without
         * it no payload could run and this test would prove nothing */
        CHECK(0, "gnuplot is not on PATH: the injection test needs it");
        return TEST_SUMMARY();
    }
    if (system("rm -rf " REL " && mkdir -p " REL) || !realpath(REL, T)) {
        CHECK(0, "cannot make %s", REL);
        return TEST_SUMMARY();
    }
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);

    /* 1. analyze (and so report) on a dataset whose family names are payloads */
    char data[PATH_MAX + 16], run_dir[PATH_MAX + 16], figs[PATH_MAX + 32];
    snprintf(data, sizeof data, "%s/data.h5", T);
    snprintf(run_dir, sizeof run_dir, "%s/run", T);
    snprintf(figs, sizeof figs, "%s/figures", run_dir);
    CHECK(hostile_dataset(data) == 0, "cannot write the hostile dataset %s", data);
    char *analyze[] = {(char *)seqlens, "analyze", "examples/mamba", data,   "-o",      run_dir, "--steps",
                       "4",             "--bootstrap", "100",        "--threads", "1",    NULL};
    CHECK(run(NULL, analyze) == 0, "analyze on hostile family names failed");
    struct stat st;
    CHECK(!stat(REL "/run/report.html", &st), "analyze wrote no report.html");
    CHECK(!stat(REL "/run/figures/ablate-family.png", &st) && st.st_size > 0, "the family figure was not drawn");
    CHECK(pwned_under(T) == 0, "a family name ran a command while the report was drawn");
    int backticks, scripts = redraw_all(figs, &backticks);
    CHECK(scripts >= 5, "only %d figure scripts were kept", scripts);
    CHECK(backticks == 0, "%d kept .gp scripts hold a backtick", backticks);
    CHECK(pwned_under(T) == 0, "redrawing a kept .gp script ran a command");

    /* 2. report on result JSON whose hook, mode and family names are payloads */
    char tick[2 * PATH_MAX + 128];
    snprintf(tick, sizeof tick, "h`touch %s/pwned-hook`", T);
    CHECK(rewrite_json(run_dir, "patch.json", "results", "hook", tick) == 0, "cannot rewrite patch.json");
    snprintf(tick, sizeof tick, "mean`touch %s/pwned-mode`", T);
    CHECK(rewrite_json(run_dir, "ablate-family.json", NULL, "mode", tick) == 0, "cannot rewrite ablate-family.json");
    snprintf(tick, sizeof tick, "a`touch %s/pwned-attr`", T);
    CHECK(rewrite_json(run_dir, "attribute.json", "families", "family", tick) == 0, "cannot rewrite attribute.json");
    /* every other string a figure title or label takes from a result */
    static const char *const MORE[][3] = {{"probe.json", NULL, "target"},     {"probe.json", NULL, "site"},
                                          {"attribute.json", NULL, "method"}, {"ablate-component.json", "results", "component"},
                                          {"analyze.json", NULL, "model"},    {"analyze.json", NULL, "data"}};
    for (size_t i = 0; i < sizeof MORE / sizeof *MORE; i++) {
        snprintf(tick, sizeof tick, "x`touch %s/pwned-%s` $(touch %s/pwned-dollar-%s) @m", T, MORE[i][2], T, MORE[i][2]);
        CHECK(rewrite_json(run_dir, MORE[i][0], MORE[i][1], MORE[i][2], tick) == 0, "cannot rewrite %s", MORE[i][0]);
    }
    char *report[] = {(char *)seqlens, "report", run_dir, NULL};
    CHECK(run(NULL, report) == 0, "report on hostile hook and mode names failed");
    CHECK(pwned_under(T) == 0, "a hook, mode or family name from a result JSON ran a command");
    scripts = redraw_all(figs, &backticks);
    CHECK(backticks == 0 && pwned_under(T) == 0, "redrawing after report: %d scripts with backticks", backticks);

    /* 3. summarize: the run's name comes from its directory's name */
    char named[PATH_MAX + 64], sum[PATH_MAX + 16], sumfigs[PATH_MAX + 32];
    snprintf(named, sizeof named, "%s/run`touch pwned-run`", T);
    snprintf(sum, sizeof sum, "%s/summary", T);
    snprintf(sumfigs, sizeof sumfigs, "%s/figures", sum);
    CHECK(rename(run_dir, named) == 0, "cannot rename the run directory");
    char *summarize[] = {(char *)seqlens, "summarize", named, "-o", sum, NULL};
    CHECK(run(NULL, summarize) == 0, "summarize of a run named with a payload failed");
    CHECK(!stat(REL "/summary/summary.html", &st), "summarize wrote no summary.html");
    CHECK(pwned_under(T) == 0, "a run directory's name ran a command");
    scripts = redraw_all(sumfigs, &backticks);
    CHECK(scripts >= 1 && backticks == 0 && pwned_under(T) == 0, "redrawing the summary: %d scripts, %d with backticks",
          scripts, backticks);
    return TEST_SUMMARY();
}
