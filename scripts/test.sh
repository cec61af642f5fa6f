#!/usr/bin/env bash
# Installs dependencies, builds, and runs every test twice: a Release build (with the kernels forced
# to each instruction set this CPU supports, so every fast path and the scalar reference run the whole
# suite), then an AddressSanitizer + UBSan build.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh build
(cd build && ctest --output-on-failure -j2 --timeout 900)
# The kernel-dependent suites again with dispatch forced to each ISA the machine has.
best=$(./build/squeeze isa | awk '/^best/ {print $2}')
for isa in scalar avx2 avx512 avx512vnni; do
  if [ "$isa" = "$best" ]; then
    echo "== SQUEEZE_ISA=$isa: the default, already run above" >&2
  elif ./build/squeeze isa "$isa" >/dev/null 2>&1; then
    echo "== the whole suite again with SQUEEZE_ISA=$isa" >&2
    (cd build && SQUEEZE_ISA=$isa ctest --output-on-failure -j2 --timeout 900)
  else
    echo "== SQUEEZE_ISA=$isa: not supported by this CPU, skipped" >&2
  fi
done
scripts/build.sh build-asan -DSQUEEZE_SANITIZE=ON -DSQUEEZE_BENCH=OFF
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure -j2 --timeout 1800)
