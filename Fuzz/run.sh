#!/usr/bin/env bash
# Builds the libFuzzer targets in Fuzz/ and runs each for SECONDS (default 30).
#
#   Fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]     (0 seconds: build only)
#
# Exit status: 0 when every target ran its time; 1 when one crashed, broke an invariant, timed
# out (-timeout=5 per input) or went over -rss_limit_mb=2048 (the log's tail and each reproducer's
# path and bytes are printed);
# 2 for a build failure. See Fuzz/README.md.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
SECONDS_PER_TARGET="${1:-30}"
shift || true
[ -d /opt/swift/usr/bin ] && export PATH="/opt/swift/usr/bin:$PATH"

SCRATCH="$ROOT/.build-fuzz"
CONFIG=release
if [ "${FUZZ_COVERAGE:-0}" = 1 ]; then
  # Fuzz/coverage.sh: source-based coverage instead of AddressSanitizer, in its own folder.
  BUILD="$SCRATCH/coverage"
  INSTRUMENT=(-sanitize=fuzzer -profile-generate -profile-coverage-mapping)
else
  BUILD="$SCRATCH/fuzzers"
  INSTRUMENT=(-sanitize=fuzzer,address)
fi
CORPORA="$SCRATCH/corpus"
ARTIFACTS="$SCRATCH/artifacts"
mkdir -p "$BUILD" "$CORPORA" "$ARTIFACTS"

if [ $# -gt 0 ]; then
  TARGETS=("$@")
else
  TARGETS=()
  for f in Fuzz/Fuzz*.swift; do TARGETS+=("$(basename "$f" .swift)"); done
fi

step() { printf '\n=== %s (at %ss)\n' "$*" "$SECONDS"; }
die() { echo "Fuzz/run.sh: $*" >&2; exit 2; }

# 1. DuplexCore's dependencies (NIOCore, Crypto, CompressNIO and what they need), built by
#    SwiftPM in its own scratch path. DuplexCore itself is built too, but its objects are not
#    linked: the fuzzers compile its sources, instrumented.
step "dependencies: swift build --target DuplexCore -c $CONFIG --scratch-path .build-fuzz"
swift build --scratch-path "$SCRATCH" --target DuplexCore -c "$CONFIG" || die "swift build failed"
BIN="$(swift build --scratch-path "$SCRATCH" -c "$CONFIG" --show-bin-path)" || die "no bin path"
TRIPLE="$(basename "$(dirname "$BIN")")"
MANIFEST="$SCRATCH/$CONFIG.yaml"
[ -f "$MANIFEST" ] || die "no build manifest at $MANIFEST"

# The flags SwiftPM passes when compiling DuplexCore, and the objects of its dependency closure.
python3 Fuzz/manifest.py "$MANIFEST" "$TRIPLE" "$CONFIG" > "$BUILD/manifest.txt" || die "cannot read $MANIFEST"
mapfile -t FLAGS < <(sed -n 's/^flag //p' "$BUILD/manifest.txt")
mapfile -t OBJECTS < <(sed -n 's/^object //p' "$BUILD/manifest.txt")
[ ${#FLAGS[@]} -gt 0 ] || die "no flags found for DuplexCore in $MANIFEST"
[ ${#OBJECTS[@]} -gt 0 ] || die "no dependency objects found in $MANIFEST"
mapfile -t CORE_SOURCES < <(find Sources/DuplexCore -name '*.swift' | sort)
mapfile -t SUPPORT < <(find Fuzz/Support -name '*.swift' | sort)

# 2. One executable per target: DuplexCore's sources + Fuzz/Support + Fuzz/<target>.swift in
#    one module, instrumented for libFuzzer and AddressSanitizer.
for target in "${TARGETS[@]}"; do
  [ -f "Fuzz/$target.swift" ] || die "no Fuzz/$target.swift"
  if [ -x "$BUILD/$target" ] && [ -z "$(find "${CORE_SOURCES[@]}" "${SUPPORT[@]}" "Fuzz/$target.swift" "${OBJECTS[@]}" Fuzz/run.sh Fuzz/manifest.py \
         -newer "$BUILD/$target" -print -quit)" ]; then
    step "build $target: up to date"
    continue
  fi
  step "build $target"
  swiftc -module-name "$target" -parse-as-library -O -g \
    "${INSTRUMENT[@]}" -target "$TRIPLE" \
    -module-cache-path "$BUILD/ModuleCache" \
    "${FLAGS[@]}" \
    "${CORE_SOURCES[@]}" "${SUPPORT[@]}" "Fuzz/$target.swift" \
    "${OBJECTS[@]}" -lstdc++ -lz \
    -o "$BUILD/$target.new" 2> "$BUILD/$target.build.log"
  status=$?
  # (ld.gold warns about every ASan check symbol; the rest is worth seeing.)
  grep -v "Cannot export local symbol" "$BUILD/$target.build.log" >&2
  [ $status -eq 0 ] || { rm -f "$BUILD/$target.new"; die "building $target failed"; }
  mv "$BUILD/$target.new" "$BUILD/$target"
done

# 3. Run each target for SECONDS_PER_TARGET (0: build only; libFuzzer would take 0 as "forever").
if [ "$SECONDS_PER_TARGET" -eq 0 ]; then
  step "built ${#TARGETS[@]} targets in $BUILD (not run: 0 seconds)"
  exit 0
fi
export SWIFT_BACKTRACE=enable=no  # let libFuzzer and ASan report crashes (no backtracer process)
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
failed=()
for target in "${TARGETS[@]}"; do
  step "run $target for ${SECONDS_PER_TARGET}s"
  corpus="$CORPORA/$target"
  mkdir -p "$corpus" "$ARTIFACTS/$target"
  [ -d "Fuzz/seeds/$target" ] && cp -n Fuzz/seeds/"$target"/* "$corpus"/ 2>/dev/null
  dict=()
  [ -f "Fuzz/dicts/$target.dict" ] && dict=("-dict=Fuzz/dicts/$target.dict")
  log="$ARTIFACTS/$target/fuzz.log"
  "$BUILD/$target" "$corpus" "${dict[@]}" \
    -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=2048 -timeout=5 -max_len=8192 \
    -print_final_stats=1 -artifact_prefix="$ARTIFACTS/$target/" > "$log" 2>&1
  status=$?
  grep -E "^#[0-9]+[[:space:]]+(INITED|DONE)|^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb|new_units_added)" "$log"
  if [ $status -ne 0 ]; then
    echo "FAILED: $target (exit $status); log: $log" >&2
    grep -E "INVARIANT|ERROR: |SUMMARY|==ERROR|Fatal error|deadly signal|timeout|out-of-memory" "$log" | head -20 >&2
    echo "--- the log's last 80 lines" >&2
    tail -n 80 "$log" >&2
    # The reproducers (crash-*, leak-*, timeout-*, oom-*) with their bytes, so that a CI log
    # whose machine is gone still has them.
    grep -oE "Test unit written to .*" "$log" | sed 's/^Test unit written to //' | while read -r unit; do
      echo "--- reproducer: $unit ($(wc -c < "$unit") bytes)" >&2
      if command -v xxd >/dev/null; then xxd "$unit" >&2; else od -A x -t x1z -v "$unit" >&2; fi
    done
    echo "reproduce: $BUILD/$target <reproducer>" >&2
    failed+=("$target")
  fi
done

step "done"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzzing found problems in: ${failed[*]}" >&2
  exit 1
fi
echo "all ${#TARGETS[@]} fuzz targets ran ${SECONDS_PER_TARGET}s each without a failure"
