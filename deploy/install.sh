#!/usr/bin/env bash
# Installs kvmnet-agent from source on this host (as root, with a Rust
# toolchain here): the binary into /usr/local/bin, the unit, iproute2's
# protocol name, the config directory, and the agent's run-time tools
# (nftables, dnsmasq-base, iproute2) when missing. Without a toolchain on the
# host, build and install the Debian package instead (scripts/package.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v nft >/dev/null || missing+=(nftables)
command -v dnsmasq >/dev/null || missing+=(dnsmasq-base)
command -v ip >/dev/null || missing+=(iproute2)
if [ ${#missing[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
cargo build --release --locked -p kvmnet --bin kvmnet-agent
install -m 0755 target/release/kvmnet-agent /usr/local/bin/kvmnet-agent
# The unit names the package's /usr/bin/kvmnet-agent.
sed 's#/usr/bin/kvmnet-agent#/usr/local/bin/kvmnet-agent#' deploy/kvmnet-agent.service \
    >/etc/systemd/system/kvmnet-agent.service
chmod 0644 /etc/systemd/system/kvmnet-agent.service
install -d -m 0755 /etc/iproute2/rt_protos.d
install -m 0644 deploy/rt_protos.d/kvmnet.conf /etc/iproute2/rt_protos.d/kvmnet.conf
install -d -m 0755 /etc/kvmnet/networks.d
systemctl daemon-reload
echo "installed. Put network files into /etc/kvmnet/networks.d/, check them with"
echo "  kvmnet-agent validate && kvmnet-agent --check"
echo "then: systemctl enable --now kvmnet-agent"
