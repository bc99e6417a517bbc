#!/usr/bin/env bash
# The whole test suite: unit tests, CLI tests, the end-to-end tests that
# run the agent against the real kernel inside throwaway network namespaces
# (they need root and touch nothing outside the namespaces they create), and
# the packaging and deploy tests (scratch directories only).
set -euo pipefail
cd "$(dirname "$0")/.."
# Build the agent binary first: the e2e tests run it.
cargo build --locked -p kvmnet --bin kvmnet-agent
cargo test --locked --workspace "$@"
scripts/test-deploy.sh
