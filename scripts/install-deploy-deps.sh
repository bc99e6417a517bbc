#!/usr/bin/env bash
# Installs the tools the packaging and deploy tests use, if missing (Debian 12,
# as root): cargo-deb (builds the .deb), lintian, systemd-analyze, man (for
# its Documentation= check), git, puppet, puppet-lint and puppetlabs-stdlib
# (Debian packages), and ansible-core, ansible-lint and jsonschema (for the
# schema test) from PyPI, into a virtualenv under target/ so that the system
# Python stays as it is.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v lintian >/dev/null || missing+=(lintian)
command -v systemd-analyze >/dev/null || missing+=(systemd)
command -v git >/dev/null || missing+=(git)
command -v man >/dev/null || missing+=(man-db)
command -v fakeroot >/dev/null || missing+=(fakeroot)
command -v puppet >/dev/null || missing+=(puppet)
command -v puppet-lint >/dev/null || missing+=(puppet-lint)
[ -d /usr/share/puppet/modules/stdlib ] || missing+=(puppet-module-puppetlabs-stdlib)
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "install-deploy-deps: missing ${missing[*]}; run as root (sudo $0)" >&2
        exit 1
    fi
    echo "install-deploy-deps: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

command -v cargo-deb >/dev/null || cargo install --quiet --locked cargo-deb

venv=target/deploy-tools/venv
if [ ! -x "$venv/bin/ansible-lint" ] || ! "$venv/bin/python" -c "import jsonschema" 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check ansible-core ansible-lint jsonschema
fi
