build-fuzz/models/transformer.o: models/transformer.c core/blas.h \
  core/mathx.h models/backward.h models/forward_common.h models/model.h \
  core/config.h core/error.h core/hooks.h models/workspace.h

core/blas.h:

core/mathx.h:

models/backward.h:

models/forward_common.h:

models/model.h:

core/config.h:

core/error.h:

core/hooks.h:

models/workspace.h:
