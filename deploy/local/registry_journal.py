#!/usr/bin/env python3
"""The local schema registry's memory, kept on disk.

rivven-schema 0.0.22 keeps schemas in memory only and hands out ids in
registration order (ids given in IMPORT mode are ignored). The broker's
records carry those ids, so a restarted registry must hand out the same
ids for the same schemas, or records written before the restart become
unreadable, or worse, decode with another schema. This script keeps a
journal of every (subject, version, id, schema) the registry holds and
brings a fresh registry back to it:

  save    URL JOURNAL         add what the registry holds to the journal
  restore URL JOURNAL         re-register the journal in id order on a
                              fresh registry, verifying each id (exit 1
                              on a mismatch: the stack must not start)
  seed    URL SCHEMAS_DIR     register every shipped schema version (the
                              released ones, then the current ones), so
                              the services never register a new schema
                              while running and the journal saved right
                              after holds every id their records carry
  watch   URL JOURNAL PID     save every 2 s while process PID lives (for
                              schemas other producers register)

Only the Python standard library is used.
"""

import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"

# Shipped record kinds, in a fixed order (schemas/<kind>.avsc and
# schemas/released/<kind>.v<N>.avsc).
KINDS = [
    "integration_event",
    "delivery_request",
    "outcome",
    "dead_letter",
    "ingest_cursor",
    "replay_marks",
    "audit_record",
    "control_command",
]


class Refused(Exception):
    """The registry cannot be brought back to the journal."""


def call(url, method="GET", body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Accept", CONTENT_TYPE)
    if data is not None:
        request.add_header("Content-Type", CONTENT_TYPE)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as e:
        detail = e.read().decode(errors="replace")[:500]
        raise Refused(f"{method} {url}: HTTP {e.code}: {detail}") from e


def quote(subject):
    return urllib.parse.quote(subject, safe="")


def registry_entries(base):
    """Every (subject, version) the registry holds, with its id and schema."""
    entries = []
    for subject in call(f"{base}/subjects"):
        for version in call(f"{base}/subjects/{quote(subject)}/versions"):
            e = call(f"{base}/subjects/{quote(subject)}/versions/{version}")
            entries.append(
                {
                    "id": int(e["id"]),
                    "subject": subject,
                    "version": int(version),
                    "schemaType": e.get("schemaType") or "AVRO",
                    "schema": e["schema"],
                }
            )
    return entries


def read_journal(path):
    try:
        with open(path) as f:
            return json.load(f)["entries"]
    except FileNotFoundError:
        return []


def write_journal(path, entries):
    entries = sorted(entries, key=lambda e: (e["id"], e["subject"], e["version"]))
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump({"format": 1, "entries": entries}, f, indent=1, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def save(base, path):
    """Adds the registry's entries to the journal (never drops one)."""
    known = {(e["subject"], e["version"]): e for e in read_journal(path)}
    changed = False
    for e in registry_entries(base):
        key = (e["subject"], e["version"])
        old = known.get(key)
        if old is None:
            known[key] = e
            changed = True
        elif old["id"] != e["id"]:
            # Never overwrite: the journal is what records on disk carry.
            print(
                f"registry journal: {e['subject']} version {e['version']} has id "
                f"{e['id']} in the registry but {old['id']} in the journal; keeping the journal's",
                file=sys.stderr,
            )
    if changed or not os.path.exists(path):
        write_journal(path, list(known.values()))
    return len(known)


def register(base, subject, schema, schema_type):
    body = {"schema": schema}
    if schema_type != "AVRO":
        body["schemaType"] = schema_type
    return int(call(f"{base}/subjects/{quote(subject)}/versions", "POST", body)["id"])


def restore(base, path):
    """Re-registers the journal on a fresh registry, in id order."""
    entries = read_journal(path)
    if registry_entries(base):
        raise Refused("the registry is not empty: restore needs a fresh one")
    # Versions restore as they were accepted, whatever the compatibility
    # setting now; start.sh sets it again afterwards.
    call(f"{base}/config", "PUT", {"compatibility": "NONE"})
    for e in sorted(entries, key=lambda e: (e["id"], e["subject"], e["version"])):
        got = register(base, e["subject"], e["schema"], e.get("schemaType", "AVRO"))
        if got != e["id"]:
            raise Refused(
                f"schema id mismatch: {e['subject']} version {e['version']} was id "
                f"{e['id']} when its records were written, the registry gave {got}"
            )
    return len(entries)


def seed(base, schemas_dir):
    """Registers every shipped schema version; returns how many."""
    count = 0
    for kind in KINDS:
        released_dir = os.path.join(schemas_dir, "released")
        released = sorted(
            (f for f in os.listdir(released_dir) if f.startswith(f"{kind}.v") and f.endswith(".avsc")),
            key=lambda f: int(f[len(kind) + 2 : -len(".avsc")]),
        )
        paths = [os.path.join(released_dir, f) for f in released]
        paths.append(os.path.join(schemas_dir, f"{kind}.avsc"))
        for p in paths:
            with open(p) as f:
                register(base, f"intops.shipped.{kind}", f.read(), "AVRO")
            count += 1
    return count


def watch(base, path, pid):
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        try:
            save(base, path)
        except (Refused, OSError, ValueError) as e:
            print(f"registry journal: save failed: {e}", file=sys.stderr)
        time.sleep(2)


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    command, base = argv[1], argv[2].rstrip("/")
    try:
        if command == "save":
            n = save(base, argv[3])
            print(f"registry journal: {n} schema versions in {argv[3]}")
        elif command == "restore":
            n = restore(base, argv[3])
            print(f"registry journal: {n} schema versions restored with their ids")
        elif command == "seed":
            n = seed(base, argv[3])
            print(f"registry journal: {n} shipped schema versions registered")
        elif command == "watch":
            watch(base, argv[3], int(argv[4]))
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except (Refused, OSError, ValueError, KeyError) as e:
        print(f"registry journal: {command} failed: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
