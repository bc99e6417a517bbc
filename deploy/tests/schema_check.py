"""Checks network files against the JSON Schema, as an editor would.

    python3 schema_check.py SCHEMA FILE...

Prints one line per file, "accept PATH" or "reject PATH: REASON"; a file
that does not parse as TOML/YAML is "unparsable PATH". The format comes from
the extension, else from the first line that is not blank or a comment
(a table header or `key = value` means TOML), like `kvmnet-agent validate`.
"""
import json
import re
import sys
import tomllib

import jsonschema
import yaml


def is_toml(path, text):
    if path.endswith(".toml"):
        return True
    if path.endswith((".yaml", ".yml")):
        return False
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        return bool(re.match(r"^\[|^[A-Za-z0-9_.\"-]+\s*=", line))
    return False


def main():
    schema = json.load(open(sys.argv[1]))
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    for path in sys.argv[2:]:
        text = open(path, encoding="utf-8-sig", errors="replace").read()
        try:
            data = tomllib.loads(text) if is_toml(path, text) else yaml.safe_load(text)
        except Exception:
            print(f"unparsable {path}")
            continue
        error = next(iter(validator.iter_errors(data)), None)
        if error is None:
            print(f"accept {path}")
        else:
            where = "/".join(str(p) for p in error.absolute_path)
            print(f"reject {path}: {where}: {error.message[:120]}")


main()
