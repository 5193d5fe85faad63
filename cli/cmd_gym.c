#include <stdio.h>

#include "cli/commands.h"
#include "cli/registry.h"
#include "gym/gym.h"

static const char USAGE[] =
    "usage: seqlens gym --task count|order|distant|recall --n N --len L [--seed S] [--noise P] -o data.h5\n"
    "  Synthetic event streams with a planted rule (vocabulary 48: pad, marker, key, value, filler, sep):\n"
    "  count    the label shifts the balance of two marker tokens (order-free)\n"
    "  order    the label says which of two marker tokens comes first\n"
    "  distant  as count, with the markers only in the first 5% of a full-length sequence\n"
    "  recall   key-value pairs, then a query key at the end: is its value a high one?\n"
    "  --noise flips each observed label with probability P. The file's attributes hold the truth:\n"
    "  task, signal_family, order_matters, bayes_auc (the best AUC any model can reach), label_noise.\n";

static int cmd_gym(int argc, char **argv)
{
    sl_args a;
    sl_error err = {0};
    if (sl_parse_args(&a, "gym", argc, argv, "-o --task --n --len --seed --noise", &err)) return sl_report(&err);
    if (a.help || a.n_pos != 0) return sl_usage(USAGE, a.help);
    if (!a.task || !a.n_examples || !a.len || !a.out)
        return sl_report(&(sl_error){SL_EINPUT, "seqlens gym: --task, --n, --len and -o are required"});
    /* --n and --len are each in range, but their product is the file: 2^40
     * examples would be written until the disk filled up (hours) */
    if ((double)a.n_examples * a.len > 4294967296.0) {
        sl_fail(&err, SL_EINPUT, "seqlens gym: --n %ld x --len %d is %.3g tokens; at most 2^32 (16 GiB) in one file",
                a.n_examples, a.len, (double)a.n_examples * a.len);
        return sl_report(&err);
    }
    sl_gym_opts o = {sl_gym_task(a.task), a.n_examples, a.len, a.seed, a.noise};
    if (o.task < 0)
        return sl_report(&(sl_error){SL_EINPUT, "seqlens gym: --task: expected count, order, distant or recall"});
    if (sl_gym_write(&o, a.out, &err)) return sl_report(&err);
    sl_gym_truth t = sl_gym_truth_of(&o);
    printf("%s: %ld examples of up to %d tokens; signal in '%s', order %s, Bayes-optimal AUC %.4f\n", a.out, o.n, o.len,
           t.signal_family, t.order_matters ? "matters" : "does not matter", t.bayes_auc);
    return 0;
}

static sl_command gym_command = {
    .name = "gym",
    .summary = "  gym --task NAME --n N --len L -o data.h5   synthetic data with a planted rule\n",
    .order = 160,
    .flags = SL_CMD_OUT_H5,
    .run = cmd_gym,
};
SL_REGISTER_COMMAND(gym_command)
