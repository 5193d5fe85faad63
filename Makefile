# seqlens: `make` builds bin/seqlens, `make test` runs every test.
# Dependencies are Debian packages (see README.md); CUDA is optional.

CC       ?= cc
OPT      ?= -O3 -march=native
HDF5_CFLAGS := $(shell pkg-config --cflags hdf5 2>/dev/null || echo -I/usr/include/hdf5/serial)
HDF5_LIBS   := $(shell pkg-config --libs hdf5 2>/dev/null || echo -L/usr/lib/x86_64-linux-gnu/hdf5/serial -lhdf5)
BLAS_LIBS   ?= -lopenblas
# No FP traps or errno are relied on: without -fno-trapping-math and
# -fno-math-errno GCC vectorises no loop holding a float select or sqrtf.
# -std=c11 turns FMA contraction off; -ffp-contract=fast turns it back on.
# None of them reassociates sums, so results stay deterministic.
# -Wno-psabi: 8-lane vectors only pass between static inline functions, so
# the ABI note GCC gives for them on builds without AVX does not apply.
CFLAGS   += -std=c11 -D_GNU_SOURCE $(OPT) -fno-trapping-math -fno-math-errno -ffp-contract=fast -g -Wall -Wextra -Werror -Wno-psabi -fopenmp -I. $(HDF5_CFLAGS)
LDLIBS   += $(HDF5_LIBS) -lcjson -llinear -lzip $(BLAS_LIBS) -lm
LDFLAGS  += -fopenmp

