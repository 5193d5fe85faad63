#include "plots/gnuplot.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/atomic.h"

int sl_gnuplot_find(char *exe, size_t size)
{
    const char *env = getenv("SEQLENS_GNUPLOT");
    if (env) {
        /* absolute: gnuplot runs in the figures directory */
        char abs[PATH_MAX];
        if (!*env || access(env, X_OK) || !realpath(env, abs)) return -1;
        snprintf(exe, size, "%s", abs);
        return 0;
    }
    const char *path = getenv("PATH");
    if (!path) path = "/usr/bin:/bin";
    while (*path) {
        size_t n = strcspn(path, ":");
        char abs[PATH_MAX];
        if (n && (size_t)snprintf(exe, size, "%.*s/gnuplot", (int)n, path) < size && !access(exe, X_OK) &&
            realpath(exe, abs)) {
            snprintf(exe, size, "%s", abs);
            return 0;
        }
        path += n + (path[n] == ':');
    }
    return -1;
}

/* Runs exe with args in dir; what it prints is kept in errbuf. */
static int run_in(const char *dir, const char *exe, char *const argv[], char *errbuf, size_t errsize)
{
    int fds[2];
    if (pipe(fds)) return -1;
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        dup2(fds[1], 1);
        dup2(fds[1], 2);
        close(fds[0]);
        if (dir && chdir(dir)) _exit(126);
        execv(exe, argv);
        _exit(127);
    }
    close(fds[1]);
    size_t used = 0;
    char sink[512];
    for (;;) {
        char *to = used + 1 < errsize ? errbuf + used : sink;
        size_t room = used + 1 < errsize ? errsize - 1 - used : sizeof sink;
        ssize_t got = read(fds[0], to, room);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) break;
        if (to != sink) used += (size_t)got;
    }
    if (errsize) errbuf[used] = 0;
    close(fds[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

void sl_gnuplot_version(const char *exe, char *out, size_t size)
{
    char buf[128];
    char *argv[] = {(char *)exe, "--version", NULL};
    out[0] = 0;
    if (run_in(NULL, exe, argv, buf, sizeof buf) == 0) {
        buf[strcspn(buf, "\n")] = 0;
        snprintf(out, size, "%s", buf);
    }
}

static char *join(const char *dir, const char *name, const char *ext)
{
    size_t n = strlen(dir) + strlen(name) + strlen(ext) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s%s", dir, name, ext);
    return p;
}

int sl_gnuplot_render(const char *exe, const char *dir, const char *name, const char *body, int width, int height,
                      sl_error *err)
{
    char *gp = join(dir, name, ".gp"), *png = join(dir, name, ".png"), *svg = join(dir, name, ".svg");
    int rc = gp && png && svg ? SL_OK : sl_fail(err, SL_ERUNTIME, "out of memory");
    sl_atomic script;
    if (!rc) rc = sl_atomic_open(&script, gp, err);
    if (!rc) {
        /* noenhanced: family names such as key_a are text, not subscripts.
         * seqlens draws into NAME.png.tmp (suffix, set on gnuplot's command
         * line) and renames; a person who runs the script gets NAME.png. */
        fprintf(script.f,
                "# Drawn by seqlens report; to redraw %s.png and %s.svg, run here: gnuplot %s.gp\n"
                "if (!exists('suffix')) suffix = ''\n"
                "set terminal pngcairo noenhanced size %d,%d font 'sans,10'\n"
                "set output '%s.png'.suffix\n"
                "%s\n"
                "set terminal svg noenhanced size %d,%d dynamic font 'sans,10'\n"
                "set output '%s.svg'.suffix\n"
                "replot\n"
                "unset output\n",
                name, name, name, width, height, name, body, width, height, name);
        rc = sl_atomic_commit(&script, err);
    }
    /* gnuplot opens its outputs as they are: whatever a killed run or
     * someone else left at NAME.png.tmp and NAME.svg.tmp (a symlink) goes
     * first, so that gnuplot creates them anew */
    char *png_tmp = png ? sl_tmp_name(png) : NULL, *svg_tmp = svg ? sl_tmp_name(svg) : NULL;
    if (!rc && (!png_tmp || !svg_tmp)) rc = sl_fail(err, SL_ERUNTIME, "out of memory");
    for (int i = 0; !rc && i < 2; i++)
        if (sl_clear_path(i ? svg_tmp : png_tmp))
            rc = sl_fail(err, SL_ERUNTIME, "%s: cannot remove: %s", i ? svg_tmp : png_tmp, strerror(errno));
    if (!rc) {
        char msg[4096], gpname[300];
        snprintf(gpname, sizeof gpname, "%s.gp", name);
        char *argv[] = {(char *)exe, "-e", "suffix = '.tmp'", gpname, NULL};
        int st = run_in(dir, exe, argv, msg, sizeof msg);
        if (st) {
            /* gnuplot's last line names the problem */
            size_t n = strlen(msg);
            while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' ')) msg[--n] = 0;
            char *last = strrchr(msg, '\n');
            rc = sl_fail(err, SL_ERUNTIME, "%s: gnuplot failed (status %d): %s", gp, st, last ? last + 1 : msg);
        }
    }
    if (!rc) rc = sl_atomic_adopt(png, err);
    if (!rc) rc = sl_atomic_adopt(svg, err);
    if (rc && png_tmp && svg_tmp) {
        unlink(png_tmp);
        unlink(svg_tmp);
    }
    free(png_tmp);
    free(svg_tmp);
    free(gp);
    free(png);
    free(svg);
    return rc;
}
