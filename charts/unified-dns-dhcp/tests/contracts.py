#!/usr/bin/env python3
"""Checks a `helm template` rendering of the chart against its contracts with the dnsdhcp binary
and with the daemons' configuration, beyond what Kubernetes' schemas can see.

Usage: contracts.py RENDERED.yaml [-f VALUES.yaml]...
(the same -f files the rendering used; merged over the chart's values.yaml as Helm does).
Exits non-zero listing every violation. Needs PyYAML (installed with kubernetes-validate).
"""
import base64
import json
import os
import posixpath
import sys

import yaml

CHART = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The env vars each container must carry: the contract with `dnsdhcp pod ...` (chart README).
ENV_CONTRACT = {
    "init-zones": ["DNSDHCP_ZONES_DIR", "DNSDHCP_INITIAL_ZONES_DIR"],
    "init-kea-leases": ["DNSDHCP_KEA_SOCKET", "DNSDHCP_KEA_LEASE_FILE"],
    "knot-auth": ["DNSDHCP_KNOT_SOCKET", "DNSDHCP_ZONES_DIR", "DNSDHCP_VALUES_FILE",
                  "DNSDHCP_POST_START_TIMEOUT_SECS"],
    "kea-dhcp4": ["DNSDHCP_KEA_SOCKET", "DNSDHCP_KEA_LEASE_FILE", "KEA_CONTROL_SOCKET_DIR",
                  "KEA_DHCP_DATA_DIR", "KEA_PIDFILE_DIR"],
}
SHELLS = {"sh", "bash", "ash", "dash", "/bin/sh", "/bin/bash", "/bin/ash", "/usr/bin/env"}

errors = []


def err(msg):
    errors.append(msg)


