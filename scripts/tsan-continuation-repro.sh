#!/usr/bin/env bash
# Shows the one ThreadSanitizer false positive that .ci/tsan-suppressions.txt suppresses, without
# NIO or Duplex: a task's continuation resumed on another thread before the task has finished
# suspending (the Swift runtime's "already resumed" fast path hands the task over with an atomic
# TSan cannot see; https://github.com/swiftlang/swift/issues/57803).
#
#   scripts/tsan-continuation-repro.sh
#
# Exit 0 when TSan reports the race without the suppressions and reports nothing with them (the
# suppression is still needed and still enough); 1 otherwise, e.g. once a toolchain fixes the
# runtime (then remove the entry). CI runs it before the ThreadSanitizer tests.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d /opt/swift/usr/bin ] && export PATH="/opt/swift/usr/bin:$PATH"
SUPPRESSIONS="$PWD/.ci/tsan-suppressions.txt"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

cat > "$WORK/main.swift" <<'SWIFT'
import Dispatch
import Glibc

@inline(never) func use(_ n: Int) async -> Int {
    var local = [Int](repeating: n, count: 4)
    local[0] += 1
    return local.reduce(0, +)
}

let other = DispatchQueue(label: "resumer")
let done = DispatchSemaphore(value: 0)
Task.detached {
    var total = 0
    for i in 0..<100 {
        let value: Int = await withUnsafeContinuation { continuation in
            other.async { continuation.resume(returning: i) }
            usleep(200)  // the resume lands before this task suspends: the runtime's fast path
        }
        total += await use(value)
    }
    print("total \(total)")
    done.signal()
}
done.wait()
SWIFT
swiftc -sanitize=thread -g -O "$WORK/main.swift" -o "$WORK/repro"

count() { grep -c "WARNING: ThreadSanitizer" "$1" || true; }
TSAN_OPTIONS="halt_on_error=0 exitcode=0" "$WORK/repro" > "$WORK/plain.log" 2>&1
TSAN_OPTIONS="halt_on_error=0 exitcode=0 suppressions=$SUPPRESSIONS" "$WORK/repro" > "$WORK/suppressed.log" 2>&1
plain=$(count "$WORK/plain.log") suppressed=$(count "$WORK/suppressed.log")
echo "continuation fast path: $plain TSan report(s) without the suppressions, $suppressed with them"
grep -q "^total 19900$" "$WORK/suppressed.log" || { echo "the program did not finish correctly" >&2; exit 1; }
if [ "$plain" -eq 0 ]; then
  echo "this toolchain no longer reports the race: remove the entry from .ci/tsan-suppressions.txt" >&2
  exit 1
fi
if [ "$suppressed" -ne 0 ]; then
  sed -n '/WARNING: ThreadSanitizer/,/SUMMARY/p' "$WORK/suppressed.log" | head -40 >&2
  echo "the suppression does not cover the report" >&2
  exit 1
fi
