#!/usr/bin/env bash
# kvmnet-gitsync.sh against a local bare repository, in scratch directories:
# the defaults publish the top-level files, every subdirectory form works, and
# an empty, broken or misaddressed revision is refused and leaves the
# published revision as it was.
#   KVMNET_AGENT=target/debug/kvmnet-agent deploy/tests/gitsync.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
export KVMNET_AGENT=${KVMNET_AGENT:-$PWD/target/debug/kvmnet-agent}
sync=$PWD/deploy/gitops/kvmnet-gitsync.sh
examples=$PWD/examples

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "gitsync test: FAIL: $*" >&2; exit 1; }

git init --quiet --bare -b main "$work/remote.git"
git clone --quiet "$work/remote.git" "$work/src" 2>/dev/null
g() { git -C "$work/src" -c user.name=test -c user.email=test@kvmnet.invalid "$@"; }
commit() { g add -A . && g commit --quiet --allow-empty -m "$1" && g push --quiet origin HEAD:main; }
head_rev() { g rev-parse HEAD; }

# Runs the sync into config dir $1 (its own cache) with extra env; prints the exit code.
run_sync() {
    local dir=$1
    shift
    local rc=0
    env KVMNET_GIT_URL="$work/remote.git" KVMNET_CONFIG_DIR="$dir" \
        KVMNET_GIT_CACHE="$dir.cache" "$@" "$sync" 2>"$dir.log" || rc=$?
    echo "$rc"
}
published() { readlink "$1/..data"; }
# The networks the agent sees in a config dir, one per line.
networks() {
    "$KVMNET_AGENT" validate --output json "$1" |
        python3 -c 'import json, sys; print(" ".join(sorted(json.load(sys.stdin)["networks"])))'
}

# 1. Files at the top level, KVMNET_GIT_SUBDIR unset.
cp "$examples/nat-network.toml" "$examples/isolated.yaml" "$work/src/"
commit "two networks at the top"
rev1=$(head_rev)
top="$work/top"
[ "$(run_sync "$top")" = 0 ] || fail "defaults: sync failed: $(cat "$top.log")"
[ "$(published "$top")" = "..$rev1" ] || fail "defaults: revision $rev1 not published"
want=$(networks "$work/src")
[ -n "$want" ] || fail "the example files hold no network"
[ "$(networks "$top")" = "$want" ] || fail "defaults: networks $(networks "$top"), want $want"
[ "$(run_sync "$top")" = 0 ] || fail "an unchanged revision is not a failure"

# 2. Every spelling of a subdirectory.
mkdir "$work/src/networks"
g mv nat-network.toml isolated.yaml networks/
commit "moved into networks/"
for subdir in networks ./networks/ networks/ /networks ./networks; do
    d="$work/sub-$(tr -c 'a-z' _ <<<"$subdir")"
    [ "$(run_sync "$d" KVMNET_GIT_SUBDIR="$subdir")" = 0 ] || fail "subdir $subdir: $(cat "$d.log")"
    [ "$(networks "$d")" = "$want" ] || fail "subdir $subdir: networks $(networks "$d"), want $want"
done
rev2=$(head_rev)
# The top level of this revision has no network file: refused, not published.
[ "$(run_sync "$top")" = 1 ] || fail "a revision without network files was published"
grep -q "has no network" "$top.log" || fail "no reason given for the empty revision: $(cat "$top.log")"
[ "$(published "$top")" = "..$rev1" ] || fail "the empty revision replaced $rev1"
[ "$(networks "$top")" = "$want" ] || fail "networks lost after refusing an empty revision"
# A subdirectory the revision does not have.
[ "$(run_sync "$top" KVMNET_GIT_SUBDIR=nets)" = 1 ] || fail "a missing subdirectory was published"
grep -q "has no directory" "$top.log" || fail "no reason given for the missing subdirectory"
[ "$(published "$top")" = "..$rev1" ] || fail "a missing subdirectory replaced $rev1"

# 3. A broken file holds back the whole revision, its good files included.
sub="$work/sub-networks_"
sed -i 's/192\.168\.10\./192.168.11./g' "$work/src/networks/nat-network.toml"
printf '[networks.broken]\nmode = "nta"\n' >"$work/src/networks/broken.toml"
commit "one changed file, one broken file"
[ "$(run_sync "$sub" KVMNET_GIT_SUBDIR=networks)" = 1 ] || fail "a broken revision was published"
grep -q "held back" "$sub.log" || fail "the refusal does not say the good files are held back"
grep -q "broken.toml" "$sub.log" || fail "the refusal does not name the broken file"
[ "$(published "$sub")" = "..$rev2" ] || fail "the broken revision replaced $rev2"
grep -q "192.168.10.1" "$sub/nat-network.toml" || fail "the good file of the broken revision was published"
[ ! -e "$sub/broken.toml" ] || fail "the broken file was published"

# 4. An empty revision: refused by default, published when explicitly allowed.
g rm --quiet -r networks
commit "no networks"
[ "$(run_sync "$sub" KVMNET_GIT_SUBDIR=networks)" = 1 ] || fail "a missing networks/ was published"
mkdir "$work/src/networks" && echo "keep" >"$work/src/networks/README"
commit "networks/ without network files"
rev5=$(head_rev)
[ "$(run_sync "$sub" KVMNET_GIT_SUBDIR=networks)" = 1 ] || fail "an empty revision was published"
[ "$(published "$sub")" = "..$rev2" ] || fail "the empty revision replaced $rev2"
[ "$(networks "$sub")" = "$want" ] || fail "networks lost after refusing an empty revision"
[ "$(run_sync "$sub" KVMNET_GIT_SUBDIR=networks KVMNET_GIT_ALLOW_EMPTY=yes)" = 0 ] ||
    fail "KVMNET_GIT_ALLOW_EMPTY=yes did not publish: $(cat "$sub.log")"
[ "$(published "$sub")" = "..$rev5" ] || fail "the allowed empty revision is not published"
[ -z "$(networks "$sub")" ] || fail "networks left after publishing an empty revision: $(networks "$sub")"
echo "gitsync test: ok"
