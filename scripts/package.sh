#!/usr/bin/env bash
# Builds the Debian package kvmnet-agent and prints the path of the .deb:
# the release binary, the man pages and shell completions generated from its
# command line definition (kvmnet-dist), then cargo-deb (installed if missing).
#   deb=$(scripts/package.sh) && sudo apt install "./$deb"
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo-deb >/dev/null || cargo install --quiet --locked cargo-deb
cargo build --quiet --release --locked -p kvmnet --bin kvmnet-agent
rm -rf target/dist
cargo run --quiet --locked -p kvmnet-dist -- target/dist >/dev/null
# Debian wants man pages compressed, reproducibly (no name, no timestamp).
gzip -9n target/dist/man/*.8
cargo deb --quiet --no-build --locked -p kvmnet --output target/debian/ | tail -n 1
