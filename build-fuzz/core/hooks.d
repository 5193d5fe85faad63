build-fuzz/core/hooks.o: core/hooks.c core/hooks.h core/error.h

core/hooks.h:

core/error.h:
