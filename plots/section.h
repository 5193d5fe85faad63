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

typedef struct sl_section {
    const char *file; /* its result, in the report directory ("reverse.json") */
    int file_order;   /* the file's place in the report's list of result files */
    /* what the report reads from the file (sl_json_check specs): fields of
     * the top object, then of each element of one array in it (or NULL) */
    const char *top, *array, *row;
    int order;               /* the section's place on the page and in the glance list */
    int only_some_models;    /* a result only some models have (skip: Mamba's): not listed as missing */
    const char *id, *label;  /* its anchor and its name in the glance list */
    /* its one sentence (plots/verdict.h), "" when own holds nothing to judge */
    void (*verdict)(const sl_results *r, const cJSON *own, char *out, size_t size);
    /* the section itself; own is its result, never NULL, sentence its verdict */
    int (*render)(sl_report_ctx *rp, const cJSON *own, const char *sentence, sl_error *err);
    /* optional: what else it reads besides the JSON (reverse's logits), read
     * after every JSON file; *extra is freed with free_extra */
    int (*load)(void **extra, const char *dir, sl_error *err);
    void (*free_extra)(void *extra);
} sl_section;

void sl_section_register(const sl_section *s);
/* The sections in page order, and in the order of their files. */
int sl_sections(const sl_section *const **list);
int sl_sections_by_file(const sl_section *const **list);

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
