#!/usr/bin/env bash
# The packaging and deploy tests (deploy/tests/): the Debian package and its
# units, the Git sync, the Ansible role and the Puppet module. They use
# scratch directories only: nothing under /etc/kvmnet, no service started,
# no network change. Installs their tools first (scripts/install-deploy-deps.sh).
#   scripts/test-deploy.sh            # all
#   scripts/test-deploy.sh gitsync    # some: gitsync package ansible puppet schema
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deploy-deps.sh
cargo build --quiet --locked -p kvmnet --bin kvmnet-agent
export KVMNET_AGENT=$PWD/target/debug/kvmnet-agent
tests=("$@")
[ ${#tests[@]} -gt 0 ] || tests=(gitsync package ansible puppet schema)
for t in "${tests[@]}"; do
    start=$SECONDS
    "deploy/tests/$t.sh"
    echo "test-deploy: $t took $((SECONDS - start)) s"
done
echo "deploy: ${#tests[@]} passed, 0 failed"
