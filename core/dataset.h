/* The HDF5 dataset of design.md section 3, validated on open and read in
 * slabs of examples so that memory stays bounded whatever N is. */
#ifndef SL_DATASET_H
#define SL_DATASET_H

#include <hdf5.h>
#include <stdint.h>

#include "core/error.h"

typedef struct {
    char *path;
    hid_t file, tokens, of_position; /* of_position is -1 when absent */
    long n;                          /* examples */
    int L;                           /* padded width */
    int vocab_size, pad_id;
    int32_t *labels, *lengths;       /* [n]; labels NULL only from sl_dataset_open_tokens */
    int has_lengths;
    int n_families;        /* 0: the file has no /families */
    char **family_names;   /* [n_families] */
    int32_t *family_of_token; /* [vocab_size], -1 = none; NULL without /families */
    int32_t *split;        /* [n] or NULL */
    long *rows;            /* [n] the file's row of each example after sl_dataset_sample; NULL: row i */
    long sampled_from;     /* after sl_dataset_sample: the examples the sample was drawn from */
} sl_dataset;

/* Opens and validates: shapes, integer types (an enum of integers, such as
 * h5py's bool, reads as its values), ids within the vocabulary, labels in
 * {0,1}, 1 <= length <= L, family names non-empty and distinct. One
 * streaming pass over /tokens (columns up to the longest length). Only a
 * regular file is opened; a dataset whose declared size is far beyond what
 * the file stores, one kept in another file (external link, external or
 * virtual storage) is refused before anything is read. */
int sl_dataset_open(sl_dataset *ds, const char *path, int vocab_size, int pad_id, sl_error *err);
/* The same with /labels optional (labels NULL when absent): verify reads
 * only /tokens. */
int sl_dataset_open_tokens(sl_dataset *ds, const char *path, int vocab_size, int pad_id, sl_error *err);
void sl_dataset_close(sl_dataset *ds);

/* /families is optional: SL_OK when the dataset has them, else an input
 * error saying that `what` (a command or an option) needs them. */
int sl_dataset_need_families(const sl_dataset *ds, const char *what, sl_error *err);

/* The vocabulary a dataset implies where no model gives one: the length of
 * /families/of_token. Same file checks as sl_dataset_open. */
int sl_dataset_vocab(const char *path, int *vocab, sl_error *err);

/* Narrows the dataset to a seeded sample of `size` of its examples
 * first..first+count-1, in file order: from then on example i is the
 * sample's i-th (n = size), for every reader below. For analyses whose
 * answer is a share or a mean, which do not need every example of a large
 * dataset. The same (first, count, size, seed) picks the same rows. */
int sl_dataset_sample(sl_dataset *ds, long first, long count, long size, uint64_t seed, sl_error *err);

/* tokens[count, L] of examples first..first+count-1. */
int sl_dataset_read_tokens(sl_dataset *ds, long first, long count, int32_t *tokens, sl_error *err);
/* Family of every position (of_position where >= 0, else of_token). */
int sl_dataset_read_families(sl_dataset *ds, long first, long count, const int32_t *tokens, int32_t *fam,
                             sl_error *err);

/* /concepts/NAME: integers per example [N] (per_token 0) or per position
 * [N, L] (per_token 1). */
int sl_dataset_concept(sl_dataset *ds, const char *name, int *per_token, sl_error *err);
/* Rows first..first+count-1 of a concept: count or count * L values. */
int sl_dataset_read_concept(sl_dataset *ds, const char *name, long first, long count, int32_t *out, sl_error *err);

/* An HDF5 file the user names, opened read-only: a regular file only
 * (core/inputfile.h), and an HDF5 one. */
int sl_h5_open_input(const char *path, hid_t *file, sl_error *err);
/* Dataset `name` of such a file with the checks sl_dataset_open makes: no
 * link to another file on the way, no external or virtual storage, a
 * declared size within what the file stores. Absent: SL_OK and *out -1. */
int sl_h5_open_checked(hid_t file, const char *path, const char *name, hid_t *out, sl_error *err);

/* Silences HDF5's own error stack printing: errors reach the user as one
 * line through sl_error instead. Call once before any HDF5 use. */
void sl_h5_quiet(void);

#endif
