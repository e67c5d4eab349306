#!/usr/bin/env bash
# The project's test command: installs what is missing, then runs every test.
# Usage: scripts/test.sh   (as root: the DHCP tests create network namespaces, the trixie variant
#                           chroots)
#
# 1. variant "host": every Rust test (unit, integration against the host's Debian 12 knotd 3.2 /
#    kea-dhcp4 2.2, doc tests);
# 2. variant "trixie": every test that starts a daemon again, against Debian 13's knotd 3.4 /
#    kea-dhcp4 2.6 from the cached root of scripts/trixie-root.sh (built on first use, ~1 min);
#    pod_e2e runs the chart's pod with them and the chart's defaults, as installed;
# 3. offline Helm chart checks (helm lint/template, Kubernetes schemas, bad values rejected);
# 4. the project image (scripts/image-check.sh): built twice, compared, unpacked, run.
# A failing variant is named at the end; the command fails if any part failed.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh

if ! command -v cargo-nextest >/dev/null; then
    cargo install cargo-nextest --locked
fi

heading() { printf '\n======== %s ========\n\n' "$*"; }
failed=()
t0=$(date +%s)

heading "variant host: Debian 12 daemons (Knot 3.2, Kea 2.2) — every test"
if ! DNSDHCP_TEST_DAEMONS=host cargo nextest run --workspace --no-fail-fast; then
    failed+=("host")
fi
if ! cargo test --workspace --doc; then
    failed+=("doc tests")
fi
t1=$(date +%s)

# The daemon tests: every integration test file that starts knotd / kea-dhcp4 / kea-lfc
# through the fixtures, and pod_e2e, pod_network, pod_dns, pod_agent (the chart's pod with the variant's
# daemons and, on trixie, the chart's defaults); plus the fixtures' own unit tests.
daemon_filter="(package(test-support) & test(/^knot::tests::/))"
for f in crates/*/tests/*.rs; do
    name="$(basename "$f" .rs)"
    if grep -qE 'KnotServer|KeaServer|lfc_command' "$f" || [[ $name =~ ^pod_(e2e|network|dns|agent)$ ]]; then
        crate="$(basename "$(dirname "$(dirname "$f")")")"
        daemon_filter+=" | binary_id(${crate}::${name})"
    fi
done

heading "variant trixie: Debian 13 daemons (Knot 3.4, Kea 2.6) — every daemon test"
if ! scripts/trixie-root.sh >/dev/null; then
    failed+=("trixie (root not built)")
elif ! DNSDHCP_TEST_DAEMONS=trixie cargo nextest run --workspace --no-fail-fast -E "$daemon_filter"; then
    failed+=("trixie")
fi
t2=$(date +%s)

heading "chart checks"
if ! scripts/chart-check.sh; then
    failed+=("chart checks")
fi
t3=$(date +%s)

heading "image"
if ! scripts/image-check.sh; then
    failed+=("image")
fi
t4=$(date +%s)

heading "summary"
echo "variant host:   $((t1 - t0)) s"
echo "variant trixie: $((t2 - t1)) s (root build included when it was built)"
echo "chart checks:   $((t3 - t2)) s"
echo "image:          $((t4 - t3)) s"
if ((${#failed[@]})); then
    echo "FAILED: ${failed[*]}"
    exit 1
fi
echo "all passed"
