#!/usr/bin/env bash
# Builds the libFuzzer targets in Fuzz/ and runs each for SECONDS (default 30).
#
#   Fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]     (0 seconds: build only)
#
# FUZZ_JOBS (default 1): how many targets run at the same time (CI: 2, one a core).
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
  shopt -s nullglob  # (a folder without targets adds none)
  for f in Fuzz/Fuzz*.swift Fuzz/Net/Fuzz*.swift; do TARGETS+=("$(basename "$f" .swift)"); done
  shopt -u nullglob
fi
CORE_TARGETS=() NET_TARGETS=()
for target in "${TARGETS[@]}"; do
  if [ -f "Fuzz/$target.swift" ]; then CORE_TARGETS+=("$target")
  elif [ -f "Fuzz/Net/$target.swift" ]; then NET_TARGETS+=("$target")
  else echo "Fuzz/run.sh: no Fuzz/$target.swift or Fuzz/Net/$target.swift" >&2; exit 2
  fi
done

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

# link_target TARGET SWIFTC_ARGUMENTS...: $BUILD/TARGET, an instrumented libFuzzer executable.
link_target() {
  local target=$1 status=0
  shift
  step "build $target"
  swiftc -module-name "$target" -parse-as-library -O -g "${INSTRUMENT[@]}" -target "$TRIPLE" \
    "$@" -lstdc++ -lz -o "$BUILD/$target.new" 2> "$BUILD/$target.build.log" || status=$?
  # (ld.gold warns about every ASan check symbol; the rest is worth seeing.)
  grep -v "Cannot export local symbol" "$BUILD/$target.build.log" >&2
  [ $status -eq 0 ] || { rm -f "$BUILD/$target.new"; die "building $target failed"; }
  mv "$BUILD/$target.new" "$BUILD/$target"
}

# 2. One executable per target: DuplexCore's sources + Fuzz/Support + Fuzz/<target>.swift in
#    one module, instrumented for libFuzzer and AddressSanitizer.
for target in "${CORE_TARGETS[@]}"; do
  if [ -x "$BUILD/$target" ] && [ -z "$(find "${CORE_SOURCES[@]}" "${SUPPORT[@]}" "Fuzz/$target.swift" "${OBJECTS[@]}" Fuzz/run.sh Fuzz/manifest.py \
         -newer "$BUILD/$target" -print -quit)" ]; then
    step "build $target: up to date"
    continue
  fi
  link_target "$target" -module-cache-path "$BUILD/ModuleCache" "${FLAGS[@]}" \
    "${CORE_SOURCES[@]}" "${SUPPORT[@]}" "Fuzz/$target.swift" "${OBJECTS[@]}"
done

