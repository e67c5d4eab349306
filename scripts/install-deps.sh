#!/usr/bin/env bash
# Installs what the tests and the demo need on a fresh Debian 12 machine, and nothing that is
# already there. Safe to run again. Needs root (apt-get).
set -euo pipefail

# Debian packages: the real daemons the tests run, and the tools the tests use around them
# (isc-dhcp-relay and isc-dhcp-client: a relay agent and a DHCP client in network namespaces;
# unbound: the chart's optional resolver; nftables: the load balancer's DNAT in the relay test;
# containernetworking-plugins: the macvlan/ipvlan plugins the multus attachment is checked with;
# umoci: an independent OCI implementation that unpacks the project image in scripts/image-check.sh;
# curl: reads the backup agent's /metrics inside the chart's pod).
packages=(knot knot-dnsutils kea-dhcp4-server kea-dhcp-ddns-server kea-admin iproute2
    isc-dhcp-relay isc-dhcp-client unbound nftables containernetworking-plugins umoci curl)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "install-deps: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    # No service may start while installing (unbound would take port 53, dhcrelay the DHCP
    # ports): a policy-rc.d that denies every start, unless the machine already has one.
    policy=/usr/sbin/policy-rc.d
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        trap 'rm -f "$policy"' EXIT
    fi
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The Debian packages may start their services; the project runs its own instances only.
for svc in knot kea-dhcp4-server kea-dhcp-ddns-server kea-ctrl-agent unbound isc-dhcp-relay; do
    if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
        systemctl stop "$svc" || true
    fi
done

# S3 servers for the object-store tests: moto (PyPI, server mode) and s3s-fs (crates.io,
# built once into .cache/s3s-fs; the tests look there first). s3s-fs 0.14.1: later releases
# need a newer Rust than the workspace's 1.95.
ROOT=$(cd "$(dirname "$0")/.." && pwd)
if ! command -v moto_server >/dev/null; then
    echo "install-deps: installing moto[server] (pip)" >&2
    python3 -m pip install --quiet 'moto[server]'
fi
# The plain multipart client the backup_to_s3 benchmark compares with.
if ! command -v aws >/dev/null; then
    echo "install-deps: installing awscli (pip)" >&2
    python3 -m pip install --quiet awscli
fi
if [[ ! -x "$ROOT/.cache/s3s-fs/bin/s3s-fs" ]] && ! command -v s3s-fs >/dev/null; then
    echo "install-deps: building s3s-fs into .cache/s3s-fs (cargo install; a few minutes)" >&2
    cargo install --quiet --locked s3s-fs --version 0.14.1 --features binary --root "$ROOT/.cache/s3s-fs"
fi
# Emulators for the az:// and gs:// round trips: Azurite's blob service (npm) and
# gcp-storage-emulator (PyPI).
if ! command -v azurite-blob >/dev/null; then
    echo "install-deps: installing azurite (npm)" >&2
    npm install --global --silent --no-audit --no-fund azurite@3.37.0
fi
if ! command -v gcp-storage-emulator >/dev/null; then
    echo "install-deps: installing gcp-storage-emulator (pip)" >&2
    python3 -m pip install --quiet gcp-storage-emulator
fi
