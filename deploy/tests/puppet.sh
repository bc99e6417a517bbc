#!/usr/bin/env bash
# The Puppet module (deploy/puppet/kvmnet): puppet parser validate and
# puppet-lint pass, and `puppet apply` against a scratch config directory
# (class parameters from Hiera, no package, no service; Puppet's own state
# under the scratch directory too) renders networks given as a Hash and as
# text, is idempotent, and refuses a broken network without touching its file.
#   KVMNET_AGENT=target/debug/kvmnet-agent deploy/tests/puppet.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
agent=${KVMNET_AGENT:-$PWD/target/debug/kvmnet-agent}
module=$PWD/deploy/puppet/kvmnet
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "puppet test: FAIL: $*" >&2; exit 1; }

puppet parser validate "$module"/manifests/*.pp || fail "puppet parser validate"
puppet-lint --fail-on-warnings "$module/manifests" || fail "puppet-lint"
python3 -m json.tool "$module/metadata.json" >/dev/null || fail "metadata.json is not JSON"

dir="$work/networks.d"
mkdir -p "$work/modules" "$work/data" "$dir"
ln -s "$module" "$work/modules/kvmnet"
cat >"$work/hiera.yaml" <<HIERA
version: 5
hierarchy:
  - name: test
    path: common.yaml
    datadir: $work/data
HIERA
write_data() {
    cat >"$work/data/common.yaml" <<DATA
kvmnet::manage_package: false
kvmnet::manage_service: false
kvmnet::binary: $agent
kvmnet::config_dir: $dir
kvmnet::networks:
  iso:
    mode: isolated
    bridge: { name: virbr-iso }
    ip:
      - address: $1
        dhcp:
          hosts: [{ name: guest, ip: 192.168.30.10, mac: "52:54:00:00:30:10" }]
DATA
}
# Only the define: it declares the class itself (parameters from Hiera).
cat >"$work/site.pp" <<'SITE'
kvmnet::network { 'nat-network':
  content => "[networks.nat-network]\nmode = \"nat\"\nip = [{ address = \"192.168.10.1/24\" }]\n",
}
SITE
apply() {
    local rc=0
    puppet apply --detailed-exitcodes --color=false \
        --confdir "$work/conf" --vardir "$work/var" --logdir "$work/log" \
        --rundir "$work/run" --codedir "$work/code" \
        --hiera_config "$work/hiera.yaml" --modulepath "$work/modules:/usr/share/puppet/modules" \
        "$work/site.pp" >"$work/out" 2>&1 || rc=$?
    echo "$rc"
}
cp examples/open.toml "$dir/unmanaged.toml"

write_data 192.168.30.1/24
[ "$(apply)" = 2 ] || fail "first apply did not change (exit 2): $(cat "$work/out")"
[ -f "$dir/iso.yaml" ] && [ -f "$dir/nat-network.toml" ] || fail "files not written: $(ls "$dir")"
[ ! -e "$dir/unmanaged.toml" ] || fail "purge left unmanaged.toml"
"$agent" validate --output json "$dir" >"$work/validate.json" || fail "written files do not validate"
grep -q '"iso"' "$work/validate.json" && grep -q '"nat-network"' "$work/validate.json" ||
    fail "networks: $(cat "$work/validate.json")"
[ "$(apply)" = 0 ] || fail "second apply is not idempotent: $(cat "$work/out")"

before=$(cat "$dir/iso.yaml")
write_data 192.168.30.1/33
rc=$(apply)
[ "$rc" = 4 ] || [ "$rc" = 6 ] || fail "a broken network applied (exit $rc): $(cat "$work/out")"
grep -q "prefix" "$work/out" || fail "the failure does not say why: $(cat "$work/out")"
[ "$(cat "$dir/iso.yaml")" = "$before" ] || fail "the broken network replaced the file"
echo "puppet test: ok"
