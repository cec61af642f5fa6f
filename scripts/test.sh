#!/usr/bin/env bash
# Installs dependencies, builds, and runs every test: a Release build (gcc) whose suite runs once with
# the best kernels and again with dispatch forced to each other instruction set this CPU supports (so
# every fast path and the scalar reference run the whole suite), then one AddressSanitizer + UBSan
# build (clang, with libFuzzer coverage) that runs the whole suite and every fuzz harness.
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$SECONDS
stage() { echo "== [$((SECONDS - t0)) s] $*" >&2; }
scripts/install-deps.sh
stage "Release build"
scripts/build.sh build
stage "Release suite"
(cd build && ctest --output-on-failure -j2 --timeout 900)
# The suite again with dispatch forced to each ISA the machine has (quality figures, which do not depend
# on the ISA, skip themselves there; the kernel tests compare every ISA in-process in every pass).
best=$(./build/squeeze isa | awk '/^best/ {print $2}')
for isa in scalar avx2 avx512 avx512vnni; do
  if [ "$isa" = "$best" ]; then
    echo "== SQUEEZE_ISA=$isa: the default, already run above" >&2
  elif ./build/squeeze isa "$isa" >/dev/null 2>&1; then
    stage "the whole suite again with SQUEEZE_ISA=$isa"
    (cd build && SQUEEZE_ISA=$isa ctest --output-on-failure -j2 --timeout 900)
  else
    echo "== SQUEEZE_ISA=$isa: not supported by this CPU, skipped" >&2
  fi
done
stage "AddressSanitizer + UBSan build (clang, libFuzzer)"
scripts/build.sh build-asan -DCMAKE_CXX_COMPILER=clang++ -DSQUEEZE_SANITIZE=ON -DSQUEEZE_FUZZ=ON -DSQUEEZE_BENCH=OFF
stage "AddressSanitizer + UBSan suite"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure -j2 --timeout 1800)
stage "fuzzers, ${SQUEEZE_FUZZ_SECONDS:-20} s each"
scripts/fuzz.sh build-asan "${SQUEEZE_FUZZ_SECONDS:-20}"
stage "done"
