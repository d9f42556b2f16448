#!/usr/bin/env bash
# DuplexCore micro-benchmarks, side by side with SwiftNIO (and the Swift standard library for
# UTF-8), in one run. Builds in release with its own scratch path and runs pinned to CPU 0.
#
#   Benchmarks/run-core-benchmarks.sh                  # all benchmarks, median of 15 samples
#   Benchmarks/run-core-benchmarks.sh --markdown       # also print the table for docs/benchmarks.md
#   Benchmarks/run-core-benchmarks.sh --filter unmask  # a subset (see --help)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"

swift build -c release --product DuplexCoreBenchmarks --scratch-path .build-bench
binary="$(swift build -c release --product DuplexCoreBenchmarks --scratch-path .build-bench --show-bin-path)/DuplexCoreBenchmarks"

echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//'), $(swift --version 2>/dev/null | head -1)"
if command -v taskset >/dev/null 2>&1; then
    exec taskset -c 0 "$binary" "$@"
else
    exec "$binary" "$@"
fi
