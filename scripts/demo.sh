#!/usr/bin/env bash
# The demo: the whole backup/restore story on this machine, no Kubernetes.
#
#   1. starts a real knotd (127.0.0.1) and a real kea-dhcp4 (inside a network namespace) in a
#      temporary directory, and merges static records from a values file into Knot;
#   2. hands out real DHCP leases with perfdhcp from a second namespace (veth pair);
#   3. takes `dnsdhcp backup all --local`, verifies the archives;
#   4. destroys zones and leases;
#   5. restores with `dnsdhcp restore --local` and shows DNS answers and lease counts before/after.
#
# Needs root (network namespaces). Cleans up after itself, also on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

[[ $EUID -eq 0 ]] || { echo "demo: needs root to create network namespaces" >&2; exit 1; }
scripts/install-deps.sh
cargo build --release -q -p dnsdhcp
dnsdhcp=$repo/target/release/dnsdhcp

work=$(mktemp -d /tmp/dnsdhcp-demo.XXXXXX)
ns_srv=dnsdhcp-demo-srv-$$
ns_cli=dnsdhcp-demo-cli-$$
knot_pid= kea_pid=
cleanup() {
    [[ -n $kea_pid ]] && kill "$kea_pid" 2>/dev/null && wait "$kea_pid" 2>/dev/null || true
    [[ -n $knot_pid ]] && kill "$knot_pid" 2>/dev/null && wait "$knot_pid" 2>/dev/null || true
    ip netns del "$ns_srv" 2>/dev/null || true
    ip netns del "$ns_cli" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
port=$((20000 + RANDOM % 20000))

step "Starting knotd on 127.0.0.1:$port and kea-dhcp4 in namespace $ns_srv ($work)"
mkdir -p "$work"/{knot/run,knot/storage,knot/zones,kea/leases,kea/run,backups}
cat >"$work/knot/knot.conf" <<CONF
server:
  rundir: "$work/knot/run"
  listen: 127.0.0.1@$port
control:
  listen: "$work/knot/run/knot.sock"
  timeout: 30
log:
  - target: "$work/knot/knotd.log"
    any: info
database:
  storage: "$work/knot/storage"
template:
  - id: default
    storage: "$work/knot/zones"
    file: "%s.zone"
    semantic-checks: on
    journal-content: all
    zonefile-load: difference-no-serial
zone:
  - domain: home.arpa.
  - domain: 77.10.in-addr.arpa.
CONF
for z in home.arpa 77.10.in-addr.arpa; do
    cat >"$work/knot/zones/$z.zone" <<ZONE
\$ORIGIN $z.
\$TTL 3600
@ SOA ns1.home.arpa. hostmaster.home.arpa. 1 3600 900 604800 300
@ NS ns1.home.arpa.
ZONE
done
echo 'ns1 A 10.77.0.1' >>"$work/knot/zones/home.arpa.zone"
knotd -c "$work/knot/knot.conf" & knot_pid=$!

ip netns add "$ns_srv"
ip netns add "$ns_cli"
ip link add dd-srv netns "$ns_srv" type veth peer name dd-cli netns "$ns_cli"
ip -n "$ns_srv" addr add 10.77.0.1/16 dev dd-srv
ip -n "$ns_cli" addr add 10.77.0.2/16 dev dd-cli
for ns in "$ns_srv" "$ns_cli"; do ip -n "$ns" link set lo up; done
ip -n "$ns_srv" link set dd-srv up
ip -n "$ns_cli" link set dd-cli up

lease_file=$work/kea/leases/kea-leases4.csv
kea_socket=$work/kea/run/kea4-ctrl-socket
cat >"$work/kea/kea-dhcp4.json" <<CONF
{ "Dhcp4": {
    "interfaces-config": { "interfaces": ["dd-srv"], "dhcp-socket-type": "raw" },
    "control-socket": { "socket-type": "unix", "socket-name": "$kea_socket" },
    "lease-database": { "type": "memfile", "name": "$lease_file", "lfc-interval": 3600 },
    "hooks-libraries": [ { "library": "/usr/lib/x86_64-linux-gnu/kea/hooks/libdhcp_lease_cmds.so" } ],
    "valid-lifetime": 3600,
    "subnet4": [ { "id": 1, "subnet": "10.77.0.0/16", "pools": [ { "pool": "10.77.1.0 - 10.77.3.255" } ] } ],
    "loggers": [ { "name": "kea-dhcp4", "output_options": [ { "output": "$work/kea/kea.log" } ], "severity": "INFO" } ]
} }
CONF
KEA_PIDFILE_DIR=$work/kea/run KEA_LOCKFILE_DIR=$work/kea/run \
    ip netns exec "$ns_srv" kea-dhcp4 -c "$work/kea/kea-dhcp4.json" & kea_pid=$!

for _ in $(seq 100); do
    [[ -S $work/knot/run/knot.sock && -S $kea_socket ]] && break
    sleep 0.1
done

export DNSDHCP_KNOT_SOCKET=$work/knot/run/knot.sock DNSDHCP_KEA_SOCKET=$kea_socket DNSDHCP_KEA_LEASE_FILE=$lease_file

step "Static records from a values file"
cat >"$work/values.yaml" <<VALUES
zones:
  - name: home.arpa
  - name: 77.10.in-addr.arpa
staticRecords:
  - "router IN A 10.77.0.1"
  - "nas 300 IN A 10.77.0.10"
  - name: printer
    type: A
    data: 10.77.0.20
  - '@ IN TXT "demo zone, managed by dnsdhcp"'
VALUES
cat "$work/values.yaml"
"$dnsdhcp" records apply --local -f "$work/values.yaml"
echo "-- apply again: nothing to change"
"$dnsdhcp" records apply --local -f "$work/values.yaml"

step "Real DHCP leases: perfdhcp in namespace $ns_cli, 200 clients"
ip netns exec "$ns_cli" perfdhcp -4 -l dd-cli -r 100 -R 200 -n 200 -p 10 10.77.0.1 >/dev/null 2>&1 || true

show_state() {
    for name in router.home.arpa nas.home.arpa printer.home.arpa 10.0.77.10.in-addr.arpa; do
        type=A; [[ $name == *in-addr.arpa ]] && type=PTR
        printf '  %-28s %-4s %s\n' "$name" "$type" "$(kdig +short @127.0.0.1 -p "$port" "$name" "$type" | tr '\n' ' ')"
    done
    echo "  SOA serials: $(kdig +short @127.0.0.1 -p "$port" home.arpa SOA | awk '{print $3}') (home.arpa)"
    echo "  leases held by Kea: $("$dnsdhcp" leases count --local 2>/dev/null || echo '?')"
}
step "State before the backup"
show_state

step "dnsdhcp backup all --local -b $work/backups"
"$dnsdhcp" backup all --local -b "$work/backups"
ls -l "$work/backups"
"$dnsdhcp" verify "$work"/backups/*.tar.gz

step "Destroying zones and leases"
knotc -s "$work/knot/run/knot.sock" zone-begin home.arpa >/dev/null
knotc -s "$work/knot/run/knot.sock" zone-unset home.arpa router >/dev/null
knotc -s "$work/knot/run/knot.sock" zone-unset home.arpa nas >/dev/null
knotc -s "$work/knot/run/knot.sock" zone-commit home.arpa >/dev/null
"$dnsdhcp" leases wipe --local --yes >/dev/null
show_state

step "dnsdhcp restore --local --zones ... --leases ..."
"$dnsdhcp" restore --local --zones "$work/backups/zones.tar.gz" --leases "$work/backups/kea-leases.tar.gz"

step "State after the restore"
show_state
