#!/usr/bin/env bash
# Test of the project image (scripts/build-image.sh): builds it twice and compares the digests
# (reproducible from the same commit), checks --merge, then unpacks it with umoci (an independent OCI
# implementation, which checks every digest) and runs the binary from the unpacked root file
# system alone: nothing of the host is visible in it, so a dynamically linked binary would fail.
# Needs root (chroot, mount namespace). Ends with "image-check: N passed, M failed".
#
# Usage: scripts/image-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."

[[ $(id -u) -eq 0 ]] || { echo "image-check: needs root (chroot)" >&2; exit 2; }
command -v umoci >/dev/null || { echo "image-check: umoci not installed: scripts/install-deps.sh" >&2; exit 2; }

WORK=$(mktemp -d)
trap 'umount "$WORK/bundle/rootfs/proc" 2>/dev/null || true; rm -rf "$WORK"' EXIT
PASSED=0
FAILED=0
check() { # check NAME CMD...
    local name=$1
    shift
    if "$@" >"$WORK/log" 2>&1; then
        PASSED=$((PASSED + 1))
        printf 'ok    %s\n' "$name"
    else
        FAILED=$((FAILED + 1))
        printf 'FAIL  %s\n' "$name"
        sed 's/^/      | /' "$WORK/log" | head -n 40
    fi
}

version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)
first=$(scripts/build-image.sh --out "$WORK/a" --tag test)
second=$(scripts/build-image.sh --out "$WORK/b" --tag test)

same_digest() {
    [[ $first == "$second" ]] || { echo "first build $first, second build $second"; return 1; }
    diff -r "$WORK/a" "$WORK/b"
}
check "two builds of the same commit give the same image ($first)" same_digest

# The release joins per-architecture layouts with --merge: joining this one layout must give
# the same image index, blob for blob.
merge_is_identity() {
    local merged
    merged=$(scripts/build-image.sh --merge "$WORK/a" --out "$WORK/m" --tag test) || return 1
    [[ $merged == "$first" ]] || { echo "merged index $merged != $first"; return 1; }
    diff -r "$WORK/a/blobs" "$WORK/m/blobs"
}
check "--merge of the layout gives the same image index" merge_is_identity

unpack() { umoci unpack --image "$WORK/a:test" "$WORK/bundle"; }
check "umoci unpacks the image (digests verified)" unpack
R=$WORK/bundle/rootfs

only_the_binary() {
    local files
    files=$(cd "$R" && find . -mindepth 1 | sort | tr '\n' ' ')
    [[ $files == "./tmp ./usr ./usr/local ./usr/local/bin ./usr/local/bin/dnsdhcp " ]] || {
        echo "unexpected content: $files"
        return 1
    }
    [[ $(stat -c %a "$R/tmp") == 1777 ]]
}
check "the root file system holds only /usr/local/bin/dnsdhcp and /tmp" only_the_binary

config() { # the image configuration of this machine's platform, as umoci saw it
    python3 - "$WORK/bundle/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
assert c["process"]["args"][0] == "/usr/local/bin/dnsdhcp", c["process"]["args"]
assert (c["process"]["user"]["uid"], c["process"]["user"]["gid"]) == (65532, 65532), c["process"]["user"]
PY
}
check "entrypoint /usr/local/bin/dnsdhcp, user 65532" config

runs_alone() {
    local out
    out=$(chroot --userspec=65532:65532 "$R" /usr/local/bin/dnsdhcp --version)
    [[ $out == "dnsdhcp $version" ]] || { echo "--version printed: $out"; return 1; }
}
check "the binary runs from the empty root (dnsdhcp --version = $version)" runs_alone

# The init container's role: copy itself (via /proc/self/exe) into the shared volume.
copies_itself() {
    mkdir -p "$R/proc" "$R/tmp/bin"
    unshare -m --propagation private sh -c \
        "mount -t proc proc '$R/proc' && chroot '$R' /usr/local/bin/dnsdhcp pod copy-binary /tmp/bin/dnsdhcp"
    cmp "$R/usr/local/bin/dnsdhcp" "$R/tmp/bin/dnsdhcp"
    [[ $(stat -c %a "$R/tmp/bin/dnsdhcp") == 755 ]]
}
check "pod copy-binary works in the empty root" copies_itself

echo "image-check: $PASSED passed, $FAILED failed"
((FAILED == 0))
