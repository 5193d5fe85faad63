build-fuzz/core/roc.o: core/roc.c core/roc.h core/correlation.h \
  core/rng.h

core/roc.h:

core/correlation.h:

core/rng.h:
