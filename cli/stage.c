#include "cli/stage.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

void sl_plan_arg(sl_plan *p, const char *fmt, ...)
{
    if (p->argc == SL_PLAN_MAX_ARGS - 1) return;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&p->argv[p->argc], fmt, ap) >= 0) p->argc++;
    va_end(ap);
    p->argv[p->argc] = NULL;
}

void sl_plan_inputs(sl_plan *p)
{
    sl_plan_arg(p, "%s", p->a->pos[0]);
    sl_plan_arg(p, "%s", p->a->pos[1]);
}

void sl_plan_out(sl_plan *p)
{
    if (p->stage->stdout_to) return;
    sl_plan_arg(p, "-o");
    sl_plan_arg(p, "%s/%s", p->dir, p->stage->outputs[0]);
}

void sl_plan_seed(sl_plan *p) { sl_plan_arg(p, "--seed"), sl_plan_arg(p, "%llu", p->a->seed); }

void sl_plan_bootstrap(sl_plan *p) { sl_plan_arg(p, "--bootstrap"), sl_plan_arg(p, "%d", p->a->bootstrap); }

void sl_plan_examples(sl_plan *p)
{
    if (!p->a->ex_first && p->a->ex_end < 0) return;
    sl_plan_arg(p, "--examples");
    sl_plan_arg(p, "%ld:%ld", p->s->run.first, p->s->run.first + p->s->run.count);
}

int sl_plan_sampled(const sl_plan *p) { return p->s->run.count > p->sample; }

void sl_plan_sample(sl_plan *p) { sl_plan_arg(p, "--sample"), sl_plan_arg(p, "%ld", p->sample); }

double sl_plan_part(const sl_plan *p)
{
    return sl_plan_sampled(p) ? (double)p->sample / (double)p->s->run.count : 1;
}

void sl_plan_base_logits(sl_plan *p) { sl_plan_arg(p, "--base-logits"), sl_plan_arg(p, "%s/scores.h5", p->dir); }

void sl_plan_run(sl_plan *p)
{
    sl_plan_arg(p, "--threads"), sl_plan_arg(p, "%d", p->a->threads);
    if (p->a->batch) sl_plan_arg(p, "--batch"), sl_plan_arg(p, "%d", p->a->batch);
    if (p->a->device) sl_plan_arg(p, "--device"), sl_plan_arg(p, "%s", p->a->device);
}
