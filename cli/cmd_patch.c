#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ablation/patch.h"
#include "cli/commands.h"
#include "cli/registry.h"
#include "cli/stage.h"
#include "core/inputfile.h"
#include "core/jsonout.h"
#include "plots/figures.h"
#include "plots/results.h"
#include "plots/section.h"

static const char USAGE[] =
    "usage: seqlens patch MODEL DATA --hook PATTERN... [--positions all|last|LIST]\n"
    "                     [--pairs FILE | --pairing random|label-flip] [--n-pairs M] [-o out.json]\n"
    "                     [--bootstrap B] [--seed S] [--examples A:B] [--sample S] [--threads N]\n"
    "  Interchange interventions: each base example is run with one hook's activation at one position\n"
    "  taken from a source example's run. Positions: all = 0..L-1 of the padded width, last = -1, or a\n"
    "  comma-separated list; negative positions count from each example's own end (resolved in base\n"
    "  and source separately). Pairs: --pairs FILE, one \"BASE SOURCE\" a line (0-based indices), or\n"
    "  the first M selected examples (default 200) each with a seeded source: random, or label-flip\n"
    "  (default; a source of the other label). JSON: n_pairs, results [{hook, position, effect (mean of\n"
    "  (patched - base) / (source - base) logit over the pairs with |source - base| >= 1e-6), ci95\n"
    "  (bootstrap over pairs), n_used, n_skipped (position not valid in both, or no difference)}].\n"
    "  Cost: hooks x positions x pairs partial forward passes, each from the patched layer up. A list\n"
    "  names each position once (a repeat is refused). --sample S draws the pairs from a seeded sample\n"
    "  of S of the selected examples (not with --pairs, whose indices are the file's).\n";

