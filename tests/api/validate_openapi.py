#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Validates recorded API responses against daemon/api/openapi.yaml.

Usage: validate_openapi.py OPENAPI.yaml RECORDED.jsonl

Each line of RECORDED is {"method", "path", "status", "body"} (body: the
response's JSON, parsed), or {"schema": "Name", "body": ...} for a body
whose schema is named directly (an event's data: Activity). The response
schema is the operation's for that status (else its "default"); a path that
matches no operation must answer with the Error schema. Exits 1, printing
every mismatch, when any body does not match; 2 when the description itself
is broken. Needs python3-yaml and python3-jsonschema (Debian 12: 4.10).
"""
import json
import re
import sys

import jsonschema
import yaml


def pointer(*parts):
    return "#/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def main():
    spec_path, recorded_path = sys.argv[1], sys.argv[2]
    with open(spec_path, encoding="utf-8") as f:
        spec = yaml.safe_load(f)
    if not str(spec.get("openapi", "")).startswith("3.1"):
        print(f"{spec_path}: expected OpenAPI 3.1 (its schemas are JSON Schema 2020-12)")
        return 2
    jsonschema.Draft202012Validator.check_schema(spec.get("components", {}).get("schemas", {}))
    routes = []
    for template, ops in spec["paths"].items():
        rx = re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", re.escape(template).replace(r"\{", "{").replace(r"\}", "}")) + "$")
        routes.append((rx, template, ops))

    def schema_ref(rec):
        if "schema" in rec:
            return pointer("components", "schemas", rec["schema"])
        path = rec["path"].split("?", 1)[0]
        method = rec["method"].lower()
        status = str(rec["status"])
        for rx, template, ops in routes:
            if not rx.match(path):
                continue
            op = ops.get(method)
            if op is None:
                return pointer("components", "schemas", "Error")
            responses = op["responses"]
            key = status if status in responses else "default"
            if key not in responses:
                raise LookupError(f"{rec['method']} {template}: no response {status} described")
            resp = responses[key]
            if "$ref" in resp:
                name = resp["$ref"].rsplit("/", 1)[1]
                return pointer("components", "responses", name, "content", "application/json", "schema")
            return pointer("paths", template, method, "responses", key, "content", "application/json",
                           "schema")
        return pointer("components", "schemas", "Error")

    failures = 0
    count = 0
    root = dict(spec)
    validators = {}  # by schema reference: building one per body is slow
    with open(recorded_path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            rec = json.loads(line)
            count += 1
            where = rec.get("schema") or f"{rec['method']} {rec['path']} -> {rec['status']}"
            try:
                ref = schema_ref(rec)
                if ref not in validators:
                    validators[ref] = jsonschema.Draft202012Validator(dict(root, **{"$ref": ref}))
                validator = validators[ref]
                errors = sorted(validator.iter_errors(rec["body"]), key=lambda e: list(e.path))
            except LookupError as e:
                print(f"line {n}: {where}: {e}")
                failures += 1
                continue
            for e in errors:
                failures += 1
                at = "/".join(str(p) for p in e.absolute_path)
                print(f"line {n}: {where}: at /{at}: {e.message}")
    print(f"validated {count} bodies, {failures} problems")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
