build-fuzz/plots/gnuplot.o: plots/gnuplot.c plots/gnuplot.h core/error.h \
  core/atomic.h

plots/gnuplot.h:

core/error.h:

core/atomic.h:
