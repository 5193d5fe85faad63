build-fuzz/plots/summary.o: plots/summary.c plots/summary.h core/error.h \
  plots/report.h core/atomic.h core/jsonout.h plots/html.h plots/page.h \
  plots/results.h plots/verdict.h

plots/summary.h:

core/error.h:

plots/report.h:

core/atomic.h:

core/jsonout.h:

plots/html.h:

plots/page.h:

plots/results.h:

plots/verdict.h:
