#!/usr/bin/env bash
# The Debian package as built by scripts/package.sh: every shipped file is in
# it, it depends on what the agent runs, lintian finds nothing, the packaged
# binary works, and `systemd-analyze verify` accepts its units with every
# referenced file (binary, man page, script) taken from the package itself.
# Nothing is installed on this machine: the package is unpacked into a
# scratch root.
#   deploy/tests/package.sh [path/to/kvmnet-agent.deb]
set -euo pipefail
cd "$(dirname "$0")/../.."
deb=${1:-$(scripts/package.sh)}
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
fail() { echo "package test: FAIL: $*" >&2; exit 1; }

contents=$(dpkg-deb --contents "$deb" | awk '{print $6}' | sed 's#^\./#/#')
units=/lib/systemd/system
grep -q "^/usr/lib/systemd/system/kvmnet-agent.service$" <<<"$contents" && units=/usr/lib/systemd/system
for path in \
    /usr/bin/kvmnet-agent \
    $units/kvmnet-agent.service \
    $units/kvmnet-gitsync.service \
    $units/kvmnet-gitsync.timer \
    /usr/libexec/kvmnet/kvmnet-gitsync \
    /usr/share/man/man8/kvmnet-agent.8.gz \
    /usr/share/man/man8/kvmnet-agent-validate.8.gz \
    /usr/share/bash-completion/completions/kvmnet-agent \
    /usr/share/zsh/vendor-completions/_kvmnet-agent \
    /usr/share/fish/vendor_completions.d/kvmnet-agent.fish \
    /usr/share/kvmnet/kvmnet.schema.json \
    /usr/share/doc/kvmnet-agent/copyright \
    /usr/share/doc/kvmnet-agent/examples/gitsync.env \
    /usr/share/doc/kvmnet-agent/examples/nat-network.toml \
    /etc/iproute2/rt_protos.d/kvmnet.conf; do
    grep -qxF "$path" <<<"$contents" || fail "$path is not in the package"
done
depends=$(dpkg-deb --field "$deb" Depends)
for dep in nftables dnsmasq-base; do
    grep -qw "$dep" <<<"$depends" || fail "Depends ($depends) lacks $dep"
done
recommends=$(dpkg-deb --field "$deb" Recommends)
grep -qw dnsmasq-utils <<<"$recommends" || fail "Recommends ($recommends) lacks dnsmasq-utils"
postinst=$(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./postinst)
grep -q '/etc/kvmnet/networks.d' <<<"$postinst" || fail "postinst does not create /etc/kvmnet/networks.d"
# Installed, not started: the agent starts once there are network files.
! grep -q 'deb-systemd-invoke start' <<<"$postinst" || fail "postinst starts a unit"

lintian --fail-on error,warning "$deb" ||
    fail "lintian complains about $deb"

dpkg-deb --extract "$deb" "$root"
agent=$root/usr/bin/kvmnet-agent
"$agent" validate "$root/usr/share/doc/kvmnet-agent/examples" >/dev/null ||
    fail "the packaged binary rejects the packaged examples"
cmp -s <("$agent" schema) "$root/usr/share/kvmnet/kvmnet.schema.json" ||
    fail "the packaged schema differs from kvmnet-agent schema"
zcat "$root/usr/share/man/man8/kvmnet-agent.8.gz" | grep -q -- 'detailed\\-exitcode' ||
    fail "the man page lacks --detailed-exitcode"
bash -n "$root/usr/share/bash-completion/completions/kvmnet-agent" ||
    fail "the bash completion does not parse"
for sub in validate schema show leases; do
    grep -qw "$sub" "$root/usr/share/bash-completion/completions/kvmnet-agent" ||
        fail "the bash completion lacks $sub"
done

unit=$root$units/kvmnet-agent.service
for wanted in libvirtd.service virtqemud.service libvirt-guests.service; do
    grep -q "^Before=.*\b$wanted\b" "$unit" || fail "the unit does not start before $wanted"
done
grep -q '^WatchdogSec=' "$unit" || fail "the unit has no WatchdogSec"
grep -q '^Documentation=man:kvmnet-agent(8)$' "$unit" || fail "the unit's Documentation= changed"

# Every path a unit names resolves inside the unpacked package (the verify
# below checks ExecStart= on this machine's root, where nothing is installed).
for unit in "$root$units"/*; do
    for exe in $(sed -n 's/^Exec[A-Za-z]*=[-@+!]*\(\/[^ ]*\).*/\1/p' "$unit"); do
        [ -x "$root$exe" ] || [ -x "$exe" ] || fail "$(basename "$unit") runs $exe, which is not shipped"
    done
done
# systemd-analyze verify checks that the programs a unit runs exist, on this
# machine, where the package is not installed: verify copies of the units
# whose shipped paths point into the unpacked package (checked above), with
# the packaged man pages on MANPATH for Documentation=.
mkdir "$root/verify"
for unit in "$root$units"/*; do
    sed "s#=\(/usr/bin/kvmnet-agent\|/usr/libexec/kvmnet/\)#=$root\1#" "$unit" >"$root/verify/$(basename "$unit")"
done
grep -q "^ExecStart=$root/usr/bin/kvmnet-agent" "$root/verify/kvmnet-agent.service" ||
    fail "the agent's ExecStart is not /usr/bin/kvmnet-agent"
MANPATH="$root/usr/share/man:$(manpath 2>/dev/null || true)" systemd-analyze verify "$root"/verify/* ||
    fail "systemd-analyze verify rejects the packaged units"
echo "package test: ok ($deb)"
