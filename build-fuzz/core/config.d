build-fuzz/core/config.o: core/config.c core/config.h core/error.h

core/config.h:

core/error.h:
