#!/usr/bin/env python3
"""Feeds the configuration the chart renders to the real daemons installed on this host.

Usage: daemon-check.py RENDERED.yaml

Writes the ConfigMaps' and Secrets' files into a temporary directory, rewrites the pod's absolute
paths into it, then:
  - `knotc conf-check` on knot.conf;
  - starts knotd on 127.0.0.1 (free port): it must load every zone from the initial zone files;
    with DDNS, an update signed with the chart's TSIG key must be accepted and an unsigned one
    refused (needs knsupdate/kdig from knot-dnsutils);
  - `kea-dhcp4 -t` on kea-dhcp4.json (hooks from the host's Kea);
  - `kea-dhcp-ddns -t` on kea-dhcp-ddns.json (with the key inline when the host's Kea is older
    than 2.5.8, which has no `secret-file`);
  - `unbound-checkconf` on the resolver's unbound.conf (when unbound is installed).
Needs knotc, knotd, kea-dhcp4, kea-dhcp-ddns (Debian: knot, knot-dnsutils, kea-dhcp4-server,
kea-dhcp-ddns-server). Exit 0 when all pass, 1 otherwise.
"""
import base64
import glob
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import yaml

errors = []
procs = []


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, **kw)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def host_hooks_dir():
    for d in ["/usr/lib/x86_64-linux-gnu/kea/hooks", "/usr/lib/aarch64-linux-gnu/kea/hooks",
              "/usr/lib/kea/hooks", "/usr/lib64/kea/hooks"]:
        if os.path.exists(os.path.join(d, "libdhcp_lease_cmds.so")):
            return d
    hits = glob.glob("/usr/lib*/**/libdhcp_lease_cmds.so", recursive=True)
    return os.path.dirname(hits[0]) if hits else None


def kea_version():
    out = run(["kea-dhcp-ddns", "-v"]).stdout.strip()
    m = re.match(r"(\d+)\.(\d+)\.(\d+)", out)
    return tuple(int(x) for x in m.groups()) if m else (0, 0, 0)


def main():
    rendered = sys.argv[1]
    docs = [d for d in yaml.safe_load_all(open(rendered)) if d]
    tmp = tempfile.mkdtemp(prefix="udd-daemon-check.")
    try:
        check(docs, tmp)
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


