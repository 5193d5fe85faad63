#!/bin/sh
# The Makefile rebuilds core/blas.o when the cblas.h the compiler finds
# changes (Debian's is a link that update-alternatives retargets, to a file
# older than the object, and -MMD leaves system headers out of the .d
# files): in a build directory of its own, blas.o is up to date after a
# build, and no longer so once $(BUILD)/.cblas names another header, as it
# did on a machine where make ran before scripts/install-deps.sh.
# MAKELEVEL=1: as a sub-make, make leaves bin/.flavor alone.
. tests/shell.sh
B=build/tests/build-cblas
rm -rf "$B" && mkdir -p "$B"
mk() { env MAKELEVEL=1 make --no-print-directory -s CUDA=0 MPI=0 BUILD="$B" "$@" "$B/core/blas.o"; }

mk >"$B/log" 2>&1 || { echo "make $B/core/blas.o failed: $(tail -n 5 "$B/log")" >&2; }
check "the build records the cblas.h it compiled against" grep -q '/cblas\.h$' "$B/.cblas"
check "that header exists" test -f "$(cat "$B/.cblas")"
check "blas.o is up to date after a build" mk -q
echo /usr/include/another-blas/cblas.h >"$B/.cblas"
mk -q
check "blas.o is out of date once the recorded header differs" test $? -eq 1
check "make records the header it finds again" grep -qv another-blas "$B/.cblas"
mk >"$B/log" 2>&1
check "after a rebuild blas.o is up to date again" mk -q
rm -rf "$B"
summary
