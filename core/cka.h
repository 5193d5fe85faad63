/* Linear centred kernel alignment (Kornblith et al. 2019) between two
 * representations of the same n examples: X [n, p] and Y [n, q], row-major.
 * 1 for representations equal up to rotation and scale, near 0 for
 * unrelated ones. */
#ifndef SL_CKA_H
#define SL_CKA_H

/* NaN when either side is constant or memory runs out. */
double sl_linear_cka(const float *X, int p, const float *Y, int q, long n);

#endif
