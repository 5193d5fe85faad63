build-fuzz/plots/verdict.o: plots/verdict.c plots/verdict.h \
  plots/results.h core/error.h

plots/verdict.h:

plots/results.h:

core/error.h:
