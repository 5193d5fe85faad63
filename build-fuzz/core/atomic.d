build-fuzz/core/atomic.o: core/atomic.c core/atomic.h core/error.h

core/atomic.h:

core/error.h:
