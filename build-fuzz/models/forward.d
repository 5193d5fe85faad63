build-fuzz/models/forward.o: models/forward.c core/blas.h \
  models/backward.h models/forward_common.h models/model.h core/config.h \
  core/error.h core/hooks.h models/workspace.h

core/blas.h:

models/backward.h:

models/forward_common.h:

models/model.h:

core/config.h:

core/error.h:

core/hooks.h:

models/workspace.h:
