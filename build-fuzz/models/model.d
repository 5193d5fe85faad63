build-fuzz/models/model.o: models/model.c models/model.h core/config.h \
  core/error.h core/hooks.h core/safetensors.h

models/model.h:

core/config.h:

core/error.h:

core/hooks.h:

core/safetensors.h:
