{{/* Names and labels. */}}

{{- define "udd.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: also the StatefulSet name, i.e. dnsdhcp's -s/--statefulset. */}}
{{- define "udd.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "udd.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "udd.selectorLabels" -}}
app.kubernetes.io/name: {{ include "udd.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "udd.labels" -}}
helm.sh/chart: {{ include "udd.chart" . }}
{{ include "udd.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "udd.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "udd.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "udd.operatorServiceAccountName" -}}
{{- default (printf "%s-operator" (include "udd.fullname" .)) .Values.operatorRbac.serviceAccount.name }}
{{- end }}

{{/*
"true" when the DDNS TSIG key lives on the zones volume (generated once by init-zones, kept
there): DDNS on, read through `secret-file`, no existing Secret. Else a Secret holds it.
*/}}
{{- define "udd.tsigInVolume" -}}
{{- if and .Values.ddns.enabled .Values.ddns.tsig.secretFile (not .Values.ddns.tsig.existingSecret) }}true{{ end }}
{{- end }}

{{/* The volume mount of the TSIG key files at /etc/dnsdhcp/tsig. */}}
{{- define "udd.tsigMount" -}}
{{- if include "udd.tsigInVolume" . }}
- name: zones
  mountPath: /etc/dnsdhcp/tsig
  subPath: tsig
  readOnly: true
{{- else }}
- name: tsig
  mountPath: /etc/dnsdhcp/tsig
  readOnly: true
{{- end }}
{{- end }}

{{- define "udd.tsigSecretName" -}}
{{- default (printf "%s-tsig" (include "udd.fullname" .)) .Values.ddns.tsig.existingSecret }}
{{- end }}

{{- define "udd.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
Zones, normalised: lower case, no trailing dot. Returned as JSON
{"all": [...], "forward": [...], "reverse4": [...]}; use with fromJson.
Fails on a duplicate zone.
*/}}
{{- define "udd.zones" -}}
{{- $all := list }}
{{- $fwd := list }}
{{- $rev4 := list }}
{{- range .Values.zones }}
{{- $z := .name | lower | trimSuffix "." }}
{{- if has $z $all }}
{{- fail (printf "zones: %q is listed twice" $z) }}
{{- end }}
{{- $all = append $all $z }}
{{- if hasSuffix ".in-addr.arpa" $z }}
{{- $rev4 = append $rev4 $z }}
{{- else if not (hasSuffix ".ip6.arpa" $z) }}
{{- $fwd = append $fwd $z }}
{{- end }}
{{- end }}
{{- dict "all" $all "forward" $fwd "reverse4" $rev4 | toJson }}
{{- end }}

{{/* An absolute name from a name relative to the first zone: (list . NAME). */}}
{{- define "udd.absName" -}}
{{- $ctx := index . 0 }}
{{- $n := index . 1 }}
{{- if hasSuffix "." $n }}
{{- $n }}
{{- else }}
{{- $first := (index $ctx.Values.zones 0).name | lower | trimSuffix "." }}
{{- printf "%s.%s." $n $first }}
{{- end }}
{{- end }}

{{/* The DDNS forward zone of a subnet: (list . SUBNET). */}}
{{- define "udd.subnetDomain" -}}
{{- $ctx := index . 0 }}
{{- $s := index . 1 }}
{{- $zones := include "udd.zones" $ctx | fromJson }}
{{- if $s.domain }}
{{- $d := $s.domain | lower | trimSuffix "." }}
{{- if not (has $d $zones.forward) }}
{{- fail (printf "dhcp.subnets: domain %q of subnet %s is not one of the forward zones in `zones` (%s)" $d $s.subnet (join ", " $zones.forward)) }}
{{- end }}
{{- $d }}
{{- else if $zones.forward }}
{{- first $zones.forward }}
{{- end }}
{{- end }}

{{/* Fixed paths inside the pod: the contract with the dnsdhcp binary (see the chart README). */}}
{{- define "udd.env.knot" -}}
- name: DNSDHCP_KNOT_SOCKET
  value: /run/knot/knot.sock
- name: DNSDHCP_ZONES_DIR
  value: /var/lib/knot/zones
{{- end }}

{{- define "udd.env.kea" -}}
- name: DNSDHCP_KEA_SOCKET
  value: /run/kea/kea4-ctrl-socket
- name: DNSDHCP_KEA_LEASE_FILE
  value: /var/lib/kea/kea-leases4.csv
{{- end }}

{{/* Kea's path restrictions (2.6.3+): every directory it uses, set explicitly. */}}
{{- define "udd.env.keaDirs" -}}
- name: KEA_PIDFILE_DIR
  value: /run/kea-pid
- name: KEA_LOCKFILE_DIR
  value: none
- name: KEA_CONTROL_SOCKET_DIR
  value: /run/kea
- name: KEA_DHCP_DATA_DIR
  value: /var/lib/kea
- name: KEA_HOOKS_PATH
  value: {{ .Values.dhcp.hooksDir | quote }}
{{- end }}

{{/* Security context of a container that needs no privilege at all. */}}
{{- define "udd.restricted" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- end }}

{{/*
kea-dhcp-ddns.json: (list . SECRET). With SECRET empty the key is read from the Secret volume
(`secret-file`, Kea >= 2.5.8); otherwise it is inlined (for older Kea; then this file is itself
rendered into the Secret).
*/}}
{{- define "udd.d2Config" -}}
{{- $ctx := index . 0 }}
{{- $inline := index . 1 }}
{{- $zones := include "udd.zones" $ctx | fromJson }}
{{- $t := $ctx.Values.ddns.tsig }}
{{- $server := list (dict "ip-address" "127.0.0.1" "port" (int (include "udd.knotPort" $ctx))) }}
{{- $fwd := list }}
{{- range $zones.forward }}
{{- $fwd = append $fwd (dict "name" (printf "%s." .) "key-name" $t.keyName "dns-servers" $server) }}
{{- end }}
{{- $rev := list }}
{{- range $zones.reverse4 }}
{{- $rev = append $rev (dict "name" (printf "%s." .) "key-name" $t.keyName "dns-servers" $server) }}
{{- end }}
{{- $key := dict "name" $t.keyName "algorithm" (upper $t.algorithm) }}
{{- if $inline }}
{{- $_ := set $key "secret" $inline }}
{{- else }}
{{- $_ := set $key "secret-file" "/etc/dnsdhcp/tsig/secret" }}
{{- end }}
{{- $d2 := dict
  "ip-address" "127.0.0.1"
  "port" 53001
  "dns-server-timeout" 1000
  "control-socket" (dict "socket-type" "unix" "socket-name" "/run/kea/kea-ddns-ctrl-socket")
  "tsig-keys" (list $key)
  "forward-ddns" (dict "ddns-domains" $fwd)
  "reverse-ddns" (dict "ddns-domains" $rev)
  "loggers" (list (dict "name" "kea-dhcp-ddns" "output_options" (list (dict "output" "stdout")) "severity" $ctx.Values.ddns.logSeverity))
}}
{{- dict "DhcpDdns" $d2 | toPrettyJson }}
{{- end }}

{{/*
How Kea meets its clients, by `network.mode` (see values.yaml): returned as JSON
{"interfaces": [...], "socketType": "raw|udp", "serverId": "", "dnsAddress": ""}; use with
fromJson. `dnsAddress` is the address clients reach the pod's DNS at ("" when unknown).
*/}}
{{- define "udd.net" -}}
{{- $n := .Values.network }}
{{- $d := .Values.dhcp }}
{{- $ifaces := list "*" }}
{{- $sock := "raw" }}
{{- $serverId := "" }}
{{- $dnsAddr := "" }}
{{- if eq $n.mode "multus" }}
{{- if not $n.multus.address }}
{{- fail "network.mode=multus needs network.multus.address (the pod's LAN address with prefix length, e.g. 192.168.1.2/24)" }}
{{- end }}
{{- $ifaces = list $n.multus.interface }}
{{- $dnsAddr = first (splitList "/" $n.multus.address) }}
{{- else if eq $n.mode "hostNetwork" }}
{{- if not $n.hostNetwork.interfaces }}
{{- fail "network.mode=hostNetwork needs network.hostNetwork.interfaces (the node's interfaces Kea serves, e.g. [eth1])" }}
{{- end }}
{{- $ifaces = $n.hostNetwork.interfaces }}
{{- else }}
{{- $sock = "udp" }}
{{- $serverId = .Values.service.dhcp.loadBalancerIP }}
{{- $dnsAddr = .Values.service.dns.loadBalancerIP }}
{{- end }}
{{- if $d.interfaces }}
{{- $ifaces = $d.interfaces }}
{{- end }}
{{- if $d.socketType }}
{{- $sock = $d.socketType }}
{{- end }}
{{- if $d.serverIdentifier }}
{{- $serverId = $d.serverIdentifier }}
{{- end }}
{{- dict "interfaces" $ifaces "socketType" $sock "serverId" $serverId "dnsAddress" $dnsAddr | toJson }}
{{- end }}

{{/*
Kea option-data from the values' optionData items plus derived options: (list DERIVED ITEMS SKIP)
where DERIVED is a list of Kea option dicts (name, code, data), ITEMS the values' optionData
and SKIP more optionData whose names/codes also replace derived options. Returns JSON {"o": [...]}.
*/}}
{{- define "udd.optionData" -}}
{{- $derived := index . 0 }}
{{- $items := index . 1 }}
{{- $skip := index . 2 }}
{{- $given := list }}
{{- range (concat $items $skip) }}
{{- if .name }}{{ $given = append $given (toString .name) }}{{ end }}
{{- if .code }}{{ $given = append $given (toString (int .code)) }}{{ end }}
{{- end }}
{{- $out := list }}
{{- range $derived }}
{{- if not (or (has .name $given) (has (toString .code) $given)) }}
{{- $out = append $out (dict "name" .name "data" .data) }}
{{- end }}
{{- end }}
{{- range $items }}
{{- $o := dict "data" (toString (default "" .data)) }}
{{- if .name }}{{ $_ := set $o "name" .name }}{{ end }}
{{- if .code }}{{ $_ := set $o "code" (int .code) }}{{ end }}
{{- if .space }}{{ $_ := set $o "space" .space }}{{ end }}
{{- if hasKey . "alwaysSend" }}{{ $_ := set $o "always-send" .alwaysSend }}{{ end }}
{{- if hasKey . "csvFormat" }}{{ $_ := set $o "csv-format" .csvFormat }}{{ end }}
{{- $out = append $out $o }}
{{- end }}
{{- dict "o" $out | toJson }}
{{- end }}

{{/*
Fails when a static record or a DDNS domain lies inside knot.externalUpdates.ownerNames: outside
updaters must not reach the names the chart and Kea manage.
*/}}
{{- define "udd.checkUpdateOwners" -}}
{{- $zones := include "udd.zones" . | fromJson }}
{{- $first := index $zones.all 0 }}
{{- $subtrees := list }}
{{- range .Values.knot.externalUpdates.ownerNames }}
{{- $n := lower . }}
{{- if hasSuffix "." $n }}
{{- $subtrees = append $subtrees (trimSuffix "." $n) }}
{{- else }}
{{- range $zones.all }}
{{- $subtrees = append $subtrees (printf "%s.%s" $n .) }}
{{- end }}
{{- end }}
{{- end }}
{{- range $subtrees }}
{{- if has . $zones.all }}
{{- fail (printf "knot.externalUpdates.ownerNames: %q is a whole zone; give a subtree (e.g. k8s) so that DHCP clients' and static names stay out of outside updaters' reach" .) }}
{{- end }}
{{- end }}
{{- range .Values.staticRecords }}
{{- $owner := "" }}
{{- $zone := $first }}
{{- if kindIs "string" . }}
{{- $owner = first (splitList " " (trim .)) }}
{{- else }}
{{- $owner = toString .name }}
{{- with .zone }}{{ $zone = lower . | trimSuffix "." }}{{ end }}
{{- end }}
{{- $owner = lower $owner }}
{{- $abs := "" }}
{{- if eq $owner "@" }}
{{- $abs = $zone }}
{{- else if hasSuffix "." $owner }}
{{- $abs = trimSuffix "." $owner }}
{{- else }}
{{- $abs = printf "%s.%s" $owner $zone }}
{{- end }}
{{- range $subtrees }}
{{- if or (eq $abs .) (hasSuffix (printf ".%s" .) $abs) }}
{{- fail (printf "knot.externalUpdates.ownerNames: the static record %s lies in %s, which outside updaters may change" $abs .) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* The port Knot listens on: 53, or resolver.authPort behind the resolver. */}}
{{- define "udd.knotPort" -}}
{{- if .Values.resolver.enabled }}{{ .Values.resolver.authPort }}{{ else }}53{{ end }}
{{- end }}

{{/*
YAML of DEFAULTS (a YAML string) with OVERRIDES (a dict from the values) merged over it, keys
deep-merged, lists replaced: (list DEFAULTS OVERRIDES). For security contexts and probes.
*/}}
{{- define "udd.merge" -}}
{{- $base := index . 0 | fromYaml }}
{{- mergeOverwrite $base (deepCopy (index . 1 | default dict)) | toYaml }}
{{- end }}

{{/*
An exec probe running `dnsdhcp pod probe WHAT` (the copy in the dnsdhcp-bin volume), which asks
the daemon itself over its control socket: (list WHAT PERIOD TIMEOUT FAILURE-THRESHOLD).
*/}}
{{- define "udd.probe" -}}
exec:
  command: {{ concat (list "/dnsdhcp/bin/dnsdhcp" "pod" "probe") (splitList " " (index . 0)) | toJson }}
periodSeconds: {{ index . 1 }}
timeoutSeconds: {{ index . 2 }}
failureThreshold: {{ index . 3 }}
{{- end }}

{{- define "udd.podSecurityContext" -}}
fsGroup: 53
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- if ne .Values.network.mode "hostNetwork" }}
sysctls:
  - name: net.ipv4.ip_unprivileged_port_start
    value: "53"
{{- end }}
{{- end }}

{{/* kea-dhcp4's security context: (list . SOCKET-TYPE). */}}
{{- define "udd.keaSecurityContext" -}}
runAsUser: 0
runAsGroup: 0
runAsNonRoot: false
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
  add:
    {{- if eq (index . 1) "raw" }}
    - NET_RAW
    {{- end }}
    - NET_BIND_SERVICE
{{- end }}

{{/* knot-auth's security context: (list . HOST-NETWORK). */}}
{{- define "udd.knotSecurityContext" -}}
{{- if index . 1 }}
runAsUser: 0
runAsGroup: 53
runAsNonRoot: false
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
  add: [NET_BIND_SERVICE]
{{- else }}
runAsUser: 53
runAsGroup: 53
runAsNonRoot: true
{{ include "udd.restricted" (index . 0) }}
{{- end }}
{{- end }}

{{/*
The checksum that restarts the pod: every input of the running configuration (Knot's and Kea's
ConfigMaps, the values file of post-start, the TSIG Secret the chart renders; existing Secrets
(DDNS key, knot.tsigKeys) by name and, when the cluster is reachable, by content).
*/}}
{{- define "udd.configChecksum" -}}
{{- $inputs := list (include (print .Template.BasePath "/configmap-knot.yaml") .) (include (print .Template.BasePath "/configmap-kea.yaml") .) }}
{{- if .Values.ddns.enabled }}
{{- $inputs = append $inputs (include (print .Template.BasePath "/secret-tsig.yaml") .) }}
{{- end }}
{{- range (list (and .Values.ddns.enabled .Values.ddns.tsig.existingSecret) .Values.knot.tsigKeys.existingSecret) }}
{{- with . }}
{{- $inputs = append $inputs . }}
{{- with (lookup "v1" "Secret" $.Release.Namespace .) }}
{{- $inputs = append $inputs (toJson .data) }}
{{- end }}
{{- end }}
{{- end }}
{{- join "\n---\n" $inputs | sha256sum }}
{{- end }}

{{/*
The DNS query of `helm test`: the first static record as {"name", "type", "expect"} (expect: the
data of an A/AAAA record, else empty: any answer), or the first zone's SOA. As JSON.
*/}}
{{- define "udd.testQuery" -}}
{{- $first := (index .Values.zones 0).name | lower | trimSuffix "." }}
{{- $q := dict "name" (printf "%s." $first) "type" "SOA" "expect" "" }}
{{- with .Values.staticRecords }}
{{- $r := first . }}
{{- $owner := "" }}{{- $zone := $first }}{{- $type := "" }}{{- $data := "" }}
{{- if kindIs "string" $r }}
{{- $f := regexSplit "\\s+" (trim $r) -1 }}
{{- $owner = first $f }}
{{- $rest := rest $f }}
{{- range until 2 }}
{{- if and $rest (or (regexMatch "^[0-9]+$" (first $rest)) (eq (upper (first $rest)) "IN")) }}
{{- $rest = rest $rest }}
{{- end }}
{{- end }}
{{- $type = upper (first $rest) }}
{{- $data = join " " (rest $rest) }}
{{- else }}
{{- $owner = $r.name }}
{{- $zone = default $first ($r.zone | default "" | lower | trimSuffix ".") }}
{{- $type = upper $r.type }}
{{- $data = toString $r.data }}
{{- end }}
{{- $name := "" }}
{{- if eq $owner "@" }}{{- $name = printf "%s." $zone }}
{{- else if hasSuffix "." $owner }}{{- $name = $owner }}
{{- else }}{{- $name = printf "%s.%s." $owner $zone }}
{{- end }}
{{- $q = dict "name" $name "type" $type "expect" (ternary $data "" (has $type (list "A" "AAAA"))) }}
{{- end }}
{{- $q | toJson }}
{{- end }}
