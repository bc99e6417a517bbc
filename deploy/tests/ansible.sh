#!/usr/bin/env bash
# The Ansible role (deploy/ansible/roles/kvmnet) run by ansible-playbook with
# connection: local against a scratch config directory (no package install,
# no service, no audit: nothing outside the scratch directory changes):
# it renders files the agent accepts, a second run changes nothing, a
# leftover file of the same network is removed, check mode fails on a broken
# network without touching the files, an unquoted MAC is pointed out; and
# ansible-lint passes.
#   KVMNET_AGENT=target/debug/kvmnet-agent deploy/tests/ansible.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
agent=${KVMNET_AGENT:-$PWD/target/debug/kvmnet-agent}
bin=${KVMNET_DEPLOY_TOOLS:-$PWD/target/deploy-tools/venv/bin}
export PATH="$bin:$PATH"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "ansible test: FAIL: $*" >&2; exit 1; }
export ANSIBLE_HOME="$work/ansible-home" ANSIBLE_LOCAL_TEMP="$work/tmp" \
    ANSIBLE_REMOTE_TEMP="$work/tmp" ANSIBLE_ROLES_PATH="$PWD/deploy/ansible/roles" \
    ANSIBLE_NOCOLOR=1 ANSIBLE_RETRY_FILES_ENABLED=0 ANSIBLE_LOCALHOST_WARNING=0 \
    ANSIBLE_INVENTORY_UNPARSED_WARNING=0 ANSIBLE_PYTHON_INTERPRETER="$bin/python"

dir="$work/networks.d"
cat >"$work/play.yml" <<PLAY
- name: kvmnet role against scratch paths
  hosts: localhost
  connection: local
  gather_facts: false
  roles:
    - role: kvmnet
      vars:
        kvmnet_install: none
        kvmnet_binary: $agent
        kvmnet_config_dir: $dir
        kvmnet_manage_service: false
        kvmnet_audit: false
PLAY
# Networks as an extra-vars file, the way group_vars hold them.
good_vars() {
    cat <<'VARS'
kvmnet_networks:
  nat-network:
    mode: nat
    bridge: { name: virbr-nat, stp: true, delay: 2s }
    ip:
      - address: 192.168.10.1/24
        dhcp:
          ranges: [{ start: 192.168.10.2, end: 192.168.10.254 }]
          hosts: [{ name: myhost, ip: 192.168.10.10, mac: "52:54:00:12:34:56" }]
  iso:
    mode: isolated
    bridge: { name: virbr-iso }
    ip: [{ address: 192.168.30.1/24 }]
VARS
}
play() {
    local vars=$1
    shift
    "$bin/ansible-playbook" -i localhost, -e "@$vars" "$@" "$work/play.yml" >"$work/out" 2>&1
}
changed() { sed -n 's/.*changed=\([0-9]*\).*/\1/p' "$work/out" | tail -n 1; }

mkdir -p "$dir"
# Leftovers: the same network as TOML (would define it twice), and another file.
cp examples/nat-network.toml "$dir/nat-network.toml"
cp examples/open.toml "$dir/open.toml"
good_vars >"$work/good.yml"
play "$work/good.yml" || fail "first run: $(cat "$work/out")"
[ "$(changed)" -gt 0 ] || fail "first run changed nothing: $(cat "$work/out")"
[ ! -e "$dir/nat-network.toml" ] || fail "the leftover nat-network.toml is still there"
[ ! -e "$dir/open.toml" ] || fail "the unmanaged open.toml is still there"
[ -f "$dir/nat-network.yaml" ] && [ -f "$dir/iso.yaml" ] || fail "files not rendered: $(ls "$dir")"
"$agent" validate --output json "$dir" >"$work/validate.json" || fail "rendered files do not validate"
grep -q '"iso"' "$work/validate.json" && grep -q '"nat-network"' "$work/validate.json" ||
    fail "rendered networks: $(cat "$work/validate.json")"
grep -q '52:54:00:12:34:56' "$dir/nat-network.yaml" || fail "the MAC is not rendered as written"
grep -q '^# yaml-language-server: \$schema=file:///usr/share/kvmnet/kvmnet.schema.json$' "$dir/iso.yaml" ||
    fail "no schema modeline pointing at the installed schema"

play "$work/good.yml" || fail "second run: $(cat "$work/out")"
[ "$(changed)" = 0 ] || fail "second run is not idempotent: $(cat "$work/out")"

# Check mode: a broken network (a DHCP range outside its subnet) fails the
# play, and no file changes.
sed 's/end: 192.168.10.254/end: 192.168.11.254/' "$work/good.yml" >"$work/broken.yml"
before=$(cat "$dir"/*)
if play "$work/broken.yml" --check --diff; then fail "check mode passed a broken network: $(cat "$work/out")"; fi
grep -q "outside the subnet" "$work/out" || fail "check mode does not say why: $(cat "$work/out")"
[ "$(cat "$dir"/*)" = "$before" ] || fail "check mode changed files"
if play "$work/broken.yml"; then fail "a broken network was applied"; fi
[ "$(cat "$dir"/*)" = "$before" ] || fail "a failed run changed files"

# An unquoted MAC of digits is a number in YAML 1.1: the role says so.
sed 's/mac: "52:54:00:12:34:56"/mac: 52:54:00:12:34:56/' "$work/good.yml" >"$work/unquoted.yml"
if play "$work/unquoted.yml"; then fail "an unquoted MAC was accepted: $(cat "$work/out")"; fi
grep -q "quote it" "$work/out" || fail "no hint for the unquoted MAC: $(cat "$work/out")"

(cd deploy/ansible && "$bin/ansible-lint" --offline -q roles/kvmnet example-playbook.yml) ||
    fail "ansible-lint"
echo "ansible test: ok"
