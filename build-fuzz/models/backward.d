build-fuzz/models/backward.o: models/backward.c models/backward.h \
  models/forward_common.h models/model.h core/config.h core/error.h \
  core/hooks.h models/workspace.h

models/backward.h:

models/forward_common.h:

models/model.h:

core/config.h:

core/error.h:

core/hooks.h:

models/workspace.h:
