/* A result file and the report section drawn from it. Each analysis's own
 * file fills its sections (cli/registry.h registers them here); plots/
 * keeps what they share: the page, the tables, the figures' plumbing, the
 * loading and checking of the files, and the list. */
#ifndef SL_SECTION_H
#define SL_SECTION_H

#include <stddef.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "core/error.h"
#include "plots/page.h"

#define SL_MAX_SECTIONS 32

typedef struct sl_results sl_results;
typedef struct sl_report_ctx sl_report_ctx;

/* One analysis's part in seqlens summarize's row of a run (plots/summary.h):
 * its keys in summary.json and summary.csv, its cell of summary.html's
 * table, and optionally a figure across runs. */
typedef struct {
    const char *name, *caption; /* figures/NAME.png and its caption */
    const char *title, *ylabel;
    const char *key, *label;    /* the row's number drawn per run, and its series' name */
    const char *key2, *label2;  /* optional: a second series, dashed (a baseline) */
    const char *point_names;    /* optional: the row's string written beside each point */
} sl_summary_figure;

typedef struct {
    int order; /* its place among the columns */
    /* adds its keys, in the order of keys, to row: from own, its result in
     * the run, or as null where own is NULL (r: the run's other results) */
    void (*row)(const sl_results *r, const cJSON *own, cJSON *row);
    const char *keys[4]; /* its CSV columns, NULL-terminated */
    const char *heading; /* its column's heading in the HTML table (HTML) */
    void (*cell)(FILE *f, const cJSON *row); /* that column's <td> in the row */
    const sl_summary_figure *figure;
} sl_summary_part;

typedef struct sl_section {
    const char *file; /* its result, in the report directory ("reverse.json") */
    int file_order;   /* the file's place in the report's list of result files */
    /* what the report reads from the file (sl_json_check specs): fields of
     * the top object, then of each element of one array in it (or NULL) */
    const char *top, *array, *row;
    int order;               /* the section's place on the page and in the glance list */
    int only_some_models;    /* a result only some models have (skip: Mamba's): not listed as missing */
    const char *id, *label;  /* its anchor and its name in the glance list */
    /* its one sentence (README: the verdicts), "" when own holds nothing to judge */
    void (*verdict)(const sl_results *r, const cJSON *own, char *out, size_t size);
    /* the section itself; own is its result, never NULL, sentence its verdict */
    int (*render)(sl_report_ctx *rp, const cJSON *own, const char *sentence, sl_error *err);
    /* optional: what else it reads besides the JSON (reverse's logits), read
     * after every JSON file; *extra is freed with free_extra */
    int (*load)(void **extra, const char *dir, sl_error *err);
    void (*free_extra)(void *extra);
    const sl_summary_part *summary; /* optional: its part in summarize's row */
} sl_section;

void sl_section_register(const sl_section *s);
/* The sections in page order, and in the order of their files. */
int sl_sections(const sl_section *const **list);
int sl_sections_by_file(const sl_section *const **list);
/* The sections with a part in summarize's row, in the order of the parts. */
int sl_sections_summarized(const sl_section *const **list);

/* The report being written, as its sections see it. */
struct sl_report_ctx {
    const char *dir;
    const sl_results *r;
    sl_page page;
    FILE *f; /* page.f */
};

/* A table over an array of objects: each column a key and a kind: 's'
 * string, 'n' number, 'i' integer, 'c' a [lo, hi] interval. */
typedef struct {
    const char *heading, *key;
    char kind;
} sl_column;

/* The rows of arr, sorted ascending by the number field sort unless NULL. */
void sl_report_table(FILE *f, const cJSON *arr, const char *sort, const sl_column *cols, int ncols);
/* A result computed on a sample (--sample) says so above its table. */
void sl_report_sample_note(sl_report_ctx *rp, const cJSON *result, const char *more);

#endif
