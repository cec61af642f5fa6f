#!/usr/bin/env bash
# Runs every libFuzzer harness of a SQUEEZE_FUZZ build for a bounded time, two at a time, starting from
# the seed corpora in fuzz/corpus/ (read only: new inputs go to a temporary directory).
# Usage: scripts/fuzz.sh [BUILD_DIR] [SECONDS_EACH]   (CI: build-asan 20; on demand: longer)
# Prints one line per harness (executions, corpus size, findings); a finding's input is kept under
# fuzz-findings/ and the script exits 1.
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build-asan}
SECS=${2:-20}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
harnesses=()
for f in fuzz/fuzz_*.cpp; do harnesses+=("$(basename "$f" .cpp)"); done
run_one() {
  local h=$1 seeds=fuzz/corpus/${1#fuzz_}
  mkdir -p "$work/$h/corpus" "$work/$h/artifacts"
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    "$BUILD/$h" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -max_len=16384 -print_final_stats=1 \
    -artifact_prefix="$work/$h/artifacts/" "$work/$h/corpus" "$seeds" >"$work/$h/log" 2>&1
  echo $? >"$work/$h/rc"
}
i=0
for h in "${harnesses[@]}"; do
  [ -x "$BUILD/$h" ] || { echo "fuzz: $BUILD/$h not built (configure with CXX=clang++ -DSQUEEZE_FUZZ=ON)" >&2; exit 1; }
  run_one "$h" &
  i=$((i + 1))
  if [ $((i % 2)) -eq 0 ]; then wait; fi
done
wait
status=0
for h in "${harnesses[@]}"; do
  rc=$(cat "$work/$h/rc")
  execs=$(awk '/stat::number_of_executed_units/ {print $2}' "$work/$h/log")
  corpus=$(ls "$work/$h/corpus" | wc -l)
  findings=$(ls "$work/$h/artifacts" | wc -l)
  echo "fuzz: $h ${SECS}s: ${execs:-?} executions, $corpus new corpus inputs, $findings findings (rc $rc)"
  if [ "$rc" != 0 ] || [ "$findings" != 0 ]; then
    status=1
    mkdir -p fuzz-findings
    cp "$work/$h/artifacts/"* fuzz-findings/ 2>/dev/null || true
    cp "$work/$h/log" "fuzz-findings/$h.log"
    grep -m 20 -E "ERROR|SUMMARY|==[0-9]+==|runtime error|terminate" "$work/$h/log" >&2
  fi
done
exit $status
