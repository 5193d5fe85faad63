build-fuzz/core/cka.o: core/cka.c core/cka.h

core/cka.h:
