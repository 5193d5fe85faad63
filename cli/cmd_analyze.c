/* seqlens analyze: every analysis with defaults, then the report. Each
 * stage is this binary run as a child process with the command line the
 * report shows, so a stage's result is exactly what running that command by
 * hand gives, a crash in one stage cannot take the others' results with it,
 * and each stage's memory is returned when it ends. analyze.json records
 * the inputs and the finished stages, so an interrupted run resumes. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/manifest.h"
#include "cli/registry.h"
#include "cli/stage.h"
#include "core/atomic.h"
#include "core/jsonout.h"
#include "core/outpath.h"
#include "core/textfile.h"
#include "plots/report.h"

static const char USAGE[] =
    "usage: seqlens analyze MODEL DATA -o DIR [--steps K] [--bootstrap B] [--seed S] [--examples A:B]\n"
    "                       [--sample S] [--threads N] [--batch B] [--force] [--verify FILE [--tolerance T]]\n"
    "  Runs eval, baseline, ablate --family all (on Mamba models also with --mode skip), ablate\n"
    "  --layer all, ablate --component all, reverse-test, inspect, attribute --method ig --steps K\n"
    "  (default 16), probe --layer all and patch (blocks.*.resid_post at the last 16 positions, 100\n"
    "  label-flip pairs) into DIR, then\n"
    "  seqlens report DIR. inspect, attribute and patch, whose answers are means and shares, run on a\n"
    "  seeded sample of --sample S examples (default 1,000) when more are selected; attribute's\n"
    "  bootstrap intervals show the sample's error. The ablations keep every example. A progress line\n"
    "  per stage shows elapsed time and an estimate of the time left. Interrupted, it resumes: stages already finished for the same model, data and\n"
    "  options are kept (DIR/analyze.json records them). --force redoes every stage, also when\n"
    "  DIR holds an analysis of other inputs. Each stage's messages go to DIR/logs/STAGE.log.\n"
    "  --verify FILE first runs seqlens verify with FILE (PyTorch's logits) and stops on a mismatch;\n"
    "  analyze.json's \"verify\" entry (and the report's line) is that check, made by the run that\n"
    "  wrote analyze.json: a later run without --verify drops it.\n"
    "  Without /families in DATA, baseline, ablate --family, inspect and attribute are skipped (the\n"
    "  report says so).\n";

#define MAX_STAGES 32
#define LOG_RESERVE 4096 /* bytes kept free for each stage's log */

typedef struct {
    const sl_stage *spec;
    const sl_command *cmd; /* the command it runs */
    sl_plan plan;          /* its command line */
    double weight;         /* cost in forward passes, for the estimate */
    double seconds;
    int kept;
    const char *skipped; /* why the stage does not run on this data, or NULL */
} stage;

/* examples inspect, attribute and patch run on when more are selected */
#define DEFAULT_SAMPLE 1000

/* Every registered command's stages, in their order; returns how many. */
static int plan(stage *st, const sl_args *a, const sl_session *s, const char *dir, int steps, long sample)
{
    int n = 0;
    for (const sl_command *c = sl_commands(); c; c = c->next)
        for (int k = 0; k < c->n_stages && n < MAX_STAGES; k++) {
            int i = n++;
            while (i > 0 && c->stages[k].order < st[i - 1].spec->order) {
                st[i] = st[i - 1];
                i--;
            }
            st[i] = (stage){.spec = &c->stages[k], .cmd = c};
        }
    int kept = 0;
    for (int i = 0; i < n; i++) {
        sl_plan probe = {.a = a, .s = s, .dir = dir, .steps = steps, .sample = sample, .stage = st[i].spec};
        if (!st[i].spec->applies || st[i].spec->applies(&probe)) st[kept++] = st[i];
    }
    n = kept;
    for (int i = 0; i < n; i++) {
        sl_plan *p = &st[i].plan;
        *p = (sl_plan){.a = a, .s = s, .dir = dir, .steps = steps, .sample = sample, .stage = st[i].spec};
        sl_plan_arg(p, "seqlens");
        sl_plan_arg(p, "%s", st[i].cmd->name);
        st[i].spec->args(p);
        st[i].weight = st[i].spec->weight(p);
        if (st[i].spec->per_family && s->data.n_families == 0)
            st[i].skipped = "the dataset has no /families, and these results are per token family";
    }
    return n;
}