# The CUDA backend is built when nvcc is found, on the PATH or in
# $(CUDA_HOME)/bin (design.md section 1); CUDA=0 leaves it out, CUDA=1
# insists. cuda/*.cu go through nvcc for sm_90 and as compute_80 PTX that
# newer GPUs JIT-compile, warnings as errors. Its objects go to build-cuda/:
# the C sources compile differently there (SEQLENS_CUDA), and make's
# timestamps would otherwise mix the two builds. The sanitizer, valgrind,
# fuzzing builds are CPU-only (CUDA=0); bin/seqlens-mpi has the backend
# when bin/seqlens has it (its objects then in build-mpi-cuda/).
CUDA_HOME ?= /usr/local/cuda
NVCC      ?= $(or $(shell command -v nvcc 2>/dev/null),$(wildcard $(CUDA_HOME)/bin/nvcc))
CUDA      ?= $(if $(NVCC),1,0)
ifeq ($(CUDA),1)
NVCC      := $(or $(NVCC),nvcc)
BUILD     ?= build-cuda
NVCC_ARCH ?= -gencode arch=compute_90,code=sm_90 -gencode arch=compute_80,code=compute_80
NVCCFLAGS ?= -O3 -g -std=c++17 $(NVCC_ARCH) -Werror all-warnings -Xcompiler -Wall,-Wextra,-Werror
# -isystem: CUDA's headers are not ours to hold to -Werror.
CFLAGS    += -DSEQLENS_CUDA -isystem $(CUDA_HOME)/include
# cuBLAS is not linked: cuda/cublas_load.cu loads it when a device opens.
LDLIBS    += -L$(CUDA_HOME)/lib64 -lcudart -ldl -lstdc++
# rpath: the toolkit's lib64 is often not on the loader's path.
LDFLAGS   += -Wl,-rpath,$(CUDA_HOME)/lib64
CU_SRC    := $(wildcard cuda/*.cu)
endif

# --- MPI (make MPI=1): bin/seqlens-mpi, the same program built with mpicc
# and SEQLENS_MPI, its objects in build-mpi/. bin/seqlens never links MPI:
# without SEQLENS_MPI core/dist.c is the one-rank identity. Where mpicc is
# found, `make` and `make test` build bin/seqlens-mpi too (tests/test_mpi.sh
# runs it under mpirun); MPI=0 turns that off.
MPICC    ?= mpicc
MPI_AUTO := $(if $(filter 0,$(MPI)),,$(shell command -v $(MPICC) >/dev/null 2>&1 && echo 1))
ifeq ($(MPI),1)
CC       := $(MPICC)
BUILD    := build-mpi
CFLAGS   += -DSEQLENS_MPI
endif
MPI_BIN  := $(if $(MPI_AUTO),bin/seqlens-mpi)
# --- end MPI

BUILD    ?= build
LIB_SRC  := $(wildcard core/*.c models/*.c ablation/*.c gym/*.c probes/*.c attribution/*.c plots/*.c cuda/*.c)
CLI_SRC  := $(wildcard cli/*.c)
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o) $(CU_SRC:%.cu=$(BUILD)/%.cu.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
# the commands without main: the tests link them (as objects, so that each
# command's registration runs) to reach the registry's analyses and sections
CMD_OBJ  := $(filter-out $(BUILD)/cli/main.o,$(CLI_OBJ))
TEST_SRC := $(wildcard tests/test_*.c)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
# end-to-end tests of the command line (analyze, report, batch, browser)
TEST_SH  := $(wildcard tests/test_*.sh)

.PHONY: all test same-as-before asan clean bench demo fuzz fuzz-build valgrind mpi gpu-check
ifeq ($(MPI),1)
all: bin/seqlens-mpi
else
all: bin/seqlens $(MPI_BIN)
endif

# bin/.flavor names the build bin/seqlens is wanted from (cpu or cuda) and
# is rewritten, as make reads this file, only when that changes: so
# switching between `make CUDA=0` and `make CUDA=1` relinks even where the other
# build's objects are older than the binary.
FLAVOR := $(if $(filter 1,$(CUDA)),cuda,cpu)
# Only the top-level make: the MPI, sanitizer and valgrind builds are
# sub-makes with CUDA=0 and must not mark bin/seqlens as the CPU build.
ifeq ($(MAKELEVEL),0)
$(shell mkdir -p bin && { [ "$$(cat bin/.flavor 2>/dev/null)" = $(FLAVOR) ] || echo $(FLAVOR) >bin/.flavor; })
endif

# $(BUILD)/.cblas names the cblas.h the compiler finds now, rewritten only
# when that changes, and core/blas.o depends on it: -MMD leaves system
# headers out of the .d files, and Debian's cblas.h is a link that
# update-alternatives retargets. A first make run before
# scripts/install-deps.sh compiled blas.o against another BLAS's header;
# once OpenBLAS was installed make kept that object, and every output said
# "blas": "CBLAS" until it was rebuilt by hand.
CBLAS_H := $(shell printf '\043include <cblas.h>\n' | $(CC) -E -M -x c - 2>/dev/null | tr ' \\' '\n\n' | grep '/cblas\.h$$' | xargs -r realpath 2>/dev/null)
$(shell mkdir -p $(BUILD) && { [ "$$(cat $(BUILD)/.cblas 2>/dev/null)" = "$(CBLAS_H)" ] || echo "$(CBLAS_H)" >$(BUILD)/.cblas; })
$(BUILD)/core/blas.o: $(BUILD)/.cblas

bin/seqlens: $(LIB_OBJ) $(CLI_OBJ) bin/.flavor
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(LDLIBS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/%.cu.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -DSEQLENS_CUDA -I. -MMD -MP -c -o $@ $<

$(BUILD)/tests/%: tests/%.c tests/testing.h tests/fixture_files.h tests/pt_builders.h $(wildcard tests/fuzz/*.c) $(LIB_OBJ) $(CMD_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP $(LDFLAGS) -o $@ $< $(LIB_OBJ) $(CMD_OBJ) -lhdf5_hl $(LDLIBS)

# The last line of `make test` is "N passed, N failed".
test: bin/seqlens $(TEST_BIN) $(MPI_BIN)
	@BUILD=$(BUILD) SEQLENS=bin/seqlens sh tests/run.sh $(TEST_BIN) $(TEST_SH)

# Every output of bin/seqlens byte for byte against the binary built from
# BASE (its default and why: tests/same_as_before.sh), which
# tests/same_as_before.sh builds once under $(BUILD)/same-as-before/.
# Not part of make test; CI runs it after. Needs the git history.
same-as-before: bin/seqlens
	@BUILD=$(BUILD) SEQLENS=bin/seqlens sh tests/same_as_before.sh

# MPI: a make of its own in build-mpi/, so that the CPU and CUDA builds'
# objects never mix with mpicc's. Always re-entered: make there decides.
ifeq ($(MPI),1)
bin/seqlens-mpi: $(LIB_OBJ) $(CLI_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
else
.PHONY: bin/seqlens-mpi
bin/seqlens-mpi:
	@$(MAKE) --no-print-directory MPI=1 CUDA=$(CUDA) BUILD=build-mpi$(if $(filter 1,$(CUDA)),-cuda) bin/seqlens-mpi
endif
mpi: bin/seqlens-mpi

# The same suite under AddressSanitizer and UndefinedBehaviorSanitizer.
asan:
	$(MAKE) CUDA=0 BUILD=build-asan OPT="-O1 -march=native -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
	    LDFLAGS="-fopenmp -fsanitize=address,undefined" bin/seqlens-asan test-asan

bin/seqlens-asan: $(LIB_OBJ) $(CLI_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

test-asan: bin/seqlens-asan $(TEST_BIN)
	@BUILD=$(BUILD) SEQLENS=bin/seqlens-asan ASAN_OPTIONS=detect_leaks=1 sh tests/run.sh $(TEST_BIN) $(TEST_SH)

clean:
	rm -rf build build-cuda build-mpi build-mpi-cuda build-asan build-fuzz build-valgrind bin

# libFuzzer targets (clang, ASan + UBSan) for everything a user hands
# seqlens: safetensors, config.json, a model directory, a dataset,
# torch.save's pickle and archive.
# `make fuzz` runs each for FUZZ_SECONDS from the seed corpus in
# tests/fuzz/corpus/; a crash stops it and leaves the input in build-fuzz/.
FUZZ_TARGETS := safetensors config model dataset pickle npy
FUZZ_SECONDS ?= 30
FUZZ_OPT := -O1 -march=native -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all -Wno-pass-failed
fuzz-build:
	$(MAKE) CUDA=0 BUILD=build-fuzz CC=clang OPT="$(FUZZ_OPT)" $(FUZZ_TARGETS:%=build-fuzz/fuzz/fuzz_%)

$(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fsanitize=fuzzer,address,undefined $(LDFLAGS) -o $@ $< $(LIB_OBJ) $(LDLIBS)

fuzz: fuzz-build
	sh tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# memcheck over a small end-to-end run of every command (tests/valgrind.sh).
# Built for x86-64-v2: valgrind does not decode AVX-512, which -march=native
# may emit.
valgrind:
	$(MAKE) CUDA=0 BUILD=build-valgrind OPT="-O2 -march=x86-64-v2" bin/seqlens-valgrind
	SEQLENS=bin/seqlens-valgrind sh tests/valgrind.sh

bin/seqlens-valgrind: $(LIB_OBJ) $(CLI_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(TEST_BIN:=.d)

# The README's first command: packages, build, and the tools on examples/.
demo:
	sh scripts/install-deps.sh
	$(MAKE) bin/seqlens
	sh scripts/demo.sh

# Benchmarks (bench/run.sh builds and runs them; never part of make test).
$(BUILD)/bench/bench_sweep: bench/bench_sweep.c $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB_OBJ) $(LDLIBS)

$(BUILD)/bench/grad_time: bench/grad_time.c $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB_OBJ) $(LDLIBS)

bench: bin/seqlens $(BUILD)/bench/bench_sweep
	sh bench/run.sh

# The device model core's parity checks (tests/device_parity.h) on a real
# GPU, in a CUDA build; bench/gpu.sh runs it, then the benchmark.
$(BUILD)/bench/gpu_parity: bench/gpu_parity.c tests/device_parity.h $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB_OBJ) $(LDLIBS)

# One command on a machine with a GPU: parity, then the seed-scale benchmark.
gpu-check:
	sh bench/gpu.sh
