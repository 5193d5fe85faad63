/* What the analyses' verdicts share. Each analysis writes its own one
 * plain-language sentence in its own file (cli/cmd_*.c: its section's
 * verdict), with its own thresholds beside it; the README lists them. */
#ifndef SL_VERDICT_H
#define SL_VERDICT_H

/* An AUC change smaller than this is "does not matter" (eval's ceiling,
 * the bag-of-tokens baseline, every ablation). */
#define SL_NEGLIGIBLE_AUC 0.01

#endif
