build-fuzz/models/attention.o: models/attention.c core/mathx.h \
  core/simd.h models/forward_common.h models/model.h core/config.h \
  core/error.h core/hooks.h models/workspace.h

core/mathx.h:

core/simd.h:

models/forward_common.h:

models/model.h:

core/config.h:

core/error.h:

core/hooks.h:

models/workspace.h:
