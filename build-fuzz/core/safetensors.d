build-fuzz/core/safetensors.o: core/safetensors.c core/safetensors.h \
  core/error.h

core/safetensors.h:

core/error.h:
