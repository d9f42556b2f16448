#!/usr/bin/env bash
# Line coverage of DuplexCore by each fuzz target's corpus (.build-fuzz/corpus/<target>):
# builds the targets with source-based coverage (no ASan) in .build-fuzz/coverage, replays each
# corpus once (-runs=0) and prints llvm-cov's report for the DuplexCore files.
#
#   Fuzz/coverage.sh [TARGET...]
set -uo pipefail
cd "$(dirname "$0")/.."
[ -d /opt/swift/usr/bin ] && export PATH="/opt/swift/usr/bin:$PATH"
FUZZ_COVERAGE=1 Fuzz/run.sh 0 "$@" >/dev/null || { echo "coverage build failed (FUZZ_COVERAGE=1 Fuzz/run.sh 0)" >&2; exit 2; }
BUILD=.build-fuzz/coverage
if [ $# -gt 0 ]; then TARGETS=("$@"); else TARGETS=(); for f in Fuzz/Fuzz*.swift; do TARGETS+=("$(basename "$f" .swift)"); done; fi
export SWIFT_BACKTRACE=enable=no
for target in "${TARGETS[@]}"; do
  corpus=.build-fuzz/corpus/$target
  [ -d "$corpus" ] || { echo "no corpus for $target: run Fuzz/run.sh first" >&2; continue; }
  rm -f "$BUILD/$target".*.profraw
  LLVM_PROFILE_FILE="$BUILD/$target.%p.profraw" "$BUILD/$target" "$corpus" Fuzz/seeds/"$target" -runs=0 >/dev/null 2>&1
  llvm-profdata merge -sparse "$BUILD/$target".*.profraw -o "$BUILD/$target.profdata" || continue
  echo "== $target ($(ls "$corpus" | wc -l) corpus inputs)"
  llvm-cov report "$BUILD/$target" -instr-profile="$BUILD/$target.profdata" Sources/DuplexCore \
    | sed "s|$PWD/Sources/DuplexCore/||"
done