static char *command_line(const stage *s)
{
    size_t n = 1;
    for (int i = 0; i < s->plan.argc; i++) n += strlen(s->plan.argv[i]) + 3;
    char *line = malloc(n), *p = line;
    if (!line) return NULL;
    for (int i = 0; i < s->plan.argc; i++) {
        /* quote what a shell would split */
        int q = s->plan.argv[i][strcspn(s->plan.argv[i], " \t'\"$*?")] != 0;
        p += sprintf(p, "%s%s%s%s", i ? " " : "", q ? "'" : "", s->plan.argv[i], q ? "'" : "");
    }
    return line;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static volatile sig_atomic_t interrupted;
static void on_signal(int sig) { interrupted = sig; }

/* A stage killed or failed may leave its outputs' temporary files. */
static void remove_partial(const char *dir, const stage *s)
{
    char p[4200];
    for (int k = 0; k < 2; k++) {
        if (!s->spec->outputs[k]) continue;
        snprintf(p, sizeof p, "%s/%s.tmp", dir, s->spec->outputs[k]);
        unlink(p);
    }
}

static void remove_outputs(const char *dir, const stage *s)
{
    char p[4200];
    for (int k = 0; k < 2; k++) {
        if (!s->spec->outputs[k]) continue;
        snprintf(p, sizeof p, "%s/%s", dir, s->spec->outputs[k]);
        unlink(p);
    }
}

static int exists(const char *dir, const char *name)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return access(p, F_OK) == 0;
}

