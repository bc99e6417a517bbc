#!/usr/bin/env bash
# The JSON Schema (schema/kvmnet.schema.json) checked the way an editor
# checks a file (python-jsonschema, draft 2020-12): it accepts every example
# and every good corpus case, and rejects every bad corpus case listed in
# deploy/tests/schema-shape-errors; and it describes every key.
#   deploy/tests/schema.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
python=${KVMNET_DEPLOY_TOOLS:-$PWD/target/deploy-tools/venv/bin}/python
schema=schema/kvmnet.schema.json
check() { "$python" deploy/tests/schema_check.py "$schema" "$@"; }
fail() { echo "schema test: FAIL: $*" >&2; exit 1; }

wrong=$(check examples/* agent/tests/corpus/good/* | grep -v '^accept ' || true)
[ -z "$wrong" ] || fail "the schema refuses valid files:
$wrong"
mapfile -t shape < <(grep -v '^#' deploy/tests/schema-shape-errors | sed 's#^#agent/tests/corpus/bad/#')
[ ${#shape[@]} -gt 50 ] || fail "the shape error list is (nearly) empty"
for f in "${shape[@]}"; do
    [ -f "$f" ] || fail "$f is listed in deploy/tests/schema-shape-errors but does not exist"
done
wrong=$(check "${shape[@]}" | grep -v '^reject ' || true)
[ -z "$wrong" ] || fail "the schema accepts what validate refuses:
$wrong"
undescribed=$("$python" - "$schema" <<'PY'
import json, sys
def walk(node, path):
    if isinstance(node, dict):
        for key, sub in node.get("properties", {}).items():
            if "description" not in sub:
                print(f"{path}.{key}")
        for key, sub in node.items():
            walk(sub, f"{path}/{key}" if key != "properties" else path)
    elif isinstance(node, list):
        for sub in node:
            walk(sub, path)
walk(json.load(open(sys.argv[1])), "")
PY
)
[ -z "$undescribed" ] || fail "keys without a description: $undescribed"
echo "schema test: ok (${#shape[@]} shape errors rejected)"
