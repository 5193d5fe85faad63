build-fuzz/probes/linear.o: probes/linear.c probes/linear.h core/error.h \
  core/metrics.h core/rng.h

probes/linear.h:

core/error.h:

core/metrics.h:

core/rng.h:
