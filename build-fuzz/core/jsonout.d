build-fuzz/core/jsonout.o: core/jsonout.c core/jsonout.h core/error.h \
  core/atomic.h

core/jsonout.h:

core/error.h:

core/atomic.h:
