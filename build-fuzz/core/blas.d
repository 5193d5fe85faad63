build-fuzz/core/blas.o: core/blas.c core/blas.h

core/blas.h:
