#!/bin/sh
# Installs the Debian packages seqlens builds and runs with, where missing.
# --test adds what the tests use beyond that: Chromium, which checks the
# HTML report as a browser renders it; clang with libFuzzer and its OpenMP
# runtime for make fuzz; valgrind for make valgrind; Open MPI (and h5dump) for
# tests/test_mpi.sh, which runs bin/seqlens-mpi under mpirun. Needs root (or sudo) only when
# something is missing.
set -eu
packages="build-essential pkg-config libhdf5-dev liblinear-dev libopenblas-dev libcjson-dev libzip-dev gnuplot-nox"
[ "${1:-}" = --test ] && packages="$packages chromium clang libclang-rt-dev libomp-dev valgrind libopenmpi-dev openmpi-bin hdf5-tools"
need=""
for p in $packages; do
    dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"
done
[ -z "$need" ] && exit 0
echo "installing:$need"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $need >/dev/null