static void format_time(char *out, size_t n, double s)
{
    if (!isfinite(s)) snprintf(out, n, "?");
    else if (s < 60) snprintf(out, n, "%.1f s", s);
    else snprintf(out, n, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
}

typedef struct {
    int tty, index, total;
    double started, done_weight, done_seconds, left_weight;
} progress;

static void show(const progress *p, const stage *s, double elapsed, int final)
{
    char el[32], eta[32], total[32];
    double rate = p->done_weight > 0 ? p->done_seconds / p->done_weight : NAN;
    double left = rate * (p->left_weight - s->weight) + fmax(0, rate * s->weight - elapsed);
    if (final) left = rate * (p->left_weight - s->weight);
    format_time(el, sizeof el, elapsed);
    format_time(eta, sizeof eta, left);
    format_time(total, sizeof total, now() - p->started);
    if (!isfinite(left)) snprintf(eta, sizeof eta, "estimating time");
    else snprintf(eta + strlen(eta), sizeof eta - strlen(eta), " left");
    if (p->tty) fprintf(stderr, "\r\033[K");
    fprintf(stderr, "[%d/%d] %-16s %s %s (total %s, %s)%s", p->index, p->total, s->spec->name, final ? "done in" : "running",
            el, total, eta, final || !p->tty ? "\n" : "");
}

/* A stage's stdout (DIR/NAME.json.tmp, or /dev/null when out is NULL) and
 * stderr (its log), created afresh: never through a file or symlink found
 * there. fds[0] and fds[1] are closed on exec. */
static int open_stage_files(const char *log, const char *out, int fds[2], sl_error *err)
{
    fds[1] = sl_create_excl(log);
    if (fds[1] < 0) return sl_fail(err, SL_ERUNTIME, "%s: cannot create: %s", log, strerror(errno));
    /* room for the stage's last words, should it fill the disk: without
     * them analyze could say that it failed, not why */
    if (fallocate(fds[1], FALLOC_FL_KEEP_SIZE, 0, LOG_RESERVE) && errno == ENOSPC) {
        int rc = sl_fail(err, SL_ERUNTIME, "%s: cannot write: %s", log, strerror(errno));
        close(fds[1]);
        return rc;
    }
    fds[0] = out ? sl_create_excl(out) : open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (fds[0] >= 0) return SL_OK;
    int rc = sl_fail(err, SL_ERUNTIME, "%s: cannot create: %s", out ? out : "/dev/null", strerror(errno));
    close(fds[1]);
    return rc;
}

/* Runs one stage as a child process; stderr to DIR/logs/NAME.log. */
static int run_stage(const char *self, const char *dir, stage *s, progress *p, sl_error *err)
{
    char log[4200], out[4200], tmp[4300];
    snprintf(log, sizeof log, "%s/logs/%s.log", dir, s->spec->name);
    if (s->spec->stdout_to) {
        snprintf(out, sizeof out, "%s/%s", dir, s->spec->stdout_to);
        snprintf(tmp, sizeof tmp, "%s.tmp", out);
    }
    double t0 = now();
    int fds[2];
    int rc = open_stage_files(log, s->spec->stdout_to ? tmp : NULL, fds, err);
    if (rc) return rc;
    fflush(NULL);
    pid_t parent = getpid(), pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return sl_fail(err, SL_ERUNTIME, "analyze: cannot start %s: %s", s->spec->name, strerror(errno));
    }
    if (pid == 0) {
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        /* a stage never outlives analyze (kill -9 included): an orphan
         * would race the rerun for the same files */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent) _exit(130); /* analyze died before prctl took */
        if (dup2(fds[0], 1) < 0 || dup2(fds[1], 2) < 0) _exit(126);
        execv(self, s->plan.argv);
        fprintf(stderr, "seqlens: cannot run %s: %s\n", self, strerror(errno));
        _exit(127);
    }
    close(fds[0]);
    close(fds[1]);
    int status = 0;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) break;
        if (r < 0 && errno != EINTR) return sl_fail(err, SL_ERUNTIME, "analyze: lost stage %s", s->spec->name);
        if (interrupted) kill(pid, SIGTERM);
        if (p->tty) show(p, s, now() - t0, 0);
        struct timespec nap = {0, 50 * 1000 * 1000};
        nanosleep(&nap, NULL);
    }
    s->seconds = now() - t0;
    if (interrupted) {
        remove_partial(dir, s);
        if (p->tty) fputs("\n", stderr);
        return sl_fail(err, 130, "analyze: interrupted during %s; run the same command again to resume", s->spec->name);
    }
    /* what the stage said (warnings, or the reason it failed) */
    FILE *f = fopen(log, "r");
    char line[2048], last[2048] = "";
    if (p->tty) fprintf(stderr, "\r\033[K");
    while (f && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0) fprintf(stderr, "  %s: %s\n", s->spec->name, line);
        snprintf(last, sizeof last, "%s", line);
    }
    if (f) fclose(f);
    if (!WIFEXITED(status) || WEXITSTATUS(status)) {
        remove_partial(dir, s);
        int code = WIFEXITED(status) ? WEXITSTATUS(status) : SL_ERUNTIME;
        return sl_fail(err, code == SL_EINPUT ? SL_EINPUT : SL_ERUNTIME, "analyze: stage %s failed%s%s (log: %s)",
                       s->spec->name, last[0] ? ": " : "", last[0] ? last : "", log);
    }
    if (s->spec->stdout_to && rename(tmp, out))
        return sl_fail(err, SL_ERUNTIME, "%s: cannot rename to %s: %s", tmp, out, strerror(errno));
    show(p, s, s->seconds, 1);
    return SL_OK;
}

/* Under MPI a stage cannot be a child process: forking an MPI process is
 * unsafe with some transports, and the child would have to join the job.
 * Every rank runs the stage's command in-process instead (the same entry
 * and argv the child would get), with rank 0's stdout and stderr on the
 * stage's files; a stage that is not sharded (baseline, probe) runs on
 * rank 0 alone. */
