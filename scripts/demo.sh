#!/usr/bin/env bash
# The agent's main job on a safe default: run the daemon on the example
# networks inside a throwaway network namespace, break things the way
# operators and other software do, and watch it find and repair the drift in
# its own log. Nothing outside the namespace is touched; the namespace (and
# every process in it) is deleted at the end, also on Ctrl-C.
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
vm="kvmnet-demo-vm-$$"
work="$(mktemp -d)"
cleanup() {
    for n in "$vm" "$ns"; do
        for pid in $(ip netns pids "$n" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
        ip netns del "$n" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

# dnsmasq drops root and must traverse to its files under the run directory.
chmod 755 "$work"
mkdir -p "$work/config" "$work/state" "$work/run"
# Every example but the bridged one, which enslaves a physical uplink.
for f in examples/*; do
    case "$f" in *bridged*) ;; *) cp "$f" "$work/config/" ;; esac
done
ip netns add "$ns"
ip -n "$ns" link set lo up

in_ns() { ip netns exec "$ns" "$@"; }
agent() {
    in_ns "$agent" --config-dir "$work/config" --state-dir "$work/state" --run-dir "$work/run" "$@"
}
mkdir -p "$work/log"
log="$work/log/agent.log"
shown=0
# Prints what the daemon logged since the last call.
show_log() {
    local total
    total=$(wc -l <"$log")
    if [ "$total" -gt "$shown" ]; then
        tail -n +"$((shown + 1))" "$log" | head -n "$((total - shown))" | sed 's/^/    agent| /'
        shown=$total
    fi
}
# Waits (at most 10 s) until a command succeeds.
wait_until() {
    for _ in $(seq 100); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    echo "demo: timed out waiting for: $*" >&2
    return 1
}
step() { echo; echo "=== $*"; }

step "validate the example files"
agent validate

step "start the daemon (interval 1h: every repair below comes from an event, not the timer)"
agent --interval 1h >"$log" 2>&1 &
wait_until test -f "$work/run/status.json"
sleep 0.3
show_log

step "a guest: a VM namespace plugged into virbr-nat asks for a DHCP lease"
ip netns add "$vm"
ip -n "$ns" link add vm0 type veth peer name eth0 netns "$vm"
ip -n "$ns" link set vm0 master virbr-nat up
ip -n "$vm" link set lo up
ip -n "$vm" link set eth0 up
cat >"$work/udhcpc.sh" <<'SCRIPT'
#!/bin/sh
[ "$1" = bound ] || exit 0
ip addr add "$ip/$mask" dev "$interface"
[ -n "$router" ] && ip route add default via "${router%% *}"
echo "    vm| lease $ip/$mask, router ${router:-none}, DNS ${dns:-none}"
SCRIPT
chmod +x "$work/udhcpc.sh"
# virbr-nat runs STP with a 2 s forward delay: the port forwards after ~4 s.
ip netns exec "$vm" busybox udhcpc -f -q -n -t 10 -T 1 -i eth0 -s "$work/udhcpc.sh" 2>/dev/null
ip netns exec "$vm" busybox ping -c 1 -W 2 192.168.10.1 | sed -n 's/^/    vm| /;2p'
agent leases

step "break it: kill the network's dnsmasq (SIGKILL)"
dnsmasq_pid() { in_ns pgrep -f "dnsmasq.*/nat-network.conf"; }
old_pid=$(dnsmasq_pid)
in_ns kill -9 "$old_pid"
restarted() { pid=$(dnsmasq_pid) && [ "$pid" != "$old_pid" ]; }
wait_until restarted
sleep 0.3
show_log
echo "dnsmasq pid $old_pid -> $(dnsmasq_pid)"

step "break it: flush the whole nftables ruleset (nft flush ruleset)"
in_ns nft flush ruleset
wait_until in_ns nft list table inet kvmnet
sleep 0.3
show_log
echo "the guest reaches its gateway again:"
ip netns exec "$vm" busybox ping -c 1 -W 2 192.168.10.1 | sed -n 's/^/    vm| /;2p'

step "break it: delete a bridge by hand (ip link del virbr-nat)"
in_ns ip link del virbr-nat
wait_until in_ns ip link show virbr-nat
sleep 0.5
show_log
echo "the guest's port is back on the new bridge:"
in_ns ip -br link show master virbr-nat

step "break it: reset ip_forward and take a bridge down"
in_ns sysctl -qw net.ipv4.ip_forward=0
in_ns ip link set virbr-routed down
forwarding() { [ "$(in_ns cat /proc/sys/net/ipv4/ip_forward)" = 1 ]; }
routed_up() { in_ns ip -br link show virbr-routed | grep -q 'UP>'; }
wait_until routed_up
if ! forwarding; then
    # The bridge event's pass repaired ip_forward too, unless it ran before
    # the sysctl change: a sysctl change sends no event, SIGHUP (systemctl
    # reload) asks for a pass now.
    in_ns pkill -HUP -f "^$agent" || true
fi
wait_until forwarding
sleep 0.5
show_log

step "a typo in a file: the network keeps running from the last good version"
sed -i 's/mode = "nat"/mode = "nta"/' "$work/config/nat-network.toml"
sleep 1
show_log

step "fix the file"
sed -i 's/mode = "nta"/mode = "nat"/' "$work/config/nat-network.toml"
sleep 1
show_log

step "audit: kvmnet-agent --check (exit 0 in sync, 2 drift, 1 error)"
agent --check && echo "(exit 0)"

step "status and metrics"
grep -E '"(result|writes)"' "$work/run/status.json" | head -2
grep -E '^kvmnet_(networks|passes_total)' "$work/state/kvmnet.prom"

step "stop the daemon: the networks stay up"
in_ns pkill -TERM -f "^$agent" || true
sleep 0.5
show_log
in_ns ip -br link show type bridge
