#!/usr/bin/env python3
"""Reads SwiftPM's build manifest (.build-fuzz/<config>.yaml) for Fuzz/run.sh.

Prints, one per line:
  flag <arg>    the search paths, C module maps and defines SwiftPM passes when compiling
                DuplexCore (the fuzzers compile DuplexCore's sources with the same flags);
  object <path> the object files of DuplexCore's dependency closure (Swift modules and C
                targets), found by following each module command's inputs. DuplexCore's own
                objects are left out: the fuzzers compile its sources, instrumented.
Usage: manifest.py MANIFEST TRIPLE CONFIG [FLAGS_MODULE [ROOT,ROOT... [EXCLUDED,EXCLUDED...]]]
  (defaults: DuplexCore, DuplexCore, DuplexCore). The network targets (Fuzz/Net) take the flags
  of Duplex and the objects of Duplex's and NIOEmbedded's closure without Duplex and DuplexCore,
  which they compile themselves, instrumented.
"""
import json
import sys

manifest, triple, config = sys.argv[1:4]
flags_module = sys.argv[4] if len(sys.argv) > 4 else "DuplexCore"
roots = sys.argv[5].split(",") if len(sys.argv) > 5 else ["DuplexCore"]
excluded = set(sys.argv[6].split(",")) if len(sys.argv) > 6 else {"DuplexCore"}
lines = open(manifest).read().splitlines()


def field(command, name):
    key = f'"C.{command}-{triple}-{config}.module":'
    try:
        start = next(i for i, l in enumerate(lines) if l.strip() == key)
    except StopIteration:
        sys.exit(f"manifest.py: no command for module {command} in {manifest}")
    for l in lines[start + 1:]:
        s = l.strip()
        if s.startswith(name + ":"):
            return json.loads(s[len(name) + 1:])
        if s.endswith('":') and s.startswith('"'):  # the next command
            break
    sys.exit(f"manifest.py: no {name} for module {command}")


args = field(flags_module, "args")
i = 0
while i < len(args):
    a = args[i]
    if a in ("-I", "-Xcc", "-swift-version", "-package-name") and i + 1 < len(args):
        print("flag", a)
        print("flag", args[i + 1])
        i += 2
        continue
    if a.startswith("-D") and a != "-DDEBUG":
        print("flag", a)
    i += 1

objects, seen, todo = set(), set(), list(roots)
while todo:
    module = todo.pop()
    if module in seen:
        continue
    seen.add(module)
    if module not in excluded:
        objects.update(o for o in field(module, "outputs") if o.endswith(".o"))
    for path in field(module, "inputs"):
        if path.endswith(".swiftmodule"):
            todo.append(path.rsplit("/", 1)[1][: -len(".swiftmodule")])
        elif path.endswith(".o") and not any(f"/{m}.build/" in path for m in excluded):
            objects.add(path)
for o in sorted(objects):
    print("object", o)
