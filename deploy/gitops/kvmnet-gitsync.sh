#!/usr/bin/env bash
# Syncs network files from a Git repository into /etc/kvmnet/networks.d the
# way git-sync and Kubernetes ConfigMaps do: each revision is checked out into
# its own hidden directory and published by atomically swapping the `..data`
# symlink, so the agent never sees a half-updated set of files. A revision
# whose files do not validate is not published.
#   KVMNET_GIT_URL=https://git.example/net.git KVMNET_GIT_REF=main kvmnet-gitsync.sh
set -euo pipefail
url=${KVMNET_GIT_URL:?set KVMNET_GIT_URL}
ref=${KVMNET_GIT_REF:-main}
subdir=${KVMNET_GIT_SUBDIR:-.}
dir=${KVMNET_CONFIG_DIR:-/etc/kvmnet/networks.d}
cache=${KVMNET_GIT_CACHE:-/var/lib/kvmnet/git}

[ -d "$cache/.git" ] || git clone --quiet --no-checkout "$url" "$cache"
git -C "$cache" fetch --quiet origin "$ref"
rev=$(git -C "$cache" rev-parse FETCH_HEAD)
[ "$(readlink "$dir/..data" 2>/dev/null)" = "..$rev" ] && exit 0

mkdir -p "$dir"
tmp="$dir/..$rev"
rm -rf "$tmp"
mkdir "$tmp"
git -C "$cache" archive "$rev" "$subdir" | tar -x -C "$tmp" --strip-components="$(awk -F/ '{print NF-1}' <<<"$subdir/")"
if ! kvmnet-agent validate "$tmp"; then
    echo "kvmnet-gitsync: revision $rev does not validate; keeping the current one" >&2
    rm -rf "$tmp"
    exit 1
fi
# Point a visible symlink at every file of the revision (once), then swap.
for f in "$tmp"/*.toml "$tmp"/*.yaml "$tmp"/*.yml; do
    [ -e "$f" ] || continue
    name=$(basename "$f")
    [ -L "$dir/$name" ] || ln -s "..data/$name" "$dir/$name"
done
ln -sfn "..$rev" "$dir/..data.tmp"
mv -T "$dir/..data.tmp" "$dir/..data"
# Links to files the new revision no longer has, and old revisions.
find "$dir" -maxdepth 1 -xtype l -delete
find "$dir" -maxdepth 1 -name '..*' -type d ! -name "..$rev" -exec rm -rf {} +
