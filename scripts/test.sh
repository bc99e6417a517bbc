#!/usr/bin/env bash
# The whole test suite: unit tests, CLI tests, the end-to-end tests that
# run the agent against the real kernel inside throwaway network namespaces
# (they need root and touch nothing outside the namespaces they create), and
# the packaging and deploy tests (scratch directories only, scripts/test-deploy.sh).
# Unit tests that need root are marked #[ignore = "needs root ..."]: plain
# `cargo test -p kvmnet` runs the rest as any user; this script runs all.
set -euo pipefail
cd "$(dirname "$0")/.."
# Build the agent binary first: the e2e tests run it.
cargo build --locked -p kvmnet --bin kvmnet-agent
cargo test --locked --workspace "$@" -- --include-ignored

# As root, prove that the unprivileged part really is: run the agent
# crate's own tests again without any capability, as nobody.
if [ "$(id -u)" -eq 0 ] && [ $# -eq 0 ] && command -v setpriv >/dev/null; then
    echo "test.sh: the kvmnet crate's tests again, as nobody without capabilities" >&2
    mapfile -t binaries < <(cargo test --locked -p kvmnet --no-run --message-format=json 2>/dev/null |
        python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(m["executable"])')
    scratch=$(mktemp -d)
    chmod 0777 "$scratch"
    trap 'rm -rf "$scratch"' EXIT
    for binary in "${binaries[@]}"; do
        (cd agent && setpriv --reuid=65534 --regid=65534 --clear-groups \
            --inh-caps=-all --bounding-set=-all -- \
            env HOME="$scratch" TMPDIR="$scratch" "$binary" -q)
    done
fi

scripts/test-deploy.sh
