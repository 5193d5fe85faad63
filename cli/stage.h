/* A stage's command line as seqlens analyze builds it, and the pieces each
 * stage's args function (cli/registry.h) puts together: the commands as a
 * person would type them (the report prints them). */
#ifndef SL_STAGE_H
#define SL_STAGE_H

#include "cli/commands.h"
#include "cli/registry.h"

#define SL_PLAN_MAX_ARGS 40

typedef struct sl_plan {
    const sl_args *a;    /* analyze's options */
    const sl_session *s; /* its model and data (read, not run) */
    const char *dir;     /* its -o DIR */
    int steps;           /* --steps: integrated gradients' */
    long sample;         /* --sample: the sampled stages' examples */
    const sl_stage *stage;
    int argc;
    char *argv[SL_PLAN_MAX_ARGS];
} sl_plan;

void sl_plan_arg(sl_plan *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* MODEL DATA */
void sl_plan_inputs(sl_plan *p);
/* -o DIR/RESULT, unless the stage's result is its standard output */
void sl_plan_out(sl_plan *p);
/* --seed S and --bootstrap B: analyze's own */
void sl_plan_seed(sl_plan *p);
void sl_plan_bootstrap(sl_plan *p);
/* --examples A:B when analyze was given a range */
void sl_plan_examples(sl_plan *p);
/* 1 when more examples are selected than --sample keeps; then
 * sl_plan_sample adds --sample S */
int sl_plan_sampled(const sl_plan *p);
void sl_plan_sample(sl_plan *p);
/* the fraction of the examples a sampled stage runs on */
double sl_plan_part(const sl_plan *p);
/* --base-logits DIR/scores.h5: the logits the eval stage wrote (it runs
 * first, over the same examples with the same --threads, --batch and
 * --device) */
void sl_plan_base_logits(sl_plan *p);
/* --threads N, and --batch B and --device D when given */
void sl_plan_run(sl_plan *p);

#endif