static int run_stage_mpi(const char *dir, stage *s, progress *p, sl_error *err)
{
    char log[4200], out[4200], tmp[4300];
    snprintf(log, sizeof log, "%s/logs/%s.log", dir, s->spec->name);
    snprintf(out, sizeof out, "%s/%s", dir, s->spec->stdout_to ? s->spec->stdout_to : "");
    snprintf(tmp, sizeof tmp, "%s.tmp", out);
    int sharded = !!(s->cmd->flags & SL_CMD_SHARDED), root = sl_dist_root(), rc = SL_OK, saved[2] = {-1, -1};
    double t0 = now();
    fflush(NULL);
    int fds[2];
    if (root && !(rc = open_stage_files(log, s->spec->stdout_to ? tmp : NULL, fds, err))) {
        saved[0] = dup(1), saved[1] = dup(2);
        if (saved[0] < 0 || saved[1] < 0 || dup2(fds[0], 1) < 0 || dup2(fds[1], 2) < 0)
            rc = sl_fail(err, SL_ERUNTIME, "analyze: cannot redirect output to %s: %s", log, strerror(errno));
        close(fds[0]);
        close(fds[1]);
    }
    if (!rc && sharded) rc = s->cmd->run(s->plan.argc - 2, s->plan.argv + 2);
    else if (!rc && root) {
        sl_dist_solo(1);
        rc = s->cmd->run(s->plan.argc - 2, s->plan.argv + 2);
        sl_dist_solo(0);
    }
    rc = sl_dist_settle(rc); /* the failing rank prints (rank 0: into the log) */
    fflush(NULL);
    if (root) {
        if (saved[0] >= 0) dup2(saved[0], 1), close(saved[0]);
        if (saved[1] >= 0) dup2(saved[1], 2), close(saved[1]);
    }
    s->seconds = now() - t0;
    FILE *f = root ? fopen(log, "r") : NULL;
    char line[2048], last[2048] = "";
    while (f && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        if (!rc) fprintf(stderr, "  %s: %s\n", s->spec->name, line);
        snprintf(last, sizeof last, "%s", line);
    }
    if (f) fclose(f);
    if (rc) {
        if (root) remove_partial(dir, s);
        if (root && s->spec->stdout_to) unlink(tmp);
        return sl_fail(err, rc == SL_EINPUT ? SL_EINPUT : SL_ERUNTIME, "analyze: stage %s failed%s%s (log: %s)", s->spec->name,
                       last[0] ? ": " : "", last[0] ? last : "", log);
    }
    if (root && s->spec->stdout_to && rename(tmp, out))
        return sl_fail(err, SL_ERUNTIME, "%s: cannot rename to %s: %s", tmp, out, strerror(errno));
    if (root) show(p, s, s->seconds, 1);
    return SL_OK;
}

/* Which stages a previous run of the same inputs finished. */
static int previous(const char *dir, const cJSON *inputs, int force, stage *st, int n, sl_error *err)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/analyze.json", dir);
    if (access(path, F_OK)) return SL_OK;
    char *text = NULL;
    sl_error ignored = {0};
    sl_read_text(path, 16u << 20, "an analyze.json", &text, &ignored);
    cJSON *old = text ? cJSON_Parse(text) : NULL;
    free(text);
    int same = old && cJSON_Compare(cJSON_GetObjectItemCaseSensitive(old, "inputs"), inputs, 1);
    if (!same && !force) {
        cJSON_Delete(old);
        return sl_fail(err, SL_EINPUT,
                       "%s: %s; pass --force to replace it, or choose another -o", path,
                       old ? "this directory holds an analysis of other inputs or options"
                           : "not a readable analyze.json");
    }
    const cJSON *row;
    if (same && !force) cJSON_ArrayForEach(row, cJSON_GetObjectItemCaseSensitive(old, "stages"))
        {
            const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(row, "name"));
            const char *status = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(row, "status"));
            for (int i = 0; name && status && i < n; i++) {
                if (strcmp(name, st[i].spec->name) || (strcmp(status, "done") && strcmp(status, "kept"))) continue;
                int all = 1;
                for (int k = 0; k < 2; k++) all &= !st[i].spec->outputs[k] || exists(dir, st[i].spec->outputs[k]);
                if (!all) continue;
                st[i].kept = 1;
                const cJSON *sec = cJSON_GetObjectItemCaseSensitive(row, "seconds");
                st[i].seconds = cJSON_IsNumber(sec) ? sec->valuedouble : NAN;
            }
        }
    cJSON_Delete(old);
    return SL_OK;
}

