build-fuzz/core/correlation.o: core/correlation.c core/correlation.h

core/correlation.h:
