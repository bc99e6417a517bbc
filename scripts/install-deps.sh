#!/usr/bin/env bash
# Installs the system tools kvmnet needs at run time (nft, dnsmasq,
# dhcp_release) and the
# ones its end-to-end tests use (ip, busybox), if missing. Debian/Ubuntu, as root.
set -euo pipefail

missing=()
command -v nft >/dev/null || missing+=(nftables)
command -v dnsmasq >/dev/null || missing+=(dnsmasq-base)
command -v dhcp_release >/dev/null || missing+=(dnsmasq-utils)
command -v ip >/dev/null || missing+=(iproute2)
command -v busybox >/dev/null || missing+=(busybox)
command -v ss >/dev/null || missing+=(iproute2)

if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "install-deps: missing ${missing[*]}; run as root (sudo $0)" >&2
        exit 1
    fi
    echo "install-deps: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
