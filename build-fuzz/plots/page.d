build-fuzz/plots/page.o: plots/page.c plots/page.h core/atomic.h \
  core/error.h plots/report.h plots/gnuplot.h plots/html.h

plots/page.h:

core/atomic.h:

core/error.h:

plots/report.h:

plots/gnuplot.h:

plots/html.h:
