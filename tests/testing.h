/* A minimal test harness: CHECK counts, reports failures with their place,
 * and TEST_SUMMARY prints the "N passed, N failed" line tests/run.sh sums. */
#ifndef SL_TESTING_H
#define SL_TESTING_H

#include <stdio.h>

static int tests_passed, tests_failed;

#define CHECK(cond, ...)                                                                                               \
    do {                                                                                                               \
        if (cond) {                                                                                                    \
            tests_passed++;                                                                                            \
        } else {                                                                                                       \
            tests_failed++;                                                                                            \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                                       \
            fprintf(stderr, __VA_ARGS__);                                                                              \
            fputc('\n', stderr);                                                                                       \
        }                                                                                                              \
    } while (0)

#define TEST_SUMMARY()                                                                                                 \
    (printf("%d passed, %d failed\n", tests_passed, tests_failed), tests_failed ? 1 : 0)

#endif
