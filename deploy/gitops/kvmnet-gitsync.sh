#!/usr/bin/env bash
# Syncs network files from a Git repository into /etc/kvmnet/networks.d the
# way git-sync and Kubernetes ConfigMaps do: each revision is checked out into
# its own hidden directory and published by atomically swapping the `..data`
# symlink, so the agent never sees a half-updated set of files.
#
# A revision is published only when it validates as a whole: one broken file
# holds back the good files of the same revision too (the agent keeps running
# the last published revision). A revision without any network is refused
# (the agent would delete every network) unless KVMNET_GIT_ALLOW_EMPTY=yes.
# Exit 0 when the revision is published or already was, 1 when it is refused.
#
#   KVMNET_GIT_URL       repository to clone (required)
#   KVMNET_GIT_REF       branch or tag (default main)
#   KVMNET_GIT_SUBDIR    directory of the network files in the repository
#                        (default: the top level; `networks`, `./networks/`)
#   KVMNET_GIT_ALLOW_EMPTY=yes  publish a revision that has no network
#   KVMNET_CONFIG_DIR    (default /etc/kvmnet/networks.d)
#   KVMNET_GIT_CACHE     local clone (default /var/lib/kvmnet/git)
#   KVMNET_AGENT         the agent binary (default kvmnet-agent from PATH)
set -euo pipefail
url=${KVMNET_GIT_URL:?set KVMNET_GIT_URL}
ref=${KVMNET_GIT_REF:-main}
subdir=${KVMNET_GIT_SUBDIR:-.}
allow_empty=${KVMNET_GIT_ALLOW_EMPTY:-no}
dir=${KVMNET_CONFIG_DIR:-/etc/kvmnet/networks.d}
cache=${KVMNET_GIT_CACHE:-/var/lib/kvmnet/git}
agent=${KVMNET_AGENT:-kvmnet-agent}

say() { echo "kvmnet-gitsync: $*" >&2; }

# The subdirectory as a tree path of the revision: `.`, `./`, `networks`,
# `./networks/` and `/networks` name the top level or `networks`.
tree=$subdir
while [[ $tree == ./* ]]; do tree=${tree#./}; done
tree=${tree#/}
while [[ $tree == */ ]]; do tree=${tree%/}; done
[ "$tree" = . ] && tree=

[ -d "$cache/.git" ] || git clone --quiet --no-checkout "$url" "$cache"
git -C "$cache" fetch --quiet origin "$ref"
rev=$(git -C "$cache" rev-parse FETCH_HEAD)
[ "$(readlink "$dir/..data" 2>/dev/null)" = "..$rev" ] && exit 0
current=$(readlink "$dir/..data" 2>/dev/null || echo "none")

mkdir -p "$dir"
tmp="$dir/..$rev"
rm -rf "$tmp"
mkdir "$tmp"
refuse() {
    say "revision $rev $*; keeping ${current#..} (nothing published)"
    rm -rf "$tmp"
    exit 1
}
# `rev:path` archives the tree itself: its files sit at the top of the
# archive whatever the subdirectory, so nothing needs stripping.
if ! git -C "$cache" cat-file -e "$rev:$tree" 2>/dev/null; then
    refuse "has no directory ${subdir@Q} (KVMNET_GIT_SUBDIR)"
fi
git -C "$cache" archive "$rev:$tree" | tar -x -C "$tmp"
if ! report=$("$agent" validate --output json "$tmp"); then
    printf '%s\n' "$report" >&2
    refuse "does not validate; the whole revision is held back, its valid files too"
fi
if grep -q '"networks": \[\]' <<<"$report" && [ "$allow_empty" != yes ]; then
    refuse "has no network in ${subdir@Q}: publishing it would delete every network (KVMNET_GIT_ALLOW_EMPTY=yes allows it)"
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
say "published revision $rev"