def merge(base, over):
    """Helm's merge: maps deep-merged, everything else (lists too) replaced."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = merge(base.get(k), v) if k in base else v
        return out
    return over


def norm_zone(name):
    return name.lower().rstrip(".")


def env_of(c):
    return {e["name"]: e.get("value") for e in c.get("env", [])}


def mounted(c, path):
    """The volume name and mountPath whose mount holds `path` in container c."""
    best = None
    for m in c.get("volumeMounts", []):
        mp = m["mountPath"].rstrip("/")
        if path == mp or path.startswith(mp + "/"):
            if best is None or len(mp) > len(best["mountPath"]):
                best = m
    return best


def main():
    args = sys.argv[1:]
    rendered = args.pop(0)
    values = yaml.safe_load(open(os.path.join(CHART, "values.yaml")))
    while args:
        flag = args.pop(0)
        if flag != "-f":
            sys.exit(f"unexpected argument {flag}")
        values = merge(values, yaml.safe_load(open(args.pop(0))) or {})

    docs = [d for d in yaml.safe_load_all(open(rendered)) if d]
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    cms = {d["metadata"]["name"]: d for d in by_kind.get("ConfigMap", [])}
    secrets = {d["metadata"]["name"]: d for d in by_kind.get("Secret", [])}

    stss = by_kind.get("StatefulSet", [])
    if len(stss) != 1:
        err(f"expected one StatefulSet, got {len(stss)}")
        return
    sts = stss[0]
    pod = sts["spec"]["template"]["spec"]
    inits = {c["name"]: c for c in pod["initContainers"]}
    ctrs = {c["name"]: c for c in pod["containers"]}
    allc = {**inits, **ctrs}
    volumes = {v["name"]: v for v in pod["volumes"]}
    claims = {t["metadata"]["name"] for t in sts["spec"].get("volumeClaimTemplates", [])}
    ddns = values["ddns"]["enabled"]

    def tsig_source(m):
        """Where a mount of the TSIG files comes from: "secret", "volume" (zones, subPath tsig) or None."""
        if not m:
            return None
        if "secret" in volumes.get(m["name"], {}):
            return "secret"
        if m["name"] == "zones" and m.get("subPath") == "tsig":
            return "volume"
        return None

    # Containers, order, commands.
    if [c["name"] for c in pod["initContainers"]] != ["copy-dnsdhcp", "init-zones", "init-kea-leases"]:
        err(f"init containers: {[c['name'] for c in pod['initContainers']]}")
    resolver = values["resolver"]["enabled"]
    # knot-auth last: its postStart hook holds back every container after it (DNS and DHCP
    # must not wait on each other).
    backup = values.get("backup", {}).get("enabled", False)
    # The backup container is always there: the Kubernetes target's in-pod work runs in it.
    want = (["kea-dhcp-ddns"] if ddns else []) + ["kea-dhcp4"] + (["resolver"] if resolver else []) + ["backup", "knot-auth"]
    if [c["name"] for c in pod["containers"]] != want:
        err(f"containers: {[c['name'] for c in pod['containers']]}, want {want}")
    expect_cmd = {
        "copy-dnsdhcp": ["/usr/local/bin/dnsdhcp", "pod", "copy-binary", "/dnsdhcp/bin/dnsdhcp"],
        "init-zones": ["/usr/local/bin/dnsdhcp", "pod", "init-zones"],
        "init-kea-leases": ["/usr/local/bin/dnsdhcp", "pod", "init-leases"],
        "knot-auth": ["knotd", "-c", "/config/knot.conf"],
        "kea-dhcp4": ["kea-dhcp4", "-c", "/etc/kea/kea-dhcp4.json"],
        "kea-dhcp-ddns": ["kea-dhcp-ddns", "-c", "/etc/kea/kea-dhcp-ddns.json"],
        "backup": ["/usr/local/bin/dnsdhcp", "agent", "--local"] + (
            ["--to", values["backup"]["to"]]
            + [a for r in values["backup"].get("recipients", []) for a in ("--recipient", r)]
            + (["--require-encryption"] if values["backup"].get("requireEncryption") else [])
            if backup else []),
    }
    for name, cmd in expect_cmd.items():
        if name in allc:
            got = allc[name].get("command", []) + allc[name].get("args", [])
            if got != cmd:
                err(f"{name}: command {got}, want {cmd}")
    hook = ctrs.get("knot-auth", {}).get("lifecycle", {}).get("postStart", {}).get("exec", {}).get("command")
    if hook != ["/dnsdhcp/bin/dnsdhcp", "pod", "post-start"]:
        err(f"knot-auth postStart: {hook}")
    for c in allc.values():
        for cmd in (c.get("command", [])[:1], c.get("lifecycle", {}).get("postStart", {}).get("exec", {}).get("command", [])[:1]):
            if cmd and cmd[0] in SHELLS:
                err(f"{c['name']}: runs a shell ({cmd[0]})")
        if not c["image"].rsplit("/", 1)[-1].count(":") or c["image"].endswith(":latest"):
            err(f"{c['name']}: image not pinned: {c['image']}")
    if "knot-auth" in ctrs and not ctrs["knot-auth"]["image"].split(":")[-1].startswith("3."):
        err("knot-auth: not a Knot 3.x image")

    # The dnsdhcp binary reaches the daemons' containers.
    for name in ("knot-auth", "kea-dhcp4") + (("kea-dhcp-ddns",) if ddns else ()):
        m = mounted(allc.get(name, {}), "/dnsdhcp/bin/dnsdhcp")
        if not m or m["name"] != "dnsdhcp-bin":
            err(f"{name}: /dnsdhcp/bin not mounted from the dnsdhcp-bin emptyDir")
    if "emptyDir" not in volumes.get("dnsdhcp-bin", {}):
        err("dnsdhcp-bin is not an emptyDir")

    # Env contract, and every path env var lies on a mounted volume of its container.
    for name, keys in ENV_CONTRACT.items():
        env = env_of(allc.get(name, {}))
        for k in keys:
            if k not in env:
                err(f"{name}: env {k} missing")
    for c in allc.values():
        for k, v in env_of(c).items():
            if k.startswith("DNSDHCP_") and v and v.startswith("/") and not mounted(c, v):
                err(f"{c['name']}: {k}={v} is on no volume")
    knot_env = env_of(ctrs.get("knot-auth", {}))
    kea_env = env_of(ctrs.get("kea-dhcp4", {}))
    if env_of(inits.get("init-zones", {})).get("DNSDHCP_ZONES_DIR") != knot_env.get("DNSDHCP_ZONES_DIR"):
        err("init-zones and knot-auth disagree on DNSDHCP_ZONES_DIR")
    init_kea = env_of(inits.get("init-kea-leases", {}))
    for k in ("DNSDHCP_KEA_SOCKET", "DNSDHCP_KEA_LEASE_FILE"):
        if init_kea.get(k) != kea_env.get(k):
            err(f"init-kea-leases and kea-dhcp4 disagree on {k}")
    if not str(knot_env.get("DNSDHCP_POST_START_TIMEOUT_SECS", "")).isdigit():
        err("DNSDHCP_POST_START_TIMEOUT_SECS is not a number of seconds")
    # Same volume behind the same path in the init containers and the daemons.
    for init, daemon, var in (("init-zones", "knot-auth", "DNSDHCP_ZONES_DIR"),
                              ("init-kea-leases", "kea-dhcp4", "DNSDHCP_KEA_LEASE_FILE"),
                              ("init-kea-leases", "kea-dhcp4", "DNSDHCP_KEA_SOCKET")):
        a = mounted(inits.get(init, {}), env_of(inits.get(init, {})).get(var, ""))
        b = mounted(ctrs.get(daemon, {}), env_of(ctrs.get(daemon, {})).get(var, ""))
        if not a or not b or a["name"] != b["name"] or a["mountPath"] != b["mountPath"]:
            err(f"{var}: {init} and {daemon} do not see the same volume at the same path")
    for var, claim in (("DNSDHCP_ZONES_DIR", "zones"), ("DNSDHCP_KEA_LEASE_FILE", "leases")):
        env = knot_env if var == "DNSDHCP_ZONES_DIR" else kea_env
        m = mounted(ctrs.get("knot-auth" if env is knot_env else "kea-dhcp4", {}), env.get(var, ""))
        if not m or m["name"] != claim or claim not in claims:
            err(f"{var} is not on the {claim} volumeClaimTemplate")

    # The values file post-start reads: zones and staticRecords exactly as in the values.
    m = mounted(ctrs.get("knot-auth", {}), knot_env.get("DNSDHCP_VALUES_FILE", ""))
    if m:
        cm = cms.get(volumes[m["name"]].get("configMap", {}).get("name"), {})
        key = posixpath.relpath(knot_env["DNSDHCP_VALUES_FILE"], m["mountPath"])
        got = yaml.safe_load(cm.get("data", {}).get(key, "null"))
        want_vals = {"zones": values["zones"], "staticRecords": values["staticRecords"]}
        if got != want_vals:
            err(f"values file {key}: {got!r} != {want_vals!r}")

    zones = [norm_zone(z["name"]) for z in values["zones"]]
    fwd = [z for z in zones if not z.endswith((".in-addr.arpa", ".ip6.arpa"))]
    rev4 = [z for z in zones if z.endswith(".in-addr.arpa")]

    # Initial zone files: one per zone, SOA and NS.
    m = mounted(inits.get("init-zones", {}), env_of(inits.get("init-zones", {})).get("DNSDHCP_INITIAL_ZONES_DIR", "/x"))
    cm = cms.get(volumes.get(m["name"] if m else "", {}).get("configMap", {}).get("name"), {}) if m else {}
    files = cm.get("data", {})
    if sorted(files) != sorted(f"{z}.zone" for z in zones):
        err(f"initial zone files {sorted(files)} for zones {zones}")
    for f, text in files.items():
        if " SOA " not in text or " NS " not in text or f"$ORIGIN {f[:-5]}." not in text:
            err(f"initial zone file {f} lacks $ORIGIN/SOA/NS")

    # knot.conf agrees with the env vars.
    m = mounted(ctrs.get("knot-auth", {}), "/config/knot.conf")
    knot_cm = cms.get(volumes.get(m["name"], {}).get("configMap", {}).get("name"), {}) if m else {}
    kconf = yaml.safe_load(knot_cm.get("data", {}).get("knot.conf", "{}")) or {}
    if kconf.get("control", {}).get("listen") != knot_env.get("DNSDHCP_KNOT_SOCKET"):
        err("knot.conf control.listen != DNSDHCP_KNOT_SOCKET")
    if not mounted(ctrs.get("knot-auth", {}), kconf.get("server", {}).get("rundir", "")):
        err("Knot's rundir is on no volume")
    tmpl = (kconf.get("template") or [{}])[0]
    if tmpl.get("storage") != knot_env.get("DNSDHCP_ZONES_DIR") or tmpl.get("file") != "%s.zone":
        err("knot.conf template storage/file do not match DNSDHCP_ZONES_DIR/<zone>.zone")
    if [norm_zone(z["domain"]) for z in kconf.get("zone", [])] != zones:
        err(f"knot.conf zones {kconf.get('zone')} != {zones}")
    if ddns:
        acl = (kconf.get("acl") or [{}])[0]
        if acl.get("address") != "127.0.0.1" or acl.get("action") != "update" or acl.get("key") != values["ddns"]["tsig"]["keyName"]:
            err(f"knot.conf acl: {acl}")
        inc = kconf.get("include", "")
        if not tsig_source(mounted(ctrs["knot-auth"], inc)):
            err("knot.conf include of the TSIG key is on no TSIG volume")
    elif any(a.get("id") == "kea-ddns-update" for a in kconf.get("acl") or []):
        err("ddns disabled but Knot accepts Kea's updates")
    # Transfers and outside updates: exactly what knot.secondaries/externalUpdates ask for, off
    # by default, outside updates always signed and confined to subtrees.
    kv = values["knot"]
    acls = {a["id"]: a for a in kconf.get("acl") or []}
    xfr = [a for a in acls.values() if "transfer" in str(a.get("action"))]
    if sorted(a["address"] for a in xfr) != sorted(s["address"] for s in kv["secondaries"]):
        err(f"transfer ACLs {xfr} != knot.secondaries")
    if len(tmpl.get("notify") or []) != len(kv["secondaries"]):
        err("a NOTIFY target per secondary")
    ext = acls.get("external-update")
    if bool(ext) != bool(kv["externalUpdates"]["allowFrom"]):
        err("external-update ACL present != knot.externalUpdates.allowFrom")
    if ext and (not ext.get("key") or ext.get("update-owner") != "name" or not ext.get("update-owner-name")):
        err(f"external updates not signed or not confined: {ext}")
    if set(tmpl.get("acl") or []) != set(acls):
        err(f"template acl {tmpl.get('acl')} != defined ACLs {sorted(acls)}")
    if kv["tsigKeys"]["existingSecret"]:
        m = mounted(ctrs["knot-auth"], "/etc/dnsdhcp/tsig-extra/keys.conf")
        if not m or volumes.get(m["name"], {}).get("secret", {}).get("secretName") != kv["tsigKeys"]["existingSecret"]:
            err("knot.tsigKeys.existingSecret is not mounted for knot.conf's include")

    # Kea's configuration agrees with the env vars and with Kea 2.6's path restrictions.
    kea_cm = next((c for n, c in cms.items() if n.endswith("-kea")), {})
    d4 = json.loads(kea_cm.get("data", {}).get("kea-dhcp4.json", "{}")).get("Dhcp4", {})
    sock = d4.get("control-socket", {}).get("socket-name")
    lease = d4.get("lease-database", {}).get("name")
    if sock != kea_env.get("DNSDHCP_KEA_SOCKET") or posixpath.dirname(sock or "") != kea_env.get("KEA_CONTROL_SOCKET_DIR"):
        err(f"Kea control socket {sock} vs env {kea_env}")
    if lease != kea_env.get("DNSDHCP_KEA_LEASE_FILE") or posixpath.dirname(lease or "") != kea_env.get("KEA_DHCP_DATA_DIR"):
        err(f"Kea lease file {lease} vs env {kea_env}")
    if not any("libdhcp_lease_cmds.so" in h.get("library", "") for h in d4.get("hooks-libraries", [])):
        err("Kea: lease_cmds hook missing")
    if len(d4.get("subnet4", [])) != len(values["dhcp"]["subnets"]):
        err("Kea subnet4 count != dhcp.subnets")
    if d4.get("dhcp-ddns", {}).get("enable-updates") != ddns:
        err("Kea dhcp-ddns enable-updates != ddns.enabled")
    if ddns:
        inline = not values["ddns"]["tsig"]["secretFile"]
        in_volume = not inline and not values["ddns"]["tsig"]["existingSecret"]
        if inline:
            sname = volumes["tsig"]["secret"]["secretName"]
            d2text = base64.b64decode(secrets[sname]["data"]["kea-dhcp-ddns.json"]).decode()
            if "kea-dhcp-ddns.json" in kea_cm["data"]:
                err("inline TSIG: kea-dhcp-ddns.json must not be in the ConfigMap")
        else:
            d2text = kea_cm["data"]["kea-dhcp-ddns.json"]
        d2 = json.loads(d2text)["DhcpDdns"]
        m = mounted(ctrs["kea-dhcp-ddns"], "/etc/kea/kea-dhcp-ddns.json")
        want_vol = "tsig" if inline else "kea-config"
        if not m or m["name"] != want_vol:
            err(f"kea-dhcp-ddns reads its configuration from {m and m['name']}, want {want_vol}")
        f = [norm_zone(x["name"]) for x in d2["forward-ddns"]["ddns-domains"]]
        r = [norm_zone(x["name"]) for x in d2["reverse-ddns"]["ddns-domains"]]
        if f != fwd or r != rev4:
            err(f"DDNS domains {f} / {r}, want {fwd} / {rev4}")
        key = d2["tsig-keys"][0]
        mm = mounted(ctrs["kea-dhcp-ddns"], key.get("secret-file", ""))
        if inline:
            want_secret = base64.b64decode(secrets[sname]["data"]["secret"]).decode()
            if key.get("secret") != want_secret or "secret-file" in key:
                err("inline TSIG key differs from the Secret's")
        elif "secret" in key or tsig_source(mm) != ("volume" if in_volume else "secret"):
            err(f"Kea TSIG key is not read through secret-file from the {'zones volume' if in_volume else 'Secret'}")
        if in_volume:
            # Generated once by init-zones into the zones volume's tsig/, which both daemons mount.
            ienv = env_of(inits.get("init-zones", {}))
            tdir = ienv.get("DNSDHCP_TSIG_DIR", "")
            m = mounted(inits.get("init-zones", {}), tdir)
            if not m or m["name"] != "zones" or posixpath.relpath(tdir, m["mountPath"]) != "tsig":
                err(f"init-zones: DNSDHCP_TSIG_DIR {tdir!r} is not tsig/ of the zones volume")
            if ienv.get("DNSDHCP_TSIG_KEY_NAME") != values["ddns"]["tsig"]["keyName"]:
                err("init-zones: DNSDHCP_TSIG_KEY_NAME != ddns.tsig.keyName")
            if secrets or "tsig" in volumes:
                err("the TSIG key is on the zones volume, yet a Secret is rendered or mounted")
        elif values["ddns"]["tsig"]["existingSecret"]:
            sname = volumes["tsig"]["secret"]["secretName"]
            if sname != values["ddns"]["tsig"]["existingSecret"] or sname in secrets:
                err("existing TSIG Secret not used as is")
        elif set(secrets.get(sname, {}).get("data", {})) - {"kea-dhcp-ddns.json"} != {"secret", "knot-key.conf"}:
            err(f"generated TSIG Secret {sname} lacks secret/knot-key.conf")

    # Security contexts.
    for c in allc.values():
        sc = c.get("securityContext", {})
        if sc.get("allowPrivilegeEscalation") is not False or sc.get("readOnlyRootFilesystem") is not True:
            err(f"{c['name']}: privilege escalation allowed or root fs writable")
        caps = sc.get("capabilities", {})
        if caps.get("drop") != ["ALL"]:
            err(f"{c['name']}: capabilities not dropped")
        added = set(caps.get("add", []))
        if c["name"] == "kea-dhcp4":
            if not added <= {"NET_RAW", "NET_BIND_SERVICE"}:
                err(f"kea-dhcp4 adds {added}")
            sock = d4.get("interfaces-config", {}).get("dhcp-socket-type")
            if ("NET_RAW" in added) != (sock == "raw"):
                err("kea-dhcp4 must have NET_RAW exactly when Kea uses raw sockets")
        elif c["name"] == "backup":
            # Hands Knot's backup directory to Knot's user, reads Kea's root-owned files.
            if added != {"CHOWN", "DAC_OVERRIDE", "FOWNER"}:
                err(f"backup adds {added}, want CHOWN, DAC_OVERRIDE, FOWNER")
        elif added and not (c["name"] in ("knot-auth", "resolver") and values["network"]["mode"] == "hostNetwork"):
            err(f"{c['name']}: adds capabilities {added}")
        host_net = values["network"]["mode"] == "hostNetwork"
        if c["name"] in ("knot-auth", "resolver") and host_net:
            # On the node's network Knot binds port 53 as root with NET_BIND_SERVICE only.
            if added != {"NET_BIND_SERVICE"}:
                err(f"{c['name']} (hostNetwork) adds {added}, want NET_BIND_SERVICE only")
        elif c["name"] not in ("kea-dhcp4", "kea-dhcp-ddns", "init-kea-leases", "backup") and sc.get("runAsNonRoot") is not True:
            err(f"{c['name']}: may run as root")
        if "resources" not in c:
            err(f"{c['name']}: no resources")
    # The backup container: the daemons' sockets and volumes at their paths, the binary where the
    # Kubernetes target execs it, /tmp shared with knot-auth (Knot writes backups and reads
    # restores there at the same path), Knot's scheduled backup written inside the zones volume
    # (which knotd sees at the same path), its own memory limit.
    b = ctrs.get("backup", {})
    mounts = {m["mountPath"]: m["name"] for m in b.get("volumeMounts", [])}
    for path, vol in [("/var/lib/knot", "zones"), ("/run/knot", "knot-run"), ("/var/lib/kea", "leases"), ("/run/kea", "kea-run"), ("/dnsdhcp/bin", "dnsdhcp-bin"), ("/tmp", "tmp-knot")]:
        if mounts.get(path) != vol:
            err(f"backup: {path} must be the {vol} volume, got {mounts.get(path)}")
    benv = {e["name"]: e.get("value") for e in b.get("env", [])}
    for name in ("DNSDHCP_BACKUP_TO", "DNSDHCP_BACKUP_RECIPIENTS", "DNSDHCP_REQUIRE_ENCRYPTION"):
        if name in benv:
            err(f"backup: {name} in the environment would make commands exec'd there upload")
    if backup:
        if not (benv.get("DNSDHCP_AGENT_SCRATCH") or "").startswith("/var/lib/knot/"):
            err("backup: DNSDHCP_AGENT_SCRATCH must be inside the zones volume (knotd writes there)")
    if b:
        if not b.get("resources", {}).get("limits", {}).get("memory"):
            err("backup: no memory limit of its own")
        if b.get("livenessProbe", {}).get("httpGet", {}).get("path") != "/healthz":
            err("backup: liveness must ask /healthz")
    # Probes ask the daemons (dnsdhcp pod probe, over their control sockets).
    probe = ["/dnsdhcp/bin/dnsdhcp", "pod", "probe"]
    knot_dns = ["--knot-dns", f"127.0.0.1:{values['resolver']['authPort'] if values['resolver']['enabled'] else 53}"]
    want_probes = {"knot-auth": {"readinessProbe": probe + ["knot", "--ready"] + knot_dns, "livenessProbe": probe + ["knot"] + knot_dns},
                   "kea-dhcp4": {k: probe + ["kea-dhcp4"] for k in ("startupProbe", "readinessProbe", "livenessProbe")}}
    if ddns:
        want_probes["kea-dhcp-ddns"] = {k: probe + ["kea-dhcp-ddns"] for k in ("readinessProbe", "livenessProbe")}
    for name, probes in want_probes.items():
        for kind, cmd in probes.items():
            got = ctrs.get(name, {}).get(kind, {}).get("exec", {}).get("command")
            if got != cmd:
                err(f"{name} {kind}: {got}, want {cmd}")
    d2env = env_of(ctrs.get("kea-dhcp-ddns", {}))
    if ddns:
        d2conf = json.loads(d2text)["DhcpDdns"].get("control-socket", {})
        if d2conf.get("socket-name") != d2env.get("DNSDHCP_KEA_DDNS_SOCKET"):
            err(f"kea-dhcp-ddns control socket {d2conf} != DNSDHCP_KEA_DDNS_SOCKET {d2env.get('DNSDHCP_KEA_DDNS_SOCKET')}")
        if not mounted(ctrs["kea-dhcp-ddns"], d2env.get("DNSDHCP_KEA_DDNS_SOCKET", "/nonexistent")):
            err("kea-dhcp-ddns: its control socket is not on a volume")
    if env_of(ctrs.get("knot-auth", {})).get("DNSDHCP_RECORDS_ON_ERROR") != values["postStart"]["onMergeError"]:
        err("knot-auth: DNSDHCP_RECORDS_ON_ERROR != postStart.onMergeError")

    # Operator overrides land where they were asked for, merged over the chart's own.
    for comp, name in (("knot", "knot-auth"), ("dhcp", "kea-dhcp4"), ("ddns", "kea-dhcp-ddns")):
        c = ctrs.get(name)
        if c is None:
            continue
        for e in values[comp]["extraEnv"]:
            if e not in c.get("env", []):
                err(f"{name}: {comp}.extraEnv {e} missing")
        for m in values[comp]["extraVolumeMounts"]:
            if m not in c.get("volumeMounts", []):
                err(f"{name}: {comp}.extraVolumeMounts {m} missing")
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            for k, v in (values[comp].get(kind) or {}).items():
                if c.get(kind, {}).get(k) != v:
                    err(f"{name} {kind}.{k} = {c.get(kind, {}).get(k)}, want {v} ({comp}.{kind})")
        for k, v in values[comp]["securityContext"].items():
            if c["securityContext"].get(k) != v:
                err(f"{name} securityContext.{k} != {comp}.securityContext")
    for v in values["extraVolumes"]:
        if v not in pod["volumes"]:
            err(f"extraVolumes {v['name']} missing")
    for k, v in values["podSecurityContext"].items():
        if pod["securityContext"].get(k) != v:
            err(f"pod securityContext.{k} != podSecurityContext")
    if pod["securityContext"].get("fsGroup") != values["podSecurityContext"].get("fsGroup", 53):
        err("pod fsGroup lost")
    if env_of(ctrs["knot-auth"]).get("DNSDHCP_RECORDS_FORCE") != str(values["postStart"]["force"]).lower():
        err("knot-auth: DNSDHCP_RECORDS_FORCE != postStart.force")

    # The StatefulSet replaces a stuck pod at once; the pod carries the standard labels.
    if sts["spec"].get("podManagementPolicy") != "Parallel":
        err("podManagementPolicy is not Parallel")
    labels = sts["spec"]["template"]["metadata"]["labels"]
    for key in ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version",
                "app.kubernetes.io/managed-by", "app.kubernetes.io/component"):
        if key not in labels:
            err(f"pod template label {key} missing")

    # Services.
    svcs = by_kind.get("Service", [])
    dns = [s for s in svcs if s["metadata"]["name"].endswith("-dns")]
    want_ports = [("TCP", values["service"]["dns"]["port"]), ("UDP", values["service"]["dns"]["port"])]
    if resolver:
        want_ports += [("TCP", values["resolver"]["authPort"]), ("UDP", values["resolver"]["authPort"])]
    if not dns or sorted((p["protocol"], p["port"]) for p in dns[0]["spec"]["ports"]) != sorted(want_ports):
        err(f"DNS Service must expose {want_ports}")
    # The resolver: port 53 is its, Knot moves to authPort, DDNS and the stub zones follow.
    knot_port = values["resolver"]["authPort"] if resolver else 53
    if any(not l.endswith(f"@{knot_port}") for l in kconf.get("server", {}).get("listen", [])):
        err(f"Knot must listen on port {knot_port}: {kconf.get('server', {}).get('listen')}")
    if resolver:
        targets = {p["port"]: p["targetPort"] for p in dns[0]["spec"]["ports"]} if dns else {}
        if targets.get(values["service"]["dns"]["port"]) != "resolver-tcp":
            err("the DNS Service's port does not lead to the resolver")
        unbound = knot_cm.get("data", {}).get("unbound.conf", "")
        m = mounted(ctrs["resolver"], "/etc/resolver/unbound.conf")
        if not m or volumes.get(m["name"], {}).get("configMap", {}).get("name") != knot_cm.get("metadata", {}).get("name"):
            err("the resolver's unbound.conf is not mounted from the Knot ConfigMap")
        for z in zones:
            if f'name: "{z}."\n  stub-addr: 127.0.0.1@{knot_port}' not in unbound:
                err(f"the resolver does not ask Knot for {z}")
        if ddns:
            ports = {s.get("port") for s in d2["forward-ddns"]["ddns-domains"][0]["dns-servers"]} if d2["forward-ddns"]["ddns-domains"] else {knot_port}
            if ports != {knot_port}:
                err(f"DDNS sends to port {ports}, Knot listens on {knot_port}")
    dhcp = [s for s in svcs if s["metadata"]["name"].endswith("-dhcp")]
    if bool(dhcp) != (values["service"]["dhcp"]["enabled"] and values["network"]["mode"] == "relay"):
        err("DHCP Service presence != service.dhcp.enabled in relay mode")
    if dhcp and [(p["protocol"], p["port"]) for p in dhcp[0]["spec"]["ports"]] != [("UDP", 67)]:
        err("DHCP Service must expose 67/UDP")

    # Network modes: how DHCP clients reach Kea.
    net = values["network"]
    ifcfg = d4.get("interfaces-config", {})
    server_id = [o.get("data") for o in d4.get("option-data", []) if o.get("name") == "dhcp-server-identifier"]
    if net["mode"] == "multus":
        nads = by_kind.get("NetworkAttachmentDefinition", [])
        ann = json.loads(sts["spec"]["template"]["metadata"].get("annotations", {}).get("k8s.v1.cni.cncf.io/networks", "[]"))
        if len(nads) != 1 or [a.get("name") for a in ann] != [nads[0]["metadata"]["name"]]:
            err(f"multus: the pod's networks annotation {ann} does not name the chart's attachment")
        else:
            cni = json.loads(nads[0]["spec"]["config"])
            if cni["ipam"]["addresses"][0]["address"] != net["multus"]["address"] or cni["master"] != net["multus"]["master"]:
                err(f"multus: attachment {cni} does not carry network.multus")
        if not values["dhcp"]["interfaces"] and ifcfg.get("interfaces") != [net["multus"]["interface"]]:
            err(f"multus: Kea serves {ifcfg.get('interfaces')}, not the attachment's interface")
    elif by_kind.get("NetworkAttachmentDefinition"):
        err("a NetworkAttachmentDefinition outside multus mode")
    if net["mode"] == "hostNetwork":
        if pod.get("hostNetwork") is not True or pod.get("dnsPolicy") != "ClusterFirstWithHostNet":
            err("hostNetwork mode: pod lacks hostNetwork/dnsPolicy ClusterFirstWithHostNet")
        if pod.get("securityContext", {}).get("sysctls"):
            err("hostNetwork mode: the pod sets net sysctls, which Kubernetes rejects with hostNetwork")
        if not values["dhcp"]["interfaces"] and ifcfg.get("interfaces") != net["hostNetwork"]["interfaces"]:
            err(f"hostNetwork: Kea serves {ifcfg.get('interfaces')}")
    elif pod.get("hostNetwork"):
        err("hostNetwork outside hostNetwork mode")
    if net["mode"] == "relay":
        want = values["dhcp"]["serverIdentifier"] or values["service"]["dhcp"]["loadBalancerIP"]
        if want and server_id != [want]:
            err(f"relay: Kea's server identifier {server_id}, want {want}")
        if not values["dhcp"]["socketType"] and ifcfg.get("dhcp-socket-type") != "udp":
            err("relay: Kea must use UDP sockets")
        if dhcp and values["service"]["dhcp"]["type"] == "LoadBalancer" and dhcp[0]["spec"].get("loadBalancerIP", "") != values["service"]["dhcp"]["loadBalancerIP"]:
            err("relay: the DHCP Service's loadBalancerIP differs from service.dhcp.loadBalancerIP")

    # Operator RBAC.
    if values["operatorRbac"]["create"]:
        roles = [r for r in by_kind.get("Role", []) if r["metadata"]["name"].endswith("-operator")]
        rules = {(tuple(r["resources"]), tuple(sorted(r["verbs"]))) for r in roles[0]["rules"]} if roles else set()
        if rules != {(("pods",), ("delete", "get", "list", "watch")), (("pods/exec",), ("create", "get"))}:
            err(f"operator Role rules: {rules}")


if __name__ == "__main__":
    try:
        main()
    except (KeyError, IndexError, TypeError, StopIteration) as e:
        err(f"unexpected structure: {e!r}")
    for e in errors:
        print("contract violated:", e)
    sys.exit(1 if errors else 0)
