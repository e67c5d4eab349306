#!/usr/bin/env python3
"""Writes the project image as an OCI image layout, without a container engine.

    oci-image.py build --out DIR --tag TAG --epoch SECONDS --version V --revision R \
        --binary ARCH=PATH [--binary ARCH=PATH ...]
    oci-image.py merge --out DIR --tag TAG LAYOUT [LAYOUT ...]

`build` writes one image per architecture (a single gzip layer holding
/usr/local/bin/dnsdhcp and /tmp), an image index listing them, and index.json naming that image
index TAG; it prints the image index's digest (the digest a registry serves for TAG). `merge` joins
per-architecture layouts (e.g. built on native runners) into one multi-architecture layout.

Reproducible: every tar entry has mtime EPOCH, owner 0:0 and no user/group names, entries are
sorted, gzip has no name and mtime 0, JSON is written with sorted keys; so the same binaries and
EPOCH give the same digests. Standard library only.
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import shutil
import struct
import sys
import tarfile
import time

MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"
# The ELF machine of each architecture the image is built for.
ELF_MACHINE = {"amd64": 62, "arm64": 183}
# Any uid works: the chart sets the user of every container.
IMAGE_USER = "65532:65532"
ENTRYPOINT = "/usr/local/bin/dnsdhcp"


def die(msg):
    print(f"oci-image: {msg}", file=sys.stderr)
    sys.exit(1)


def dumps(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def check_static(path, arch):
    """Fails unless PATH is an ELF executable for ARCH without a program interpreter."""
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2 or head[5] != 1:
            die(f"{path}: not a 64-bit little-endian ELF file")
        machine = struct.unpack_from("<H", head, 18)[0]
        if machine != ELF_MACHINE[arch]:
            die(f"{path}: ELF machine {machine}, not {arch} ({ELF_MACHINE[arch]})")
        phoff = struct.unpack_from("<Q", head, 32)[0]
        phentsize, phnum = struct.unpack_from("<HH", head, 54)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    for i in range(phnum):
        if struct.unpack_from("<I", table, i * phentsize)[0] == 3:  # PT_INTERP
            die(f"{path}: dynamically linked (has a program interpreter); the image needs a static binary")


class Layout:
    """An OCI image layout directory being written."""

    def __init__(self, out):
        self.out = out
        os.makedirs(os.path.join(out, "blobs", "sha256"), exist_ok=True)
        with open(os.path.join(out, "oci-layout"), "w") as f:
            f.write('{"imageLayoutVersion":"1.0.0"}')

    def blob(self, data, media_type):
        digest = hashlib.sha256(data).hexdigest()
        path = os.path.join(self.out, "blobs", "sha256", digest)
        if not os.path.exists(path):
            tmp = path + ".tmp"
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}

    def write_index(self, manifests, tag):
        """index.json names TAG: an image index blob listing one manifest per platform (the
        multi-architecture image a registry serves); returns that blob's descriptor."""
        manifests.sort(key=lambda m: (m["platform"]["architecture"], m["digest"]))
        image_index = {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": manifests}
        desc = self.blob(dumps(image_index), MT_INDEX)
        desc["annotations"] = {REF_NAME: tag}
        top = {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [desc]}
        with open(os.path.join(self.out, "index.json"), "wb") as f:
            f.write(dumps(top))
        return desc


def layer_tar(binary, epoch):
    """The root file system: /usr/local/bin/dnsdhcp (0755), /tmp (1777); uncompressed tar."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:

        def entry(name, kind, mode, size=0):
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.size, info.mtime = kind, mode, size, epoch
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            return info

        for d in ("tmp/", "usr/", "usr/local/", "usr/local/bin/"):
            tar.addfile(entry(d, tarfile.DIRTYPE, 0o1777 if d == "tmp/" else 0o755))
        size = os.path.getsize(binary)
        with open(binary, "rb") as f:
            tar.addfile(entry("usr/local/bin/dnsdhcp", tarfile.REGTYPE, 0o755, size), f)
    return buf.getvalue()


def image(layout, arch, binary, args):
    """Writes one architecture's layer, config and manifest; returns the manifest descriptor."""
    check_static(binary, arch)
    tar = layer_tar(binary, args.epoch)
    gz = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=gz, mtime=0, compresslevel=9) as z:
        z.write(tar)
    layer = layout.blob(gz.getvalue(), MT_LAYER)
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(args.epoch))
    labels = {
        "org.opencontainers.image.title": "dnsdhcp",
        "org.opencontainers.image.version": args.version,
        "org.opencontainers.image.revision": args.revision,
        "org.opencontainers.image.created": created,
    }
    if args.source:
        labels["org.opencontainers.image.source"] = args.source
    config = {
        "architecture": arch,
        "os": "linux",
        "created": created,
        "config": {
            "User": IMAGE_USER,
            "Entrypoint": [ENTRYPOINT],
            "Env": ["PATH=/usr/local/bin"],
            "Labels": labels,
        },
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{hashlib.sha256(tar).hexdigest()}"]},
        "history": [{"created": created, "created_by": "scripts/build-image.sh"}],
    }
    cfg = layout.blob(dumps(config), MT_CONFIG)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "config": cfg,
        "layers": [layer],
        "annotations": labels,
    }
    desc = layout.blob(dumps(manifest), MT_MANIFEST)
    desc["platform"] = {"architecture": arch, "os": "linux"}
    return desc


def build(args):
    if os.path.exists(args.out):
        shutil.rmtree(args.out)
    layout = Layout(args.out)
    manifests = []
    for spec in args.binary:
        arch, _, path = spec.partition("=")
        if arch not in ELF_MACHINE or not path:
            die(f"--binary {spec}: expected ARCH=PATH with ARCH one of {', '.join(ELF_MACHINE)}")
        manifests.append(image(layout, arch, path, args))
    print(layout.write_index(manifests, args.tag)["digest"])


def merge(args):
    if os.path.exists(args.out):
        shutil.rmtree(args.out)
    layout = Layout(args.out)
    manifests = {}
    for src in args.layouts:
        blobs = os.path.join(src, "blobs", "sha256")
        with open(os.path.join(src, "index.json")) as f:
            top = json.load(f)
        for entry in top["manifests"]:
            with open(os.path.join(blobs, entry["digest"].split(":", 1)[1])) as f:
                for m in json.load(f)["manifests"]:
                    arch = m["platform"]["architecture"]
                    if arch in manifests and manifests[arch]["digest"] != m["digest"]:
                        die(f"{src}: a second, different {arch} image")
                    manifests[arch] = m
        for name in sorted(os.listdir(blobs)):
            with open(os.path.join(blobs, name), "rb") as f:
                data = f.read()
            if hashlib.sha256(data).hexdigest() != name:
                die(f"{src}: blob {name} does not match its digest")
            layout.blob(data, "")
    print(layout.write_index(list(manifests.values()), args.tag)["digest"])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("--out", required=True)
    b.add_argument("--tag", required=True)
    b.add_argument("--epoch", type=int, required=True)
    b.add_argument("--version", required=True)
    b.add_argument("--revision", required=True)
    b.add_argument("--source", default="")
    b.add_argument("--binary", action="append", required=True, help="ARCH=PATH")
    m = sub.add_parser("merge")
    m.add_argument("--out", required=True)
    m.add_argument("--tag", required=True)
    m.add_argument("layouts", nargs="+")
    args = p.parse_args()
    build(args) if args.cmd == "build" else merge(args)


if __name__ == "__main__":
    main()