# 3. The network targets (Fuzz/Net): the Duplex module's sources on the server's channel
#    pipeline. Their dependencies (NIOCore, NIOPosix, NIOHTTP1, NIOSSL, NIOEmbedded, ...) are the
#    debug build's (.build, as `swift build --build-tests` leaves it; not instrumented): DuplexCore
#    and Duplex are compiled here from their sources, instrumented, as modules of their own
#    (-enable-testing, for the server's internal pipeline), and each target with Fuzz/Support.
if [ ${#NET_TARGETS[@]} -gt 0 ]; then
  NET="$BUILD/net"
  mkdir -p "$NET/modules"
  step "network targets' dependencies: swift build --target DuplexTests (debug, .build)"
  swift build --target DuplexTests || die "swift build --target DuplexTests failed"
  DEBUG_MANIFEST="$ROOT/.build/debug.yaml"
  python3 Fuzz/manifest.py "$DEBUG_MANIFEST" "$TRIPLE" debug DuplexCore > "$NET/core-manifest.txt" || die "cannot read $DEBUG_MANIFEST"
  python3 Fuzz/manifest.py "$DEBUG_MANIFEST" "$TRIPLE" debug Duplex Duplex,NIOEmbedded Duplex,DuplexCore \
    > "$NET/manifest.txt" || die "cannot read $DEBUG_MANIFEST"
  mapfile -t NET_CORE_FLAGS < <(sed -n 's/^flag //p' "$NET/core-manifest.txt")
  mapfile -t NET_FLAGS < <(sed -n 's/^flag //p' "$NET/manifest.txt")
  mapfile -t NET_OBJECTS < <(sed -n 's/^object //p' "$NET/manifest.txt")
  mapfile -t DUPLEX_SOURCES < <(find Sources/Duplex -name '*.swift' | sort)
  # net_module NAME SOURCES...: NAME.o and NAME.swiftmodule in $NET, unless up to date.
  net_module() {
    local name=$1 flags_var=$2
    shift 2
    local -n module_flags="$flags_var"
    if [ -f "$NET/$name.o" ] && [ -z "$(find "$@" "$NET/DuplexCore.o" "${NET_OBJECTS[@]}" Fuzz/run.sh -newer "$NET/$name.o" -print -quit)" ]; then
      step "build $name (instrumented, for Fuzz/Net): up to date"
      return 0
    fi
    step "build $name (instrumented, for Fuzz/Net)"
    swiftc -module-name "$name" -parse-as-library -O -g -wmo -enable-testing \
      "${INSTRUMENT[@]}" -target "$TRIPLE" -module-cache-path "$NET/ModuleCache" \
      -I "$NET/modules" "${module_flags[@]}" \
      -c "$@" -o "$NET/$name.o" -emit-module -emit-module-path "$NET/modules/$name.swiftmodule" \
      2> "$NET/$name.build.log" || { cat "$NET/$name.build.log" >&2; rm -f "$NET/$name.o"; die "building $name failed"; }
  }
  net_module DuplexCore NET_CORE_FLAGS "${CORE_SOURCES[@]}"
  net_module Duplex NET_FLAGS "${DUPLEX_SOURCES[@]}"
  for target in "${NET_TARGETS[@]}"; do
    if [ -x "$BUILD/$target" ] && [ -z "$(find "$NET/DuplexCore.o" "$NET/Duplex.o" "${SUPPORT[@]}" "Fuzz/Net/$target.swift" \
           -newer "$BUILD/$target" -print -quit)" ]; then
      step "build $target: up to date"
      continue
    fi
    link_target "$target" -D FUZZ_NET -module-cache-path "$NET/ModuleCache" -I "$NET/modules" "${NET_FLAGS[@]}" \
      "${SUPPORT[@]}" "Fuzz/Net/$target.swift" "$NET/DuplexCore.o" "$NET/Duplex.o" "${NET_OBJECTS[@]}"
  done
fi

# 4. Run each target for SECONDS_PER_TARGET (0: build only; libFuzzer would take 0 as "forever").
if [ "$SECONDS_PER_TARGET" -eq 0 ]; then
  step "built ${#TARGETS[@]} targets in $BUILD (not run: 0 seconds)"
  exit 0
fi
export SWIFT_BACKTRACE=enable=no  # let libFuzzer and ASan report crashes (no backtracer process)
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
JOBS="${FUZZ_JOBS:-1}"
# run_target TARGET: one libFuzzer run, its output in the target's fuzz.log, its exit status in
# fuzz.status (the runs go in the background, JOBS at a time).
run_target() {
  local target=$1 corpus="$CORPORA/$1" log="$ARTIFACTS/$1/fuzz.log" status=0 dict=()
  mkdir -p "$corpus" "$ARTIFACTS/$target"
  [ -d "Fuzz/seeds/$target" ] && cp -n Fuzz/seeds/"$target"/* "$corpus"/ 2>/dev/null
  [ -f "Fuzz/dicts/$target.dict" ] && dict=("-dict=Fuzz/dicts/$target.dict")
  "$BUILD/$target" "$corpus" "${dict[@]}" \
    -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=2048 -timeout=5 -max_len=8192 \
    -print_final_stats=1 -artifact_prefix="$ARTIFACTS/$target/" > "$log" 2>&1 || status=$?
  echo "$status" > "$ARTIFACTS/$target/fuzz.status"
}

step "run ${#TARGETS[@]} targets for ${SECONDS_PER_TARGET}s each, $JOBS at a time"
running=0
for target in "${TARGETS[@]}"; do
  if [ "$running" -ge "$JOBS" ]; then wait -n; running=$((running - 1)); fi
  echo "start $target (at ${SECONDS}s)"
  rm -f "$ARTIFACTS/$target/fuzz.status"
  run_target "$target" &
  running=$((running + 1))
done
wait

failed=()
for target in "${TARGETS[@]}"; do
  step "$target"
  log="$ARTIFACTS/$target/fuzz.log"
  status="$(cat "$ARTIFACTS/$target/fuzz.status" 2>/dev/null || echo "no status")"
  grep -E "^#[0-9]+[[:space:]]+(INITED|DONE)|^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb|new_units_added)" "$log"
  if [ "$status" != 0 ]; then
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
