build-fuzz/plots/figures.o: plots/figures.c plots/figures.h \
  plots/results.h core/error.h

plots/figures.h:

plots/results.h:

core/error.h:
