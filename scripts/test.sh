#!/usr/bin/env bash
# The project's test command: installs what is missing, then runs every test.
# Usage: scripts/test.sh   (as root: the DHCP tests create network namespaces)
#
# 1. Rust tests (unit, integration against real knotd / kea-dhcp4, doc tests);
# 2. offline Helm chart checks (helm lint/template, Kubernetes schemas, bad values rejected).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh

if ! command -v cargo-nextest >/dev/null; then
    cargo install cargo-nextest --locked
fi
cargo nextest run --workspace --no-fail-fast
cargo test --workspace --doc
scripts/chart-check.sh
