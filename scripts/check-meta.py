#!/usr/bin/python3
"""check-meta.py [ROOT] — checks the release metadata of the tree at ROOT
(default: the repository this script is in).

1. META.json is valid against the PGXN Meta Spec 1.0.0 JSON Schema
   (test/pgxn/distribution.schema.json and the files it references),
   validated by python3-jsonschema (Draft 2020-12).
2. It agrees with campaign.control: the distribution's and the extension's
   version are default_version as a SemVer (1.1 -> 1.1.0), the abstract is
   the control file's comment, every extension the control file requires
   is a runtime prerequisite, and the files it names exist.
3. debian/changelog's latest version is default_version.
Prints one line per problem and exits 1 if there is any, else prints
"check-meta: ok (...)".
"""
import json
import os
import re
import sys

from jsonschema import Draft202012Validator

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCHEMA_DIR = os.path.join(ROOT, "test", "pgxn")
problems = []


# The schemas' patterns use classes that Python's re lacks (JSON Schema
# patterns are ECMA-262, with Unicode property escapes); each is rewritten
# to its re equivalent, and any other one is an error rather than a pattern
# that silently means something else.
PATTERN_CLASSES = {
    r"\p{Space}": r"\s",                  # inside [...]
    r"\p{Cntrl}": r"\x00-\x1f\x7f",   # inside [...]
    r"\p{lower}": r"[a-z]",
    r"[[:digit:]]": r"[0-9]",
}


def python_patterns(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "pattern" and isinstance(value, str):
                for ecma, python in PATTERN_CLASSES.items():
                    value = value.replace(ecma, python)
                if "\\p{" in value or "[[:" in value:
                    sys.exit(f"check-meta: pattern {value!r} uses a class Python's re lacks")
                node[key] = value
            else:
                python_patterns(value)
    elif isinstance(node, list):
        for value in node:
            python_patterns(value)


def load_validator():
    schemas = []
    for name in sorted(os.listdir(SCHEMA_DIR)):
        if name.endswith(".schema.json"):
            with open(os.path.join(SCHEMA_DIR, name), encoding="utf-8") as f:
                schema = json.load(f)
            python_patterns(schema)
            schemas.append(schema)
    root = next(s for s in schemas if s["$id"].endswith("/distribution.schema.json"))
    try:
        from referencing import Registry, Resource
        registry = Registry().with_resources(
            (s["$id"], Resource.from_contents(s)) for s in schemas)
        return Draft202012Validator(root, registry=registry)
    except ImportError:         # jsonschema before 4.18 (Debian 12 has 4.10)
        from jsonschema import RefResolver
        resolver = RefResolver.from_schema(root, store={s["$id"]: s for s in schemas})
        return Draft202012Validator(root, resolver=resolver)


def read_control(path):
    control = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"\s*(\w+)\s*=\s*'((?:[^']|'')*)'", line)
            if m:
                control[m.group(1)] = m.group(2).replace("''", "'")
    return control


def semver(version):
    parts = version.split(".")
    return ".".join(parts + ["0"] * (3 - len(parts)))


with open(os.path.join(ROOT, "META.json"), encoding="utf-8") as f:
    meta = json.load(f)
for error in sorted(load_validator().iter_errors(meta), key=lambda e: list(e.absolute_path)):
    where = "/".join(str(p) for p in error.absolute_path) or "(top)"
    problems.append(f"META.json: {where}: {error.message}")

control = read_control(os.path.join(ROOT, "campaign.control"))
version = control.get("default_version", "")
want = semver(version)
if meta.get("version") != want:
    problems.append(f"META.json: version {meta.get('version')!r}, campaign.control's default_version {version!r} (expected {want!r})")
ext = meta.get("provides", {}).get("campaign", {})
if ext.get("version") != want:
    problems.append(f"META.json: provides/campaign/version {ext.get('version')!r}, expected {want!r}")
for key in ("file", "docfile"):
    if key in ext and not os.path.isfile(os.path.join(ROOT, ext[key])):
        problems.append(f"META.json: provides/campaign/{key} {ext[key]!r} does not exist")
if meta.get("abstract") != control.get("comment"):
    problems.append(f"META.json: abstract {meta.get('abstract')!r}, campaign.control's comment {control.get('comment')!r}")
runtime = meta.get("prereqs", {}).get("runtime", {}).get("requires", {})
for req in filter(None, (r.strip() for r in control.get("requires", "").split(","))):
    if req not in runtime:
        problems.append(f"META.json: prereqs/runtime/requires lacks {req!r}, which campaign.control requires")

changelog = os.path.join(ROOT, "debian", "changelog")
with open(changelog, encoding="utf-8") as f:
    m = re.match(r"(\S+) \(([^)]+)\)", f.readline())
if not m or m.group(2) != version:
    problems.append(f"debian/changelog: latest version {m.group(2) if m else None!r}, campaign.control's default_version {version!r}")

for p in problems:
    print(p)
if problems:
    sys.exit(1)
print(f"check-meta: ok (META.json valid against PGXN Meta Spec 1.0.0; version {want}, campaign.control {version}, debian/changelog {version})")
