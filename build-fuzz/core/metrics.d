build-fuzz/core/metrics.o: core/metrics.c core/metrics.h

core/metrics.h:
