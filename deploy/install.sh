#!/usr/bin/env bash
# Installs kvmnet-agent as a systemd service on this host (as root):
# the binary, the unit, iproute2's protocol name, the config directory.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cargo build --release --locked -p kvmnet --bin kvmnet-agent
install -m 0755 target/release/kvmnet-agent /usr/local/bin/kvmnet-agent
install -m 0644 deploy/kvmnet-agent.service /etc/systemd/system/kvmnet-agent.service
install -d -m 0755 /etc/iproute2/rt_protos.d
install -m 0644 deploy/rt_protos.d/kvmnet.conf /etc/iproute2/rt_protos.d/kvmnet.conf
install -d -m 0755 /etc/kvmnet/networks.d
systemctl daemon-reload
echo "installed. Put network files into /etc/kvmnet/networks.d/, check them with"
echo "  kvmnet-agent validate && kvmnet-agent --check"
echo "then: systemctl enable --now kvmnet-agent"
