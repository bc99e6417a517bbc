#!/usr/bin/env bash
# The agent's main job on a safe default: converge the example networks inside
# a throwaway network namespace, break things the way operators and other
# software do, and watch kvmnet find and repair the drift. Nothing outside the
# namespace is touched; the namespace is deleted at the end (also on Ctrl-C).
# Run as root (network namespaces need it): sudo scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "demo: needs root for network namespaces: sudo $0" >&2
    exit 1
fi
scripts/install-deps.sh
cargo build --quiet --locked -p kvmnet --bin kvmnet-agent
agent="$PWD/target/debug/kvmnet-agent"

ns="kvmnet-demo-$$"
work="$(mktemp -d)"
cleanup() {
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

mkdir -p "$work/config" "$work/state" "$work/run"
# Every example but the bridged one: it enslaves a physical uplink.
for f in examples/*; do
    case "$f" in *bridged*) ;; *) cp "$f" "$work/config/" ;; esac
done

ip netns add "$ns"
ip -n "$ns" link set lo up
run() {
    echo
    echo "\$ kvmnet-agent $*"
    ip netns exec "$ns" "$agent" --config-dir "$work/config" --state-dir "$work/state" \
        --run-dir "$work/run" "$@" && rc=0 || rc=$?
    echo "(exit $rc)"
}
step() { echo; echo "=== $*"; }

step "validate the files"
run validate
step "converge the examples from nothing"
run --once
step "a second pass finds everything in sync and writes nothing"
run --once
step "break things: delete a bridge, take another down, remove an address, reset ip_forward"
ip -n "$ns" link del virbr-nat
ip -n "$ns" link set virbr-routed down
ip -n "$ns" addr del 192.168.50.1/24 dev virbr-lab
ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=0
step "--check reports every drift item and exits 2, changing nothing"
run --check
step "--once repairs it"
run --once
step "desired against observed for one network"
run show lab
