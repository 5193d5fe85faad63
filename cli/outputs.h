/* Every command's outputs checked against its inputs in one place, right
 * after its options are parsed and before it reads or computes anything
 * (core/outpath.h says what is refused). */
#ifndef SL_OUTPUTS_H
#define SL_OUTPUTS_H

#include "cli/args.h"

/* The inputs: the positional arguments (MODEL, DATA, ...), --pairs,
 * --logits/--verify and --base-logits; the
 * outputs: -o (a file, or the directory of analyze and summarize),
 * --scores, --tokens, and report's DIR. */
int sl_args_check_outputs(const sl_args *a, sl_error *err);

#endif