static int by_value(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* --positions all|last|LIST: a non-empty list, each position once. */
static int parse_positions(const char *spec, int L, int **out, int *n, sl_error *err)
{
    *n = 0;
    if (!strcmp(spec, "all") || !strcmp(spec, "last")) {
        int all = spec[0] == 'a';
        if (!(*out = malloc((size_t)(all ? L : 1) * sizeof **out))) return sl_fail(err, SL_ERUNTIME, "out of memory");
        for (int p = 0; p < (all ? L : 1); p++) (*out)[(*n)++] = all ? p : -1;
        return SL_OK;
    }
    int cap = 1;
    for (const char *c = spec; *c; c++) cap += *c == ',';
    if (!(*out = malloc((size_t)cap * sizeof **out))) return sl_fail(err, SL_ERUNTIME, "out of memory");
    const char *p = spec;
    do {
        long v;
        if (sl_parse_int(p, -(long)L, L - 1, &v, &p) || (*p && *p != ','))
            return sl_fail(err, SL_EINPUT, "--positions '%.*s%s': expected all, last or integers in [-%d, %d]",
                           SL_CLIP(spec), L, L - 1);
        (*out)[(*n)++] = (int)v;
    } while (*p++ == ',');
    /* a repeat, found in sorted order (the list may be long) */
    int *sorted = malloc((size_t)*n * sizeof *sorted), rc = SL_OK;
    if (!sorted) return sl_fail(err, SL_ERUNTIME, "out of memory");
    memcpy(sorted, *out, (size_t)*n * sizeof *sorted);
    qsort(sorted, (size_t)*n, sizeof *sorted, by_value);
    for (int k = 1; !rc && k < *n; k++)
        if (sorted[k] == sorted[k - 1])
            rc = sl_fail(err, SL_EINPUT, "--positions '%.*s%s': %d is listed twice", SL_CLIP(spec), sorted[k]);
    free(sorted);
    return rc;
}

/* One line of a pairs file, comment stripped: two example indices in
 * [0, n) and nothing else. */
static int parse_pair(const char *line, long n, long *b, long *s)
{
    const char *p = line;
    long v[2];
    for (int k = 0; k < 2; k++) {
        while (*p == ' ' || *p == '\t' || *p == '\r') p++;
        if (*p < '0' || *p > '9') return -1;
        char *end;
        errno = 0;
        v[k] = strtol(p, &end, 10);
        if (errno || v[k] >= n) return -1;
        p = end;
    }
    while (*p == ' ' || *p == '\t' || *p == '\r') p++;
    if (*p) return -1;
    *b = v[0];
    *s = v[1];
    return 0;
}

/* --pairs FILE: "BASE SOURCE" per line; # starts a comment. A regular
 * file only, read a byte at a time into a bounded line (a comment may run
 * on), so that no line can split into two and no input can grow a buffer. */
static int read_pairs(const char *path, long n_examples, long **pairs, long *n, sl_error *err)
{
    int fd;
    size_t size;
    int rc = sl_input_open(path, &fd, &size, err);
    if (rc) return rc;
    FILE *f = fdopen(fd, "r");
    if (!f) {
        rc = sl_fail(err, SL_ERUNTIME, "%s: cannot read: %s", path, strerror(errno));
        close(fd);
        return rc;
    }
    long cap = 256, line_no = 1;
    *n = 0;
    *pairs = malloc((size_t)cap * 2 * sizeof **pairs);
    if (!*pairs) rc = sl_fail(err, SL_ERUNTIME, "out of memory");
    char line[256];
    size_t len = 0;
    int comment = 0;
    for (int c = 0; !rc && c != EOF;) {
        c = getc(f);
        if (c == 0) {
            rc = sl_fail(err, SL_EINPUT, "%s:%ld: a NUL byte (not a text file)", path, line_no);
            break;
        }
        if (c != '\n' && c != EOF) {
            comment |= c == '#';
            if (comment) continue;
            if (len >= sizeof line - 1) {
                rc = sl_fail(err, SL_EINPUT, "%s:%ld: line longer than %zu characters", path, line_no, sizeof line - 1);
                break;
            }
            line[len++] = (char)c;
            continue;
        }
        line[len] = 0;
        long b, s;
        size_t blank = strspn(line, " \t\r");
        if (line[blank] && parse_pair(line, n_examples, &b, &s)) {
            rc = sl_fail(err, SL_EINPUT, "%s:%ld: expected two example indices in [0, %ld)", path, line_no, n_examples);
            break;
        }
        if (line[blank]) {
            if (*n == cap) {
                long *grown = realloc(*pairs, (size_t)(cap *= 2) * 2 * sizeof **pairs);
                if (!grown) {
                    rc = sl_fail(err, SL_ERUNTIME, "out of memory");
                    break;
                }
                *pairs = grown;
            }
            (*pairs)[2 * *n] = b;
            (*pairs)[2 * (*n)++ + 1] = s;
        }
        len = 0;
        comment = 0;
        line_no++;
    }
    if (!rc && ferror(f)) rc = sl_fail(err, SL_ERUNTIME, "%s: read failed: %s", path, strerror(errno));
    fclose(f);
    if (!rc && *n == 0) rc = sl_fail(err, SL_EINPUT, "%s: no pairs", path);
    return rc;
}

static cJSON *to_json(const sl_model *m, const sl_patch_opts *o, const sl_patch_result *r, const char *pairing)
{
    cJSON *j = cJSON_CreateObject(), *rows = cJSON_CreateArray();
    cJSON_AddNumberToObject(j, "n_pairs", (double)r->n_pairs);
    cJSON_AddStringToObject(j, "pairing", pairing);
    cJSON_AddNumberToObject(j, "seed", (double)o->seed);
    cJSON_AddNumberToObject(j, "bootstrap", o->bootstrap);
    for (int p = 0; p < o->n_points; p++)
        for (int q = 0; q < o->n_positions; q++) {
            long c = (long)p * o->n_positions + q;
            cJSON *row = cJSON_CreateObject();
            cJSON_AddStringToObject(row, "hook", m->points[o->points[p]].name);
            cJSON_AddNumberToObject(row, "position", o->positions[q]);
            cJSON_AddItemToObject(row, "effect", sl_json_number(r->effect[c]));
            cJSON_AddItemToObject(row, "ci95", sl_json_interval((double[2]){r->ci_lo[c], r->ci_hi[c]}));
            cJSON_AddNumberToObject(row, "n_used", (double)r->n_used[c]);
            cJSON_AddNumberToObject(row, "n_skipped", (double)r->n_skipped[c]);
            cJSON_AddItemToArray(rows, row);
        }
    cJSON_AddItemToObject(j, "results", rows);
    return j;
}

static int cmd_patch(int argc, char **argv)
{
    sl_args a;
    sl_error err = {0};
    if (sl_parse_args(&a, "patch", argc, argv,
                      "-o --hook --positions --pairs --pairing --n-pairs --bootstrap --seed --examples --sample --threads --batch --device",
                      &err))
        return sl_report(&err);
    if (a.help || a.n_pos != 2 || !a.n_hooks) return sl_usage(USAGE, a.help);
    if (a.pairs_file && a.pairing)
        return sl_report(&(sl_error){SL_EINPUT, "seqlens patch: give --pairs FILE or --pairing, not both"});
    if (a.pairs_file && a.sample)
        return sl_report(&(sl_error){SL_EINPUT, "seqlens patch: --pairs names examples of the file: not with --sample"});
    const char *pairing = a.pairs_file ? "file" : a.pairing ? a.pairing : "label-flip";
    if (!a.pairs_file && strcmp(pairing, "random") && strcmp(pairing, "label-flip"))
        return sl_report(&(sl_error){SL_EINPUT, "seqlens patch: --pairing: expected random or label-flip"});
    sl_session s;
    int rc = sl_session_open(&s, &a, a.pos[0], a.pos[1], &err), n_points = 0, n_positions = 0;
    int *points = rc ? NULL : malloc((size_t)s.model.n_points * sizeof *points), *positions = NULL;
    long *pairs = NULL, n_pairs = 0;
    if (!rc && !points) rc = sl_fail(&err, SL_ERUNTIME, "out of memory");
    for (int h = 0; !rc && h < a.n_hooks; h++) {
        int hit = 0;
        for (int i = 0; i < s.model.n_points; i++) {
            if (!sl_hook_match(a.hooks[h], s.model.points[i].name) || !sl_patchable(&s.model, i)) continue;
            int seen = 0;
            for (int k = 0; k < n_points; k++) seen |= points[k] == i;
            if (!seen) points[n_points++] = i;
            hit = 1;
        }
        if (!hit)
            rc = sl_fail(&err, SL_EINPUT,
                         "--hook '%s' matches no patchable hook point of %s (patterns, pooled, logits and embed.tokens "
                         "cannot be patched; see seqlens info)",
                         a.hooks[h], a.pos[0]);
    }
    if (!rc) rc = parse_positions(a.positions ? a.positions : "-1", s.data.L, &positions, &n_positions, &err);
    if (!rc && a.pairs_file) {
        rc = read_pairs(a.pairs_file, s.data.n, &pairs, &n_pairs, &err);
    } else if (!rc) {
        long want = a.n_pairs ? a.n_pairs : 200;
        if (want > s.run.count) want = s.run.count;
        if (!(pairs = malloc((size_t)want * 2 * sizeof *pairs))) rc = sl_fail(&err, SL_ERUNTIME, "out of memory");
        if (!rc)
            rc = sl_patch_pairs(&s.data, s.run.first, s.run.count, want, !strcmp(pairing, "label-flip"), a.seed, pairs,
                                &n_pairs, &err);
    }
    sl_patch_opts o = {points, n_points, positions, n_positions, pairs, n_pairs, a.threads, a.bootstrap, a.seed,
                       s.run.backend, s.run.batch};
    sl_patch_result r = {0};
    if (!rc) rc = sl_patch(&s.model, &s.data, &o, &r, &err);
    if (!rc) {
        cJSON *j = to_json(&s.model, &o, &r, pairing);
        sl_session_json_sample(j, &s);
        rc = sl_json_write(j, a.out, &err);
        cJSON_Delete(j);
        if (!rc && a.out) {
            long best = 0, cells = (long)n_points * n_positions;
            for (long c = 1; c < cells; c++)
                if (isnan(r.effect[best]) || (isfinite(r.effect[c]) && fabs(r.effect[c]) > fabs(r.effect[best]))) best = c;
            printf("%ld pairs, %d hooks x %d positions; largest effect %.3f at %s position %d -> %s\n", n_pairs,
                   n_points, n_positions, r.effect[best], s.model.points[points[best / n_positions]].name,
                   positions[best % n_positions], a.out);
        }
    }
    sl_patch_result_free(&r);
    free(points);
    free(positions);
    free(pairs);
    sl_session_close(&s);
    return rc ? sl_report(&err) : 0;
}

/* analyze's stage: the residual stream after each block at the last
 * PATCH_POSITIONS positions, over PATCH_PAIRS label-flip pairs, on a seeded
 * sample when more examples are selected */
#define PATCH_POSITIONS 16
#define PATCH_PAIRS 100

static int stage_positions(const sl_plan *p) { return p->s->data.L < PATCH_POSITIONS ? p->s->data.L : PATCH_POSITIONS; }

static void stage_args(sl_plan *p)
{
    char positions[8 * PATCH_POSITIONS] = "";
    for (int k = 1; k <= stage_positions(p); k++)
        snprintf(positions + strlen(positions), sizeof positions - strlen(positions), "%s-%d", k > 1 ? "," : "", k);
    sl_plan_inputs(p);
    sl_plan_arg(p, "--hook"), sl_plan_arg(p, "blocks.*.resid_post");
    sl_plan_arg(p, "--positions"), sl_plan_arg(p, "%s", positions);
    sl_plan_arg(p, "--n-pairs"), sl_plan_arg(p, "%d", PATCH_PAIRS);
    sl_plan_out(p);
    sl_plan_bootstrap(p);
    sl_plan_seed(p);
    sl_plan_examples(p);
    if (sl_plan_sampled(p)) sl_plan_sample(p);
    sl_plan_run(p);
}

/* partial passes over single examples, against passes over the data */
static double stage_weight(const sl_plan *p)
{
    long n = p->s->run.count;
    double pairs = n < PATCH_PAIRS ? (double)n : PATCH_PAIRS;
    return sl_plan_part(p) + (double)p->s->model.c.n_layers * stage_positions(p) * pairs / (double)n;
}

static const sl_stage STAGES[] = {
    {.name = "patch", .order = 100, .outputs = {"patch.json"}, .args = stage_args, .weight = stage_weight},
};

/* The (hook, position) whose patch moves the logit furthest toward the
 * source, and how many cells restore half or more; below an effect of 0.1
 * no single activation carries the answer. */
static void verdict(const sl_results *r, const cJSON *patch, char *out, size_t size)
{
    (void)r;
    out[0] = 0;
    const cJSON *row, *best = NULL;
    int cells = 0, half = 0;
    cJSON_ArrayForEach(row, cJSON_GetObjectItemCaseSensitive(patch, "results"))
    {
        double e = sl_jnum(row, "effect");
        if (!isfinite(e)) continue;
        cells++;
        half += e >= 0.5;
        if (!best || e > sl_jnum(best, "effect")) best = row;
    }
    if (!best) return;
    double e = sl_jnum(best, "effect");
    if (e < 0.1) {
        snprintf(out, size, "No single activation carries the answer: the largest patching effect is %.3f (%s, position %.0f).",
                 e, sl_jstr(best, "hook"), sl_jnum(best, "position"));
        return;
    }
    snprintf(out, size, "Patching %s at position %.0f restores %.0f%% of the logit difference over %.0f pairs; %d of %d "
                        "(hook, position) cells restore half or more.",
             sl_jstr(best, "hook"), sl_jnum(best, "position"), 100 * e, sl_jnum(best, "n_used"), half, cells);
}

/* Patching effect per hook (rows) and position (columns). */
static int figure(FILE *gp, const cJSON *patch)
{
    const cJSON *results = cJSON_GetObjectItemCaseSensitive(patch, "results"), *row;
    if (cJSON_GetArraySize(results) == 0) return 0;
    const char *hooks[256];
    int nh = 0, pos[512], np = 0;
    cJSON_ArrayForEach(row, results)
    {
        if (nh < 256) sl_gp_name_index(hooks, &nh, sl_jstr(row, "hook"));
        int p = (int)sl_jnum(row, "position"), seen = 0;
        for (int i = 0; i < np; i++) seen |= pos[i] == p;
        if (!seen && np < 512) pos[np++] = p;
    }
    sl_gp_title(gp, "Activation patching: fraction of the logit difference restored");
    fprintf(gp, "set xlabel 'position (negative: from the end)'\nset xrange [-0.5:%d.5]\nset yrange [-0.5:%d.5]\n"
                "set cbrange [-1:1]\nset palette defined (-1 '#b2182b', 0 '#ffffff', 1 '#2166ac')\nset ytics (",
            np - 1, nh - 1);
    for (int i = 0; i < nh; i++) {
        fputs(i ? ", " : "", gp);
        sl_gp_label(gp, hooks[i]);
        fprintf(gp, " %d", i);
    }
    fputs(")\nset xtics (", gp);
    for (int i = 0; i < np; i++) fprintf(gp, "%s\"%d\" %d", i ? ", " : "", pos[i], i);
    fprintf(gp, ")%s\n$e << EOD\n", np > 12 ? " rotate by -90" : "");
    cJSON_ArrayForEach(row, results)
    {
        int h = 0, p = 0;
        while (h < nh && strcmp(hooks[h], sl_jstr(row, "hook"))) h++;
        while (p < np && pos[p] != (int)sl_jnum(row, "position")) p++;
        if (h == nh || p == np) continue;
        fprintf(gp, "%d %d", p, h);
        sl_gp_num(gp, sl_jnum(row, "effect"));
        fputc('\n', gp);
    }
    fprintf(gp, "EOD\nplot $e using 1:2:(0.5):(0.5):3 with boxxyerror fc palette fs solid 1 notitle%s\n",
            np * nh <= 120 ? ", \\\n     $e using 1:2:(sprintf('%.2f', $3)) with labels notitle" : "");
    return 1;
}

static int section(sl_report_ctx *rp, const cJSON *p, const char *sentence, sl_error *err)
{
    sl_page_section(&rp->page, "patching", "Activation patching",
            "Interchange interventions: the base example run with one hook's activation at one position taken from a "
            "source example. The effect is the fraction of the logit difference restored, (patched - base) / (source - "
            "base): 1 means that activation carries the whole difference.");
    sl_page_verdict(&rp->page, sentence);
    sl_report_sample_note(rp, p, " (the pairs are drawn from it)");
    int rc = sl_page_figure_done(&rp->page, figure(sl_page_figure(&rp->page), p), "patch", "Patching effect per hook and position.", 860, 480,
                       err);
    static const sl_column COLS[] = {{"hook", "hook", 's'},     {"position", "position", 'i'}, {"effect", "effect", 'n'},
                                  {"95% CI", "ci95", 'c'},   {"pairs used", "n_used", 'i'}, {"skipped", "n_skipped", 'i'}};
    sl_report_table(rp->f, cJSON_GetObjectItemCaseSensitive(p, "results"), NULL, COLS, 6);
    fputs("</section>\n", rp->f);
    return rc;
}

static const sl_section SECTIONS[] = {
    {.file = "patch.json", .file_order = 110, .top = "n_pairs:n sampled_from?:n results:a", .array = "results",
     .row = "hook:s position:n effect:N ci95?:A n_used:n", .order = 100, .id = "patching", .label = "Patching",
     .verdict = verdict, .render = section},
};

static sl_command patch_command = {
    .name = "patch",
    .summary = "  patch MODEL DATA --hook PATTERN  activation patching between pairs of examples\n",
    .order = 70,
    .flags = SL_CMD_SHARDED,
    .run = cmd_patch,
    .stages = STAGES,
    .n_stages = 1,
    .sections = SECTIONS,
    .n_sections = 1,
};
SL_REGISTER_COMMAND(patch_command)
