#!/usr/bin/env bash
# Builds the project image without a container engine: a static, stripped `dnsdhcp` on an empty
# base, written as an OCI image layout (a directory any OCI tool reads: skopeo, crane, umoci,
# podman, containerd's `ctr import` after tar).
#
# Usage: scripts/build-image.sh [--arch amd64|arm64]... [--out DIR] [--tag TAG]
#        scripts/build-image.sh --merge LAYOUT... [--out DIR] [--tag TAG]
#
#   --arch   architecture to build (repeatable; default: this machine's). Another architecture
#            than this machine's needs its Rust target and a linker for it (CARGO_TARGET_<TRIPLE>_LINKER).
#   --out    the layout directory (default target/image/dnsdhcp; replaced)
#   --tag    the image's tag (default: the workspace version, e.g. 0.1.0)
#   --merge  join per-architecture layouts (built on native machines) into one multi-arch layout
#
# The binary is built with `cargo build --release --locked --target <arch>-unknown-linux-gnu` and
# `-C target-feature=+crt-static` (glibc, statically linked: no loader, no shared libraries),
# stripped, with source paths remapped. SOURCE_DATE_EPOCH (default: the commit time of HEAD) is
# every file's mtime and the image's creation time, so the same commit gives the same digests.
#
# Push it, e.g.:  skopeo copy --all oci:target/image/dnsdhcp:0.1.0 docker://REGISTRY/dnsdhcp:0.1.0
# Ends by printing the image index's digest (what the registry serves for TAG). See scripts/image-check.sh for the test of the result.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

die() { printf 'build-image: %s\n' "$*" >&2; exit 1; }

version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)
[[ -n $version ]] || die "no [workspace.package] version in Cargo.toml"

archs=()
merge=()
out=target/image/dnsdhcp
tag=$version
while (($#)); do
    case $1 in
    --arch) archs+=("${2:?--arch needs a value}"); shift 2 ;;
    --out) out=${2:?--out needs a value}; shift 2 ;;
    --tag) tag=${2:?--tag needs a value}; shift 2 ;;
    --merge)
        shift
        while (($#)) && [[ $1 != --* ]]; do merge+=("$1"); shift; done
        ((${#merge[@]})) || die "--merge needs layout directories"
        ;;
    -h | --help) sed -n '2,/^set -e/p' "$0" | sed -n 's/^# \{0,1\}//p'; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
    esac
done

if ((${#merge[@]})); then
    digest=$(python3 scripts/oci-image.py merge --out "$out" --tag "$tag" "${merge[@]}")
else
    if ((${#archs[@]} == 0)); then
        case $(uname -m) in
        x86_64) archs=(amd64) ;;
        aarch64) archs=(arm64) ;;
        *) die "no default architecture for $(uname -m): give --arch" ;;
        esac
    fi
    epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || true)}
    [[ -n $epoch ]] || die "not a git checkout: set SOURCE_DATE_EPOCH"
    revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
    if [[ $revision != unknown ]] && ! git diff --quiet HEAD -- 2>/dev/null; then
        revision+="-dirty"
    fi
    cargo_home=${CARGO_HOME:-$HOME/.cargo}
    binaries=()
    for arch in "${archs[@]}"; do
        case $arch in
        amd64) triple=x86_64-unknown-linux-gnu ;;
        arm64) triple=aarch64-unknown-linux-gnu ;;
        *) die "unsupported architecture $arch (amd64, arm64)" ;;
        esac
        printf 'build-image: building dnsdhcp for %s (%s)\n' "$arch" "$triple" >&2
        # --target keeps these flags off build scripts and proc macros, and the artifacts in
        # target/<triple>/ apart from the ordinary builds.
        RUSTFLAGS="-C target-feature=+crt-static --remap-path-prefix=$ROOT=/src --remap-path-prefix=$cargo_home=/cargo" \
            CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_STRIP=symbols \
            SOURCE_DATE_EPOCH=$epoch \
            cargo build --release --locked -p dnsdhcp --bin dnsdhcp --target "$triple" >&2
        binaries+=(--binary "$arch=target/$triple/release/dnsdhcp")
    done
    digest=$(python3 scripts/oci-image.py build --out "$out" --tag "$tag" --epoch "$epoch" \
        --version "$version" --revision "$revision" \
        --source "$(sed -n '/^\[workspace.package\]/,/^\[/s/^repository = "\(.*\)"/\1/p' Cargo.toml)" \
        "${binaries[@]}")
fi

printf 'build-image: %s:%s (index %s)\n' "$out" "$tag" "$digest" >&2
echo "$digest"
