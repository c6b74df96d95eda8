#!/usr/bin/env python3
"""Validates #cloud-config documents with cloud-init's own code, many per process.

`cloud-init schema --config-file F` costs about half a second per run, nearly all of it start-up.
This does what that command does (cloudinit.config.schema.validate_cloudconfig_file against
get_schema()) for each document it is given, in one process.

Protocol: one JSON object per line on stdin, {"id": ..., "document": "..."}; one JSON object per
line on stdout, {"id": ..., "ok": bool, "error": str, "config": <the YAML as cloud-init loaded it>}.
"""
import contextlib
import io
import json
import os
import sys
import tempfile

from cloudinit import safeyaml
from cloudinit.config.schema import SchemaValidationError, get_schema, validate_cloudconfig_file


def check(schema, path, document):
    with open(path, "wb") as f:
        f.write(document.encode("utf-8"))
    result = {"ok": True, "error": "", "config": None}
    # validate_cloudconfig_file prints deprecations; keep stdout for the protocol.
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            validate_cloudconfig_file(path, schema)
    except SchemaValidationError as e:
        if e.has_errors():
            result.update(ok=False, error=str(e))
    except Exception as e:  # not YAML, not a dict: the command fails the same way
        result.update(ok=False, error="%s: %s" % (type(e).__name__, e))
    if result["ok"]:
        result["config"] = safeyaml.load(document)
    return result


def main():
    schema = get_schema()
    directory = tempfile.mkdtemp(prefix="cloud-init-schema-")
    path = os.path.join(directory, "user-data")
    try:
        for line in sys.stdin:
            request = json.loads(line)
            result = check(schema, path, request["document"])
            result["id"] = request["id"]
            sys.stdout.write(json.dumps(result, default=str) + "\n")
            sys.stdout.flush()
    finally:
        if os.path.exists(path):
            os.remove(path)
        os.rmdir(directory)


if __name__ == "__main__":
    main()
