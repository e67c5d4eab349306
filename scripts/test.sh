#!/usr/bin/env bash
# The project's test command: installs what is missing, then runs every test.
# Usage: scripts/test.sh   (as root: the DHCP tests create network namespaces)
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh

if ! command -v cargo-nextest >/dev/null; then
    cargo install cargo-nextest --locked
fi
cargo nextest run --workspace --all-targets --no-fail-fast
cargo test --workspace --doc
