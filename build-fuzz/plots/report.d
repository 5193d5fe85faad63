build-fuzz/plots/report.o: plots/report.c plots/report.h core/error.h \
  plots/figures.h plots/results.h plots/gnuplot.h plots/html.h \
  plots/page.h core/atomic.h plots/verdict.h

plots/report.h:

core/error.h:

plots/figures.h:

plots/results.h:

plots/gnuplot.h:

plots/html.h:

plots/page.h:

core/atomic.h:

plots/verdict.h:
