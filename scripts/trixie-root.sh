#!/usr/bin/env bash
# Builds (once) a Debian 13 (trixie) root holding Knot 3.4, Kea 2.6 and Unbound, for the
# "trixie" variant of the daemon tests (DNSDHCP_TEST_DAEMONS=trixie, see
# crates/test-support/src/lib.rs).
#
# Usage: scripts/trixie-root.sh        (as root; prints the root's path on its last line)
#
# The root lives at .cache/trixie-root-<generation>, a symlink to
# .cache/trixie-roots-<generation>/<inputs hash>. It is
# reused while its inputs (this script, hence the package list) are unchanged: the hash is kept
# in <root>/.dnsdhcp-stamp. When they change, the new root is built into a temporary directory
# beside the old one, stamped, and switched in with an atomic rename of the symlink; a failed
# or interrupted build leaves the previous root in place.
#
# The mirror is the host's own Debian mirror (from /etc/apt/sources.list.d/*.sources or
# /etc/apt/sources.list); TRIXIE_MIRROR overrides it.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES="knot,knot-dnsutils,kea-dhcp4-server,kea-dhcp-ddns-server,kea-admin,unbound"
SUITE="trixie"
# The generation of the package list, in the root's path: checkouts with another list (e.g. an
# older branch sharing .cache) keep their own root instead of replacing this one mid-test. Bump it
# whenever PACKAGES changes.
GENERATION=3

cache="$PWD/.cache"
link="$cache/trixie-root-$GENERATION"
roots="$cache/trixie-roots-$GENERATION"
stamp_name=".dnsdhcp-stamp"
inputs_hash="$(sha256sum "$0" | cut -c1-16)"

up_to_date() { [[ -f "$link/$stamp_name" && "$(cat "$link/$stamp_name")" == "$inputs_hash" ]]; }
if up_to_date; then
    echo "trixie root up to date ($inputs_hash)" >&2
    echo "$link"
    exit 0
fi
# One build at a time (parallel test runs in the same checkout); the winner's root is reused.
mkdir -p "$cache"
exec 9>"$cache/trixie-root.lock"
flock 9
if up_to_date; then
    echo "trixie root up to date ($inputs_hash), built by a parallel run" >&2
    echo "$link"
    exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
    echo "scripts/trixie-root.sh: building the trixie root needs root (debootstrap)" >&2
    exit 1
fi

mirror() {
    if [[ -n "${TRIXIE_MIRROR:-}" ]]; then
        echo "$TRIXIE_MIRROR"
        return
    fi
    local f uri
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f "$f" ]] || continue
        # The first deb822 stanza's URI that is not the security archive.
        uri="$(awk 'tolower($1) == "uris:" { for (i = 2; i <= NF; i++) print $i }' "$f" |
            grep -v -- '-security' | head -n1 || true)"
        if [[ -n "$uri" ]]; then
            echo "$uri"
            return
        fi
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -f "$f" ]] || continue
        uri="$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; break } }' "$f" |
            grep -v -- '-security' | head -n1 || true)"
        if [[ -n "$uri" ]]; then
            echo "$uri"
            return
        fi
    done
    echo "scripts/trixie-root.sh: no Debian mirror in the host's apt sources; set TRIXIE_MIRROR" >&2
    exit 1
}

start=$(date +%s)
if ! command -v debootstrap >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi
url="$(mirror)"
mkdir -p "$roots"
tmp="$(mktemp -d "$roots/.build-XXXXXX")"
chmod 0755 "$tmp" # mktemp's 0700 would hide the root from unprivileged users
trap 'rm -rf --one-file-system "$tmp" "$link.new"' EXIT
echo "building the $SUITE root ($PACKAGES) from $url into $tmp ..." >&2
if ! debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$tmp" "$url" >"$tmp.log" 2>&1; then
    tail -n 30 "$tmp.log" >&2
    rm -f "$tmp.log"
    echo "scripts/trixie-root.sh: debootstrap failed" >&2
    exit 1
fi
rm -f "$tmp.log"
# The .deb cache and apt lists are not needed to run the daemons.
rm -rf "$tmp/var/cache/apt/archives/"*.deb "$tmp/var/lib/apt/lists/"*
echo "$inputs_hash" >"$tmp/$stamp_name"
final="$roots/$inputs_hash"
rm -rf --one-file-system "$final"
mv "$tmp" "$final"
ln -sfn "$(basename "$roots")/$inputs_hash" "$link.new"
mv -T "$link.new" "$link"
trap - EXIT
# Older roots are no longer referenced.
for old in "$roots"/*; do
    [[ "$old" == "$final" ]] || rm -rf --one-file-system "$old"
done
echo "trixie root built in $(($(date +%s) - start)) s: $(chroot "$link" /usr/sbin/knotd -V | head -n1), kea-dhcp4 $(chroot "$link" /usr/sbin/kea-dhcp4 -v)" >&2
echo "$link"