static int write_manifest(const char *dir, const cJSON *base, const stage *st, int n, int running, sl_error *err)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/analyze.json", dir);
    cJSON *m = cJSON_Duplicate(base, 1);
    cJSON *arr = cJSON_AddArrayToObject(m, "stages");
    for (int i = 0; i < n; i++) {
        cJSON *row = cJSON_CreateObject();
        char *line = command_line(&st[i]);
        cJSON_AddStringToObject(row, "name", st[i].spec->name);
        cJSON_AddStringToObject(row, "command", line ? line : "");
        free(line);
        const char *status = st[i].skipped ? "skipped" : st[i].kept ? "kept" : i < running ? "done" : "pending";
        cJSON_AddStringToObject(row, "status", status);
        int timed = strcmp(status, "pending") && strcmp(status, "skipped");
        cJSON_AddItemToObject(row, "seconds", timed ? sl_json_number(st[i].seconds) : cJSON_CreateNull());
        if (st[i].skipped) cJSON_AddStringToObject(row, "reason", st[i].skipped);
        cJSON_AddItemToArray(arr, row);
    }
    int rc = sl_json_write(m, path, err);
    cJSON_Delete(m);
    return rc;
}

/* One analyze at a time into DIR: a second would race the first for every
 * file. The lock is an flock on DIR/.lock, held by the open descriptor
 * for the whole run and released by the system however the run ends (kill
 * -9 included), so a stale lock cannot block the rerun that resumes. */
static int lock_dir(const char *dir, int *fd, sl_error *err)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/.lock", dir);
    *fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0666);
    if (*fd < 0) return sl_fail(err, SL_ERUNTIME, "%s: cannot create: %s", path, strerror(errno));
    if (!flock(*fd, LOCK_EX | LOCK_NB)) return SL_OK;
    int e = errno;
    close(*fd);
    *fd = -1;
    if (e == EWOULDBLOCK)
        return sl_fail(err, SL_EINPUT, "%s: another seqlens analyze is writing into this directory (it holds %s); "
                                       "wait for it to finish or choose another -o",
                       dir, path);
    return sl_fail(err, SL_ERUNTIME, "%s: cannot lock: %s", path, strerror(e));
}

/* No file analyze writes into DIR may be one of its inputs (the data kept
 * in DIR as scores.h5, say, or the logits of --verify): checked before the first stage runs. */
static int check_outputs(const char *dir, const stage *st, int n, const char *const *inputs, int n_in, sl_error *err)
{
    static const char *const OWN[] = {"analyze.json", "report.html"};
    char p[4200];
    int rc = SL_OK;
    for (int i = 0; !rc && i < 2; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, OWN[i]);
        rc = sl_outpath_check(p, inputs, n_in, err);
    }
    for (int i = 0; !rc && i < n; i++) {
        for (int k = 0; !rc && k < 2; k++) {
            if (!st[i].spec->outputs[k]) continue;
            snprintf(p, sizeof p, "%s/%s", dir, st[i].spec->outputs[k]);
            rc = sl_outpath_check(p, inputs, n_in, err);
        }
        snprintf(p, sizeof p, "%s/logs/%s.log", dir, st[i].spec->name);
        if (!rc) rc = sl_outpath_check(p, inputs, n_in, err);
    }
    return rc;
}

