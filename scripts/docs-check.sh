#!/usr/bin/env bash
# docs-check.sh - the DocC documentation of Duplex and DuplexCore, checked the way CI wants it:
#  1. both catalogs (Sources/Duplex/Duplex.docc, Sources/DuplexCore/DuplexCore.docc) build with
#     swift-docc-plugin's `generate-documentation`, with docc's `--warnings-as-errors` (flags after
#     the plugin's own options go to docc): an unresolved ``symbol`` or <doc:article> link, a
#     malformed Topics group or a documented parameter that does not exist fails the build;
#  2. no public symbol of either module is undocumented. This is a symbol-graph check (not docc's
#     coverage report): the plugin extracts the modules' public symbol graphs (JSON, what docc
#     reads), and every symbol in them with its own doc comment passes. Failing, and listed as
#     `file:line: kind name`: a public declaration without a `///` comment, or whose only
#     documentation is inherited from another module (`description`, `makeAsyncIterator()`, `==`:
#     these say nothing about this package; a doc inherited from a protocol of the same module
#     counts). Not declarations of ours, so not checked: synthesized symbols (a protocol's
#     default implementations), symbols without a source location (made by the compiler, such
#     as a raw-value enum's `init(rawValue:)`) and extension blocks.
# The symbol graphs come from the package's debug build in .build (the plugin builds what is
# missing, so after `swift build --build-tests` it only extracts them); the archives are written
# to .build/plugins/Swift-DocC/outputs/ (git-ignored). Needs python3. Exit 0 when both hold.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
TARGETS=(Duplex DuplexCore)

LOG="$(mktemp)"
trap 'rm -f "$LOG"' EXIT
args=()
for target in "${TARGETS[@]}"; do args+=(--target "$target"); done

echo "== DocC: ${TARGETS[*]} (warnings are errors)"
status=0
swift package generate-documentation "${args[@]}" --verbose --warnings-as-errors 2>&1 | tee "$LOG" || status=$?
if [ "$status" -ne 0 ] || grep -qE "^(warning|error): |: (warning|error): " "$LOG"; then
  echo "docs-check: DocC reported warnings or errors (above)" >&2
  exit 1
fi

# The plugin prints where each target's symbol graphs are (with --verbose).
dirs=()
while IFS= read -r dir; do dirs+=("$dir"); done < <(sed -n "s/^target symbol graph directory path: '\(.*\)'$/\1/p" "$LOG" | sort -u)
if [ ${#dirs[@]} -eq 0 ]; then
  echo "docs-check: the plugin printed no symbol graph directory" >&2
  exit 1
fi

echo "== undocumented public symbols (symbol graphs in ${dirs[*]})"
python3 - "${TARGETS[@]}" -- "${dirs[@]}" <<'PY'
import glob, json, os, sys

args = sys.argv[1:]
split = args.index("--")
modules, dirs = set(args[:split]), args[split + 1:]
seen, missing, total = set(), [], 0
for directory in dirs:
    for path in sorted(glob.glob(os.path.join(directory, "*.symbols.json"))):
        graph = json.load(open(path))
        module = graph["module"]["name"]
        if module not in modules:
            continue
        for symbol in graph["symbols"]:
            precise = symbol["identifier"]["precise"]
            kind = symbol["kind"]["identifier"]
            if "::SYNTHESIZED::" in precise or kind == "swift.extension" or precise in seen:
                continue
            if symbol.get("accessLevel") not in ("public", "open") or "location" not in symbol:
                continue  # no location: made by the compiler, e.g. a raw-value enum's init(rawValue:)
            seen.add(precise)
            total += 1
            doc = symbol.get("docComment")
            own = doc and doc.get("module", module) == module and any(line["text"].strip() for line in doc.get("lines", []))
            if own:
                continue
            location = symbol.get("location", {})
            file = location.get("uri", "?").replace("file://", "")
            file = os.path.relpath(file) if file.startswith("/") else file
            line = location.get("position", {}).get("line", -1) + 1
            name = ".".join(symbol["pathComponents"])
            missing.append(f"{file}:{line}: {kind.removeprefix('swift.')} {name}")
for entry in sorted(set(missing)):
    print(entry)
print(f"{len(set(missing))} of {total} public symbols undocumented")
sys.exit(1 if missing else 0)
PY
echo "docs-check: both catalogs build without warnings, every public symbol is documented"