def check(docs, tmp):
    files = {}
    for d in docs:
        if d["kind"] == "ConfigMap":
            files.update(d.get("data", {}))
        elif d["kind"] == "Secret":
            files.update({k: base64.b64decode(v).decode() for k, v in d.get("data", {}).items()})
    sts = next(d for d in docs if d["kind"] == "StatefulSet")
    ctrs = {c["name"]: c for c in sts["spec"]["template"]["spec"]["containers"]}
    ddns = "kea-dhcp-ddns" in ctrs

    def rewrite(text):
        for p in ("/etc/dnsdhcp/tsig", "/var/lib/knot", "/run/knot", "/var/lib/kea", "/run/kea-pid", "/run/kea"):
            text = text.replace(p, tmp + p)
        return text

    for p in ("/etc/dnsdhcp/tsig", "/var/lib/knot/zones", "/run/knot", "/var/lib/kea", "/run/kea", "/run/kea-pid"):
        os.makedirs(tmp + p, exist_ok=True)
    os.chmod(tmp + "/run/kea", 0o750)
    if ddns and "knot-key.conf" not in files:
        # An existing Secret (ddns.tsig.existingSecret): make one as its README tells users to.
        key = json.loads(files["kea-dhcp-ddns.json"])["DhcpDdns"]["tsig-keys"][0]
        secret = base64.b64encode(os.urandom(32)).decode()
        files["secret"] = secret
        files["knot-key.conf"] = (f"key:\n  - id: {key['name']}\n    algorithm: {key['algorithm'].lower()}\n"
                                  f"    secret: {secret}\n")
    for k in ("secret", "knot-key.conf"):
        if k in files:
            open(f"{tmp}/etc/dnsdhcp/tsig/{k}", "w").write(files[k])
    extra_keys = {}
    if "/etc/dnsdhcp/tsig-extra/keys.conf" in files["knot.conf"]:
        # knot.tsigKeys.existingSecret: make keys.conf as the chart README tells users to.
        kc = yaml.safe_load(files["knot.conf"])
        names = {a["key"] for a in (kc.get("acl") or []) + (kc.get("remote") or []) if a.get("key")}
        names.discard(kc.get("acl", [{}])[0].get("key") if ddns else None)
        os.makedirs(f"{tmp}/etc/dnsdhcp/tsig-extra", exist_ok=True)
        text = "key:\n"
        for n in sorted(names):
            extra_keys[n] = base64.b64encode(os.urandom(32)).decode()
            text += f"  - id: {n}\n    algorithm: hmac-sha256\n    secret: {extra_keys[n]}\n"
        open(f"{tmp}/etc/dnsdhcp/tsig-extra/keys.conf", "w").write(text)
    for k, v in files.items():
        if k.endswith(".zone"):
            open(f"{tmp}/var/lib/knot/zones/{k}", "w").write(v)

    # Knot.
    port = free_port()
    conf = rewrite(files["knot.conf"])
    conf = re.sub(r"listen: \[.*\]", f'listen: ["127.0.0.1@{port}"]', conf)
    open(f"{tmp}/knot.conf", "w").write(conf)
    r = run(["knotc", "-c", f"{tmp}/knot.conf", "conf-check"])
    if r.returncode != 0:
        errors.append(f"knotc conf-check: {r.stdout}{r.stderr}")
        return
    log = open(f"{tmp}/knotd.log", "w")
    procs.append(subprocess.Popen(["knotd", "-c", f"{tmp}/knot.conf"], stdout=log, stderr=log))
    sock = f"{tmp}/run/knot/knot.sock"
    zones = [z["domain"] for z in yaml.safe_load(files["knot.conf"])["zone"]]
    deadline = time.time() + 20
    while time.time() < deadline:
        r = run(["knotc", "-s", sock, "zone-status"])
        if r.returncode == 0 and r.stdout.count("serial: 1") == len(zones):
            break
        time.sleep(0.2)
    else:
        errors.append(f"knotd did not load the zones: {r.stdout}{r.stderr}\n{open(f'{tmp}/knotd.log').read()}")
        return
    if ddns and shutil.which("knsupdate") and shutil.which("kdig"):
        key = yaml.safe_load(files["knot-key.conf"])["key"][0]
        fwd = next((z for z in zones if not z.endswith(".arpa.")), None)
        if fwd:
            upd = f"server 127.0.0.1 {port}\nzone {fwd}\nupdate add chart-check.{fwd} 60 A 192.0.2.7\nsend\n"
            r = run(["knsupdate", "-y", f"{key['algorithm']}:{key['id']}:{key['secret']}"], input=upd)
            if r.returncode != 0:
                errors.append(f"signed update refused: {r.stdout}{r.stderr}")
            r = run(["knsupdate"], input=upd.replace("chart-check.", "unsigned."))
            if r.returncode == 0:
                errors.append("unsigned update accepted")
            r = run(["kdig", "@127.0.0.1", "-p", str(port), "+short", f"chart-check.{fwd}", "A"])
            if r.stdout.strip() != "192.0.2.7":
                errors.append(f"updated record not served: {r.stdout}")

    # Updates from outside (knot.externalUpdates), when allowed from 127.0.0.1: signed ones inside
    # the owner subtrees are accepted, outside them or unsigned refused.
    ext = next((a for a in yaml.safe_load(files["knot.conf"]).get("acl") or [] if a["id"] == "external-update"), None)
    if ext and any(n.startswith("127.") for n in ext["address"]) and shutil.which("knsupdate"):
        zone = zones[0]
        sub = ext["update-owner-name"][0]
        inside = f"x.{sub}" if sub.endswith(".") else f"x.{sub}.{zone}"
        tsig = ["-y", f"hmac-sha256:{ext['key']}:{extra_keys.get(ext['key'], '')}"]
        for name, signed, want in ((inside, True, True), (f"outside.{zone}", True, False), (inside, False, False)):
            upd = f"server 127.0.0.1 {port}\nzone {zone}\nupdate add {name} 60 A 192.0.2.8\nsend\n"
            r = run(["knsupdate"] + (tsig if signed else []), input=upd)
            if (r.returncode == 0) != want:
                errors.append(f"external update of {name} (signed: {signed}): accepted={r.returncode == 0}, want {want}: {r.stdout}{r.stderr}")

    # The resolver's configuration (Debian's unbound-checkconf, when installed).
    if "unbound.conf" in files and shutil.which("unbound-checkconf"):
        open(f"{tmp}/unbound.conf", "w").write(files["unbound.conf"])
        r = run(["unbound-checkconf", f"{tmp}/unbound.conf"])
        if r.returncode != 0:
            errors.append(f"unbound-checkconf: {r.stdout}{r.stderr}")

    # Kea.
    hooks = host_hooks_dir()
    env = dict(os.environ, KEA_PIDFILE_DIR=tmp + "/run/kea-pid", KEA_LOCKFILE_DIR="none",
               KEA_CONTROL_SOCKET_DIR=tmp + "/run/kea", KEA_DHCP_DATA_DIR=tmp + "/var/lib/kea")
    if hooks:
        env["KEA_HOOKS_PATH"] = hooks
    d4 = json.loads(rewrite(files["kea-dhcp4.json"]))
    for h in d4["Dhcp4"].get("hooks-libraries", []):
        h["library"] = os.path.join(hooks or "/nonexistent", os.path.basename(h["library"]))
    d4["Dhcp4"]["interfaces-config"]["interfaces"] = ["lo"]
    open(f"{tmp}/kea-dhcp4.json", "w").write(json.dumps(d4))
    r = run(["kea-dhcp4", "-t", f"{tmp}/kea-dhcp4.json"], env=env)
    if r.returncode != 0:
        errors.append(f"kea-dhcp4 -t: {r.stdout[-2000:]}{r.stderr[-2000:]}")
    if ddns:
        d2 = json.loads(rewrite(files["kea-dhcp-ddns.json"]))
        if kea_version() < (2, 5, 8):
            # This Kea has no secret-file: check the rest with the same key inline.
            for k in d2["DhcpDdns"]["tsig-keys"]:
                if "secret-file" in k:
                    k["secret"] = open(k.pop("secret-file")).read().strip()
        open(f"{tmp}/kea-dhcp-ddns.json", "w").write(json.dumps(d2))
        r = run(["kea-dhcp-ddns", "-t", f"{tmp}/kea-dhcp-ddns.json"], env=env)
        if r.returncode != 0:
            errors.append(f"kea-dhcp-ddns -t: {r.stdout[-2000:]}{r.stderr[-2000:]}")

if __name__ == "__main__":
    main()
    for e in errors:
        print("daemon check failed:", e)
    sys.exit(1 if errors else 0)