static int make_dir(const char *path, sl_error *err)
{
    if (mkdir(path, 0777) && errno != EEXIST) return sl_fail(err, SL_ERUNTIME, "%s: cannot create: %s", path, strerror(errno));
    struct stat st;
    if (stat(path, &st) || !S_ISDIR(st.st_mode)) return sl_fail(err, SL_EINPUT, "%s: exists and is not a directory", path);
    return SL_OK;
}

/* --verify: the load proven before any stage runs (and before anything
 * is written); a mismatch stops analyze with verify's own message. */
static int verify_first(sl_session *s, const sl_args *a, cJSON **result, sl_error *err)
{
    int ok = 0;
    int rc = sl_verify(s, a, result, &ok, err);
    if (!rc && !ok) rc = sl_verify_mismatch(*result, a, err);
    if (!rc && sl_dist_root())
        fprintf(stderr, "[verify] %s matches %s on %.0f examples (max relative error %.3g)\n", a->pos[0], a->logits_file,
                cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(*result, "n")),
                cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(*result, "max_rel_error")));
    if (rc) {
        cJSON_Delete(*result);
        *result = NULL;
    }
    return rc;
}

static int cmd_analyze(int argc, char **argv)
{
    sl_args a;
    sl_error err = {0};
    if (sl_parse_args(&a, "analyze", argc, argv,
                      "-o --steps --bootstrap --seed --examples --sample --threads --batch --device --force --verify --tolerance",
                      &err))
        return sl_report(&err);
    if (a.help || a.n_pos != 2) return sl_usage(USAGE, a.help);
    if (!a.out) return sl_report(&(sl_error){SL_EINPUT, "seqlens analyze: -o DIR is required"});
    if (a.tolerance_given && !a.logits_file)
        return sl_report(&(sl_error){SL_EINPUT, "seqlens analyze: --tolerance needs --verify"});
    const char *dir = a.out;
    int steps = a.steps ? a.steps : 16;
    long sample = a.sample ? a.sample : DEFAULT_SAMPLE;
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return sl_report(&(sl_error){SL_ERUNTIME, "seqlens analyze: cannot find its own executable"});
    self[n] = 0;

    /* open both inputs first: a bad model or dataset is reported before
     * anything is written */
    sl_session s;
    sl_args check = a;
    check.device = "cpu"; /* the stages run the model; this only reads the inputs */
    check.sample = 0;       /* the stages take their samples */
    int rc = sl_session_open(&s, &check, a.pos[0], a.pos[1], &err);
    if (!rc) rc = sl_session_need_both_classes(&s, &err);
    cJSON *verified = NULL;
    if (!rc && a.logits_file) rc = verify_first(&s, &a, &verified, &err);
    stage st[MAX_STAGES];
    memset(st, 0, sizeof st);
    int n_st = 0;
    cJSON *base = cJSON_CreateObject(), *inputs = NULL;
    if (!rc) {
        char options[256];
        snprintf(options, sizeof options, "--examples %ld:%ld --seed %llu --steps %d --bootstrap %d --sample %ld",
                 s.run.first, s.run.first + s.run.count, a.seed, steps, a.bootstrap, sample);
        n_st = plan(st, &a, &s, dir, steps, sample);
        cJSON_AddStringToObject(base, "model", a.pos[0]);
        cJSON_AddStringToObject(base, "data", a.pos[1]);
        inputs = sl_manifest_inputs(a.pos[0], a.pos[1], options, &err);
        if (!inputs) rc = err.code;
    }
    if (!rc) rc = sl_manifest_model(base, &s, a.pos[0], &err);
    if (!rc) rc = sl_manifest_data(base, &s, &err);
    if (verified) cJSON_AddItemToObject(base, "verify", verified);
    sl_session_close(&s);
    if (!rc) {
        sl_manifest_versions(base);
        cJSON_AddItemToObject(base, "inputs", cJSON_Duplicate(inputs, 1));
    }
    char logs[4200];
    snprintf(logs, sizeof logs, "%s/logs", dir);
    /* under MPI rank 0 alone reads and writes DIR, and tells the others
     * which stages are kept */
    int lock = -1;
    if (!rc && sl_dist_root()) rc = make_dir(dir, &err);
    if (!rc && sl_dist_root()) rc = lock_dir(dir, &lock, &err);
    if (!rc && sl_dist_root()) rc = previous(dir, inputs, a.force, st, n_st, &err);
    if (!rc && sl_dist_root()) rc = make_dir(logs, &err);
    const char *in[3] = {a.pos[0], a.pos[1], a.logits_file};
    if (!rc && sl_dist_root()) rc = check_outputs(dir, st, n_st, in, a.logits_file ? 3 : 2, &err);
    int32_t kept[MAX_STAGES];
    for (int i = 0; i < n_st; i++) kept[i] = st[i].kept;
    rc = sl_dist_bcast_i32(rc, kept, n_st, &err);
    for (int i = 0; i < n_st; i++) st[i].kept = kept[i];

    progress p = {.tty = isatty(2), .total = n_st + 1, .started = now()};
    for (int i = 0; i < n_st; i++)
        if (!st[i].kept && !st[i].skipped) p.left_weight += st[i].weight;
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    for (int i = 0; i < n_st && !rc; i++) {
        p.index = i + 1;
        if (sl_dist_root()) rc = write_manifest(dir, base, st, n_st, i, &err);
        if ((rc = sl_dist_agree(rc, &err))) break;
        if (st[i].kept) {
            if (sl_dist_root()) fprintf(stderr, "[%d/%d] %-16s done earlier, kept\n", p.index, p.total, st[i].spec->name);
            continue;
        }
        if (st[i].skipped) {
            /* an earlier analysis's result (--force) must not pass for this data's */
            if (sl_dist_root()) remove_outputs(dir, &st[i]);
            if (sl_dist_root()) fprintf(stderr, "[%d/%d] %-16s skipped: %s\n", p.index, p.total, st[i].spec->name, st[i].skipped);
            continue;
        }
        rc = sl_dist_size() > 1 ? run_stage_mpi(dir, &st[i], &p, &err) : run_stage(self, dir, &st[i], &p, &err);
        p.done_weight += st[i].weight;
        p.done_seconds += st[i].seconds;
        p.left_weight -= st[i].weight;
    }
    if (!rc && sl_dist_root()) rc = write_manifest(dir, base, st, n_st, n_st, &err);
    sl_report_info info;
    if (!rc && sl_dist_root()) {
        double t0 = now();
        rc = sl_report_build(dir, &info, &err);
        if (!rc && info.warning[0]) fprintf(stderr, "seqlens: warning: %s\n", info.warning);
        if (!rc)
            fprintf(stderr, "[%d/%d] %-16s done in %.1f s (total %.1f s)\n", p.total, p.total, "report", now() - t0,
                    now() - p.started);
    }
    rc = sl_dist_agree(rc, &err);
    if (!rc) printf("wrote %s/report.html (%d figures)\n", dir, info.figures);
    for (int i = 0; i < n_st; i++)
        for (int k = 0; k < st[i].plan.argc; k++) free(st[i].plan.argv[k]);
    cJSON_Delete(base);
    cJSON_Delete(inputs);
    if (lock >= 0) close(lock); /* releases DIR/.lock */
    if (rc == 130) {
        fprintf(stderr, "seqlens: %s\n", err.msg);
        return 130;
    }
    return rc ? sl_report(&err) : 0;
}

static sl_command analyze_command = {
    .name = "analyze",
    .summary = "  analyze MODEL DATA -o DIR   every analysis, then the report (resumes when interrupted)\n",
    .order = 130,
    .flags = SL_CMD_SHARDED | SL_CMD_OUT_DIR,
    .run = cmd_analyze,
};
SL_REGISTER_COMMAND(analyze_command)
