//! Archive layer: write -> verify -> extract round trips, a corpus of hostile archives that
//! extraction must refuse without touching the disk, verify naming the broken member and line,
//! and crash safety of the atomic writer (child processes killed with SIGKILL mid-write).

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use dnsdhcp::archive::{
    ArchiveError, ArchiveKind, ArchiveWriter, ExtractMode, ExtractOptions, Limits, MANIFEST_NAME,
    Manifest, Member, extract, filter_archive, remove_partial_files, replace_file_atomically,
    verify, write_file_atomically,
};
use flate2::Compression;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};

const LEASE_HEADER: &str = "address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,user_context,pool_id\n";

fn zone_text(zone: &str, serial: u32, hosts: usize) -> String {
    let mut s = format!(
        "$ORIGIN {zone}.\n$TTL 3600\n@ IN SOA ns1 hostmaster {serial} 3600 900 604800 300\n@ IN NS ns1\nns1 IN A 192.0.2.1\n"
    );
    for i in 0..hosts {
        s.push_str(&format!("h{i} IN A 198.51.100.{}\n", i % 250 + 1));
    }
    s
}

fn lease_text(n: usize) -> String {
    let mut s = LEASE_HEADER.to_owned();
    for i in 0..n {
        s.push_str(&format!(
            "10.0.0.{},00:11:22:33:44:{:02x},,3600,1700003600,1,0,0,host{i},0,,0\n",
            i + 10,
            i
        ));
    }
    s
}

/// A tree shaped like Knot's backup directory plus a lease file.
fn knot_backup_tree(root: &Path) {
    fs::create_dir_all(root.join("zonefiles")).unwrap();
    fs::create_dir_all(root.join("keys")).unwrap();
    fs::create_dir_all(root.join("timers")).unwrap(); // empty directory, must survive
    fs::write(root.join("knot_backup.label"), "label: test\n").unwrap();
    fs::write(
        root.join("zonefiles/example.com.zone"),
        zone_text("example.com", 2024010101, 20),
    )
    .unwrap();
    fs::write(
        root.join("zonefiles/example.net.zone"),
        zone_text("example.net", 7, 3),
    )
    .unwrap();
    fs::write(root.join("keys/data.mdb"), vec![0xA5u8; 70_000]).unwrap();
    fs::set_permissions(
        root.join("keys/data.mdb"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
}

fn classify(member: &str) -> Member {
    match member
        .strip_prefix("zonefiles/")
        .and_then(|f| f.strip_suffix(".zone"))
    {
        Some(zone) => Member::Zone(zone.to_owned()),
        None => Member::Plain,
    }
}

fn write_full_archive(src: &Path, out: &Path) -> Manifest {
    let mut w = ArchiveWriter::create(out, ArchiveKind::ZonesFull, "local:test").unwrap();
    w.add_dir_all_with("", src, classify).unwrap();
    w.finish().unwrap()
}

fn write_lease_archive(out: &Path, rows: usize) -> Manifest {
    let mut w = ArchiveWriter::create(out, ArchiveKind::Leases, "local:test").unwrap();
    w.add_lease_bytes("kea-leases4.csv", lease_text(rows).as_bytes(), 0o644)
        .unwrap();
    w.finish().unwrap()
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

/// Every path under `dir` (relative), with file contents; directories map to `None`.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Option<Vec<u8>>>) {
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_owned();
            let ft = fs::symlink_metadata(&p).unwrap().file_type();
            if ft.is_dir() {
                out.insert(rel, None);
                walk(root, &p, out);
            } else {
                out.insert(rel, Some(fs::read(&p).unwrap_or_default()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

#[test]
fn round_trip_write_verify_extract() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    knot_backup_tree(&src);
    let out_dir = tmp.path().join("backups");
    fs::create_dir(&out_dir).unwrap();
    let archive = out_dir.join("knot-zones-test-20260101T000000Z.tar.gz");
    let manifest = write_full_archive(&src, &archive);

    // Published with mode 0600 and nothing else left in the directory.
    assert_eq!(mode(&archive), 0o600);
    let names: Vec<_> = fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![archive.file_name().unwrap().to_owned()]);

    // Manifest contents.
    assert_eq!(manifest.kind, ArchiveKind::ZonesFull);
    assert_eq!(manifest.source, "local:test");
    assert_eq!(manifest.tool_version, env!("CARGO_PKG_VERSION"));
    assert_eq!(manifest.files.len(), 4);
    let com = manifest
        .zones
        .iter()
        .find(|z| z.name == "example.com.")
        .unwrap();
    assert_eq!(
        (com.file.as_str(), com.serial, com.records),
        ("zonefiles/example.com.zone", 2024010101, 23)
    );
    let label = manifest.file("knot_backup.label").unwrap();
    assert_eq!(label.size, 12);
    assert_eq!(label.sha256, hex::encode(Sha256::digest(b"label: test\n")));

    // Verify agrees.
    let report = verify(&archive, &Limits::default());
    assert!(report.ok, "{:?}", report.problems);
    assert_eq!(report.files, 4);
    assert_eq!(report.records, 23 + 6);
    assert_eq!(report.zones.len(), 2);
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["ok"], true);
    assert_eq!(json["kind"], "zones-full");

    // Extract reproduces the tree (the manifest is returned, not extracted).
    let dest = tmp.path().join("restored");
    let got = extract(&archive, &dest, &ExtractOptions::default()).unwrap();
    assert_eq!(got.manifest.as_ref(), Some(&manifest));
    assert_eq!(snapshot(&dest), snapshot(&src));
    assert!(!dest.join(MANIFEST_NAME).exists());
    assert_eq!(mode(&dest.join("keys/data.mdb")), 0o600);
    assert_eq!(mode(&dest), 0o700);
    // No temporary directories left beside dest.
    let hidden: Vec<_> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(hidden.is_empty(), "{hidden:?}");
}

#[test]
fn extract_create_new_refuses_existing_dest_and_replace_swaps() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    knot_backup_tree(&src);
    let archive = tmp.path().join("a.tar.gz");
    write_full_archive(&src, &archive);
    let dest = tmp.path().join("dest");
    fs::create_dir(&dest).unwrap();
    fs::write(dest.join("old"), "old").unwrap();

    let e = extract(&archive, &dest, &ExtractOptions::default()).unwrap_err();
    assert!(matches!(e, ArchiveError::DestinationExists { .. }), "{e}");
    assert_eq!(fs::read(dest.join("old")).unwrap(), b"old");

    let opts = ExtractOptions {
        mode: ExtractMode::Replace,
        ..ExtractOptions::default()
    };
    extract(&archive, &dest, &opts).unwrap();
    assert_eq!(snapshot(&dest), snapshot(&src));
    let left: Vec<_> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let mut left = left;
    left.sort();
    assert_eq!(left, ["a.tar.gz", "dest", "src"]);

    // Replace into a path that does not exist yet simply creates it.
    let fresh = tmp.path().join("fresh");
    extract(&archive, &fresh, &opts).unwrap();
    assert_eq!(snapshot(&fresh), snapshot(&src));
}

#[test]
fn lease_archive_counts_leases_and_filtered_copy_keeps_facts() {
    let tmp = tempfile::tempdir().unwrap();
    let leases = tmp.path().join("kea-leases-test.tar.gz");
    let m = write_lease_archive(&leases, 5);
    assert_eq!(m.lease_count, 5);
    assert_eq!(m.lease_files[0].rows, 5);
    let report = verify(&leases, &Limits::default());
    assert!(report.ok, "{:?}", report.problems);
    assert_eq!(report.lease_count, 5);

    // zones.tar.gz: zone files only, from the full archive.
    let src = tmp.path().join("src");
    knot_backup_tree(&src);
    let full = tmp.path().join("knot-zones-test.tar.gz");
    let fm = write_full_archive(&src, &full);
    let zones = tmp.path().join("zones.tar.gz");
    fs::write(&zones, "previous").unwrap();
    let zm = filter_archive(&full, &zones, ArchiveKind::Zones, &Limits::default(), |p| {
        p.starts_with("zonefiles/")
    })
    .unwrap();
    assert_eq!(mode(&zones), 0o600);
    assert_eq!(zm.kind, ArchiveKind::Zones);
    assert_eq!(zm.source, fm.source);
    assert_eq!(zm.created, fm.created);
    assert_eq!(zm.files.len(), 2);
    assert_eq!(zm.zones, fm.zones);
    let report = verify(&zones, &Limits::default());
    assert!(report.ok, "{:?}", report.problems);

    // Plain atomic copy.
    let copy = tmp.path().join("kea-leases.tar.gz");
    replace_file_atomically(&leases, &copy).unwrap();
    assert_eq!(fs::read(&copy).unwrap(), fs::read(&leases).unwrap());
    assert_eq!(mode(&copy), 0o600);
}

#[test]
fn prefix_copy_publishes_the_zone_files_as_their_own_archive() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    knot_backup_tree(&src);
    let full = tmp.path().join("knot-zones-test.tar.gz");
    let zones = tmp.path().join("zones.tar.gz");
    fs::write(&zones, "previous").unwrap();
    let mut w = ArchiveWriter::create(&full, ArchiveKind::ZonesFull, "local:test").unwrap();
    w.add_dir_all_with("zonefiles", &src.join("zonefiles"), classify)
        .unwrap();
    w.end_prefix().unwrap();
    w.add_file("knot_backup.label", &src.join("knot_backup.label"))
        .unwrap();
    w.add_dir_all("keys", &src.join("keys")).unwrap();
    let (fm, zm) = w
        .finish_with_prefix_copy(&zones, ArchiveKind::Zones)
        .unwrap();
    assert_eq!(fm.files.len(), 4);
    assert_eq!(zm.kind, ArchiveKind::Zones);
    assert_eq!(
        zm.files.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(),
        ["zonefiles/example.com.zone", "zonefiles/example.net.zone"]
    );
    assert_eq!(zm.zones, fm.zones);
    assert_eq!(zm.created, fm.created);
    assert_eq!(mode(&zones), 0o600);
    for (archive, files) in [(&full, 4), (&zones, 2)] {
        let report = verify(archive, &Limits::default());
        assert!(report.ok, "{}: {:?}", archive.display(), report.problems);
        assert_eq!(report.files, files);
        assert_eq!(report.zones.len(), 2);
    }
    let dest = tmp.path().join("z");
    let got = extract(&zones, &dest, &ExtractOptions::default()).unwrap();
    assert_eq!(got.manifest.unwrap().kind, ArchiveKind::Zones);
    assert_eq!(
        fs::read(dest.join("zonefiles/example.net.zone")).unwrap(),
        fs::read(src.join("zonefiles/example.net.zone")).unwrap()
    );
    assert!(!dest.join("keys").exists());
    // The full archive cut right after its first gzip member is a valid gzip stream, but
    // without a manifest it is refused.
    let (a, b) = (fs::read(&full).unwrap(), fs::read(&zones).unwrap());
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let cut = tmp.path().join("cut.tar.gz");
    fs::write(&cut, &a[..common]).unwrap();
    assert_rejected(&cut, Limits::default(), "cut at member boundary");
    // The system tar reads both (gzip with several members is standard).
    if let Ok(out) = Command::new("tar").arg("tzf").arg(&full).output() {
        let listing = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{listing}");
        assert!(listing.contains("keys/data.mdb") && listing.contains(MANIFEST_NAME));
    }
}

#[test]
fn bad_zone_fails_finish_naming_file_and_line_and_publishes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("zones.tar.gz");
    let mut w = ArchiveWriter::create(&out, ArchiveKind::Zones, "t").unwrap();
    w.add_zone_bytes(
        "a.zone",
        "a.example",
        zone_text("a.example", 1, 2).as_bytes(),
        0o600,
    )
    .unwrap();
    let bad = zone_text("b.example", 1, 2).replace("h1 IN A", "h1 IN AAAA");
    // The parse runs in the background: the error comes from this call or from finish.
    let err = match w.add_zone_bytes("b.zone", "b.example", bad.as_bytes(), 0o600) {
        Err(e) => e,
        Ok(()) => w.finish().unwrap_err(),
    };
    assert!(err.to_string().starts_with("b.zone:7: "), "{err}");
    assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 0);
}

#[test]
fn writer_refuses_symlinks_in_source_trees_and_drop_removes_temp() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("a"), "a").unwrap();
    symlink("/etc/passwd", src.join("link")).unwrap();
    let out = tmp.path().join("out");
    fs::create_dir(&out).unwrap();
    let mut w = ArchiveWriter::create(out.join("x.tar.gz"), ArchiveKind::Zones, "t").unwrap();
    let e = w.add_dir_all("", &src).unwrap_err();
    assert!(e.to_string().contains("link"), "{e}");
    // A partial file exists while writing, hidden and 0600; dropping removes it.
    let partial: Vec<_> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(partial.len(), 1);
    let name = partial[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(name.starts_with(".x.tar.gz.partial-"), "{name}");
    assert_eq!(mode(&partial[0]), 0o600);
    drop(w);
    assert_eq!(fs::read_dir(&out).unwrap().count(), 0);
}

// ---------------------------------------------------------------------------------------------
// Hostile archives, built byte by byte.

/// One raw tar entry: name bytes go into the header unchecked.
struct Raw {
    name: Vec<u8>,
    kind: u8,
    data: Vec<u8>,
    link: Vec<u8>,
}

fn raw(name: &str, kind: u8, data: &[u8]) -> Raw {
    Raw {
        name: name.as_bytes().to_vec(),
        kind,
        data: data.to_vec(),
        link: Vec::new(),
    }
}

fn link(name: &str, kind: u8, target: &str) -> Raw {
    Raw {
        link: target.as_bytes().to_vec(),
        ..raw(name, kind, b"")
    }
}

fn tar_bytes(entries: &[Raw]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        let mut h = tar::Header::new_gnu();
        {
            let old = h.as_old_mut();
            old.name = [0; 100];
            old.name[..e.name.len()].copy_from_slice(&e.name);
            old.linkname = [0; 100];
            old.linkname[..e.link.len()].copy_from_slice(&e.link);
        }
        h.set_entry_type(tar::EntryType::new(e.kind));
        h.set_size(e.data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        if e.kind == b'3' || e.kind == b'4' {
            h.set_device_major(1).unwrap();
            h.set_device_minor(3).unwrap();
        }
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(&e.data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend_from_slice(&[0; 1024]);
    out
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

fn sha(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// A manifest entry (as raw tar entry) listing the given files.
fn manifest_entry(files: &[(&str, &[u8])]) -> Raw {
    let m = serde_json::json!({
        "format": 1,
        "tool_version": "0.0.0",
        "created": "2026-01-01T00:00:00Z",
        "source": "test",
        "kind": "zones",
        "files": files.iter().map(|(p, d)| serde_json::json!({
            "path": p, "size": d.len(), "sha256": sha(d)
        })).collect::<Vec<_>>(),
    });
    raw(MANIFEST_NAME, b'0', &serde_json::to_vec(&m).unwrap())
}

fn pax(records: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in records {
        let body = format!(" {k}={v}\n");
        let mut len = body.len() + 1;
        while format!("{len}{body}").len() != len {
            len += 1;
        }
        out.extend_from_slice(format!("{len}{body}").as_bytes());
    }
    out
}

/// Repack a valid archive, changing member contents with `edit`; with `fix_manifest` the
/// manifest's sizes and digests are recomputed (so only deeper checks can catch the change).
fn repack(
    src: &Path,
    dst: &Path,
    fix_manifest: bool,
    mut edit: impl FnMut(&str, Vec<u8>) -> Vec<u8>,
) {
    let mut ar = tar::Archive::new(flate2::read::MultiGzDecoder::new(
        fs::File::open(src).unwrap(),
    ));
    let mut items = Vec::new();
    let mut manifest: Option<serde_json::Value> = None;
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        let kind = e.header().entry_type().as_byte();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        if path == MANIFEST_NAME {
            manifest = Some(serde_json::from_slice(&data).unwrap());
            continue;
        }
        let data = if kind == b'0' {
            edit(&path, data)
        } else {
            data
        };
        items.push(raw(&path, kind, &data));
    }
    let mut manifest = manifest.unwrap();
    if fix_manifest {
        for f in manifest["files"].as_array_mut().unwrap() {
            let item = items
                .iter()
                .find(|i| i.name == f["path"].as_str().unwrap().as_bytes())
                .unwrap();
            f["size"] = item.data.len().into();
            f["sha256"] = sha(&item.data).into();
        }
    }
    items.push(raw(
        MANIFEST_NAME,
        b'0',
        &serde_json::to_vec(&manifest).unwrap(),
    ));
    fs::write(dst, gzip(&tar_bytes(&items))).unwrap();
}

/// Extract `archive` into a fresh `dest` under `parent`; it must fail and leave `parent`
/// exactly as before (no dest, no temporary directory, nothing written beside it).
fn assert_rejected(archive: &Path, limits: Limits, label: &str) -> ArchiveError {
    let parent = tempfile::tempdir().unwrap();
    let work = parent.path().join("work");
    fs::create_dir(&work).unwrap();
    fs::write(work.join("sentinel"), "keep").unwrap();
    let before = snapshot(parent.path());
    let dest = work.join("dest");
    let opts = ExtractOptions {
        limits,
        ..ExtractOptions::default()
    };
    let err = match extract(archive, &dest, &opts) {
        Ok(_) => panic!("{label}: hostile archive was extracted"),
        Err(e) => e,
    };
    assert_eq!(snapshot(parent.path()), before, "{label}: disk changed");
    // Replace mode must refuse just the same and keep the existing destination.
    fs::create_dir(&dest).unwrap();
    fs::write(dest.join("old"), "old").unwrap();
    let before = snapshot(parent.path());
    let opts = ExtractOptions {
        mode: ExtractMode::Replace,
        ..opts
    };
    assert!(extract(archive, &dest, &opts).is_err(), "{label}: replace");
    assert_eq!(
        snapshot(parent.path()),
        before,
        "{label}: disk changed (replace)"
    );
    // And verify reports it.
    let report = verify(archive, &limits);
    assert!(!report.ok, "{label}: verify passed");
    assert!(!report.problems.is_empty());
    err
}

#[test]
fn hostile_archives_are_rejected_and_nothing_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let ok = b"fine".as_slice();
    let long_evil = {
        let mut name = b"../../".to_vec();
        name.extend(std::iter::repeat_n(b'a', 120));
        name.push(0);
        name
    };
    let small = Limits {
        max_entries: 5,
        max_file_size: 1024,
        max_total_size: 3000,
        ..Limits::default()
    };
    let cases: Vec<(&str, Vec<Raw>, Limits, &str)> = vec![
        (
            "dotdot",
            vec![raw("../x", b'0', ok)],
            Limits::default(),
            "`..`",
        ),
        (
            "dotdot-nested",
            vec![raw("a/../../x", b'0', ok)],
            Limits::default(),
            "`..`",
        ),
        (
            "dotdot-dir",
            vec![raw("../d/", b'5', b"")],
            Limits::default(),
            "`..`",
        ),
        (
            "absolute",
            vec![raw("/tmp/abs-evil", b'0', ok)],
            Limits::default(),
            "absolute",
        ),
        (
            "symlink",
            vec![link("l", b'2', "/etc")],
            Limits::default(),
            "Symlink",
        ),
        (
            "symlink-then-write-through",
            vec![link("l", b'2', ".."), raw("l/x", b'0', ok)],
            Limits::default(),
            "Symlink",
        ),
        (
            "hardlink-abs",
            vec![link("h", b'1', "/etc/passwd")],
            Limits::default(),
            "Link",
        ),
        (
            "hardlink-rel",
            vec![raw("a", b'0', ok), link("h", b'1', "a")],
            Limits::default(),
            "Link",
        ),
        (
            "char-device",
            vec![raw("null", b'3', b"")],
            Limits::default(),
            "Char",
        ),
        (
            "block-device",
            vec![raw("sda", b'4', b"")],
            Limits::default(),
            "Block",
        ),
        (
            "fifo",
            vec![raw("fifo", b'6', b"")],
            Limits::default(),
            "Fifo",
        ),
        (
            "contiguous",
            vec![raw("c", b'7', ok)],
            Limits::default(),
            "Continuous",
        ),
        (
            "gnu-longname-dotdot",
            vec![
                Raw {
                    name: b"././@LongLink".to_vec(),
                    kind: b'L',
                    data: long_evil,
                    link: vec![],
                },
                raw("placeholder", b'0', ok),
            ],
            Limits::default(),
            "`..`",
        ),
        (
            "pax-path-dotdot",
            vec![
                raw("PaxHeaders/x", b'x', &pax(&[("path", "../pax-evil")])),
                raw("innocent", b'0', ok),
            ],
            Limits::default(),
            "`..`",
        ),
        (
            "pax-path-absolute",
            vec![
                raw("PaxHeaders/x", b'x', &pax(&[("path", "/tmp/pax-abs")])),
                raw("innocent", b'0', ok),
            ],
            Limits::default(),
            "absolute",
        ),
        (
            "duplicate",
            vec![raw("a", b'0', ok), raw("a", b'0', ok)],
            Limits::default(),
            "duplicate",
        ),
        (
            "duplicate-normalised",
            vec![raw("a/b", b'0', ok), raw("./a//b", b'0', ok)],
            Limits::default(),
            "duplicate",
        ),
        (
            "file-then-child",
            vec![raw("a", b'0', ok), raw("a/b", b'0', ok)],
            Limits::default(),
            "is a file",
        ),
        (
            "child-then-file",
            vec![raw("a/b", b'0', ok), raw("a", b'0', ok)],
            Limits::default(),
            "directory is needed",
        ),
        (
            "oversize-file",
            vec![raw("big", b'0', &[7; 2048])],
            small,
            "per-file limit",
        ),
        (
            "oversize-total",
            vec![
                raw("a", b'0', &[1; 1000]),
                raw("b", b'0', &[1; 1000]),
                raw("c", b'0', &[1; 1000]),
                raw("d", b'0', &[1; 1000]),
            ],
            small,
            "total size",
        ),
        (
            "too-many-entries",
            (0..6).map(|i| raw(&format!("f{i}"), b'0', ok)).collect(),
            small,
            "entries",
        ),
    ];
    for (label, entries, limits, expect) in cases {
        let archive = tmp.path().join(format!("{label}.tar.gz"));
        fs::write(&archive, gzip(&tar_bytes(&entries))).unwrap();
        let err = assert_rejected(&archive, limits, label);
        assert!(
            matches!(err, ArchiveError::Rejected { .. }),
            "{label}: {err}"
        );
        assert!(err.to_string().contains(expect), "{label}: {err}");
    }
    // Nothing escaped into the shared temporary directory or /tmp.
    assert!(!tmp.path().join("x").exists());
    assert!(!Path::new("/tmp/abs-evil").exists());
    assert!(!Path::new("/tmp/pax-abs").exists());
}

#[test]
fn manifest_mismatches_and_damaged_archives_are_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let a = b"content a".as_slice();
    let b = b"content b".as_slice();
    let manifest_cases: Vec<(&str, Vec<Raw>, &str)> = vec![
        ("no-manifest", vec![raw("a", b'0', a)], "no manifest"),
        (
            "checksum",
            vec![raw("a", b'0', b"content A"), manifest_entry(&[("a", a)])],
            "SHA-256",
        ),
        (
            "size",
            vec![raw("a", b'0', b"content aa"), manifest_entry(&[("a", a)])],
            "size",
        ),
        (
            "unlisted-member",
            vec![
                raw("a", b'0', a),
                raw("b", b'0', b),
                manifest_entry(&[("a", a)]),
            ],
            "does not list",
        ),
        (
            "missing-member",
            vec![raw("a", b'0', a), manifest_entry(&[("a", a), ("b", b)])],
            "not in the archive",
        ),
        (
            "bad-json",
            vec![raw("a", b'0', a), raw(MANIFEST_NAME, b'0', b"{not json")],
            "invalid JSON",
        ),
        (
            "manifest-is-symlink",
            vec![raw("a", b'0', a), link(MANIFEST_NAME, b'2', "a")],
            "Symlink",
        ),
    ];
    for (label, entries, expect) in manifest_cases {
        let archive = tmp.path().join(format!("{label}.tar.gz"));
        fs::write(&archive, gzip(&tar_bytes(&entries))).unwrap();
        let err = assert_rejected(&archive, Limits::default(), label);
        assert!(err.to_string().contains(expect), "{label}: {err}");
    }

    // Damage to a valid archive: truncation at several points, a flipped byte, garbage.
    let src = tmp.path().join("src");
    knot_backup_tree(&src);
    let good = tmp.path().join("good.tar.gz");
    write_full_archive(&src, &good);
    let bytes = fs::read(&good).unwrap();
    let n = bytes.len();
    let mut damaged: Vec<(String, Vec<u8>)> = Vec::new();
    for cut in [n / 4, n / 2, n - 9, n - 4, n - 1] {
        damaged.push((format!("truncated-{cut}"), bytes[..cut].to_vec()));
    }
    for pos in [n / 3, n / 2, 2 * n / 3] {
        let mut b = bytes.clone();
        b[pos] ^= 0x55;
        damaged.push((format!("flipped-{pos}"), b));
    }
    let mut crc = bytes.clone();
    crc[n - 8] ^= 1; // gzip CRC32 of the data
    damaged.push(("bad-crc".into(), crc));
    damaged.push(("not-gzip".into(), b"this is not an archive".to_vec()));
    damaged.push(("empty".into(), Vec::new()));
    for (label, data) in damaged {
        let archive = tmp.path().join(format!("{label}.tar.gz"));
        fs::write(&archive, data).unwrap();
        assert_rejected(&archive, Limits::default(), &label);
    }
}

#[test]
fn corrupted_zone_or_lease_file_fails_verify_naming_member_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    knot_backup_tree(&src);
    let good = tmp.path().join("good.tar.gz");
    write_full_archive(&src, &good);

    // Consistent checksums (manifest fixed up), but a broken record on line 9.
    let bad_zone = tmp.path().join("bad-zone.tar.gz");
    repack(&good, &bad_zone, true, |path, data| {
        if path == "zonefiles/example.com.zone" {
            String::from_utf8(data)
                .unwrap()
                .replace("h3 IN A 198.51.100.4", "h3 IN A 198.51.100.400")
                .into_bytes()
        } else {
            data
        }
    });
    let report = verify(&bad_zone, &Limits::default());
    assert!(!report.ok);
    let p = &report.problems[0];
    assert_eq!(p.member.as_deref(), Some("zonefiles/example.com.zone"));
    assert_eq!(p.line, Some(9), "{p}");
    assert!(
        p.to_string().starts_with("zonefiles/example.com.zone:9: "),
        "{p}"
    );
    // The other zone still parsed and is reported.
    assert!(report.zones.iter().any(|z| z.name == "example.net."));

    // A valid zone whose serial disagrees with the manifest.
    let bumped = tmp.path().join("bumped.tar.gz");
    repack(&good, &bumped, true, |path, data| {
        if path == "zonefiles/example.net.zone" {
            String::from_utf8(data)
                .unwrap()
                .replace(" 7 3600", " 8 3600")
                .into_bytes()
        } else {
            data
        }
    });
    let report = verify(&bumped, &Limits::default());
    assert!(!report.ok);
    assert_eq!(
        report.problems[0].member.as_deref(),
        Some("zonefiles/example.net.zone")
    );
    assert!(
        report.problems[0].message.contains("serial 8"),
        "{:?}",
        report.problems
    );

    // Without fixing the manifest the checksum check names the member.
    let tampered = tmp.path().join("tampered.tar.gz");
    repack(&good, &tampered, false, |path, mut data| {
        if path == "keys/data.mdb" {
            data[100] ^= 1;
        }
        data
    });
    let report = verify(&tampered, &Limits::default());
    assert!(!report.ok);
    assert_eq!(report.problems[0].member.as_deref(), Some("keys/data.mdb"));
    assert!(report.problems[0].message.contains("checksum"));

    // A lease file with a broken row: member and line.
    let leases = tmp.path().join("leases.tar.gz");
    write_lease_archive(&leases, 4);
    let bad_leases = tmp.path().join("bad-leases.tar.gz");
    repack(&leases, &bad_leases, true, |_, data| {
        String::from_utf8(data)
            .unwrap()
            .replace("10.0.0.12,", "10.0.0.300,")
            .into_bytes()
    });
    let report = verify(&bad_leases, &Limits::default());
    assert!(!report.ok);
    assert_eq!(
        report.problems[0].member.as_deref(),
        Some("kea-leases4.csv")
    );
    assert_eq!(report.problems[0].line, Some(4), "{:?}", report.problems);
}

// ---------------------------------------------------------------------------------------------
// Crash safety: a child process (this test binary, re-executed) writes over an existing final
// file and is killed with SIGKILL at a point it announces.

const CHILD_ENV: &str = "DNSDHCP_ARCHIVE_CRASH_CHILD";

/// Reader that announces "READY" on stdout and blocks forever once `after` bytes were read.
struct StallingReader {
    data: Vec<u8>,
    pos: usize,
    after: usize,
}

impl Read for StallingReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.after {
            ready_and_hang();
        }
        let n = buf
            .len()
            .min(self.after - self.pos)
            .min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

fn ready_and_hang() -> ! {
    let mut out = std::io::stdout();
    writeln!(out, "\nREADY").unwrap();
    out.flush().unwrap();
    loop {
        std::thread::park();
    }
}

/// Pseudo-random, poorly compressible bytes.
fn noise(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Entry point of the child process; does nothing when run as an ordinary test.
#[test]
fn crash_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (point, path) = spec.split_once(':').unwrap();
    let final_path = PathBuf::from(path);
    let big = noise(4 << 20);
    match point {
        "after-create" => {
            let _w = ArchiveWriter::create(&final_path, ArchiveKind::Zones, "child").unwrap();
            ready_and_hang();
        }
        "mid-file" | "late-in-file" => {
            let after = if point == "mid-file" {
                big.len() / 2
            } else {
                big.len() - 1
            };
            let mut w = ArchiveWriter::create(&final_path, ArchiveKind::Zones, "child").unwrap();
            w.add_bytes("first", b"first file", 0o600).unwrap();
            let len = big.len() as u64;
            let r = StallingReader {
                data: big,
                pos: 0,
                after,
            };
            w.add_reader("big", len, 0o600, r).unwrap();
            unreachable!();
        }
        "between-files" => {
            let mut w = ArchiveWriter::create(&final_path, ArchiveKind::Zones, "child").unwrap();
            w.add_bytes("big", &big, 0o600).unwrap();
            ready_and_hang();
        }
        "after-finish" => {
            let mut w = ArchiveWriter::create(&final_path, ArchiveKind::Zones, "child").unwrap();
            w.add_bytes("new", b"the new archive", 0o600).unwrap();
            w.finish().unwrap();
            ready_and_hang();
        }
        "atomic-copy" => {
            write_file_atomically(&final_path, |f| {
                f.write_all(&big[..big.len() / 2])?;
                ready_and_hang()
            })
            .unwrap();
        }
        other => panic!("unknown crash point {other}"),
    }
}

/// Run the child at `point` writing to `final_path`, wait for READY, SIGKILL it.
fn crash_at(point: &str, final_path: &Path) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, format!("{point}:{}", final_path.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let ready = BufReader::new(stdout)
        .lines()
        .map(|l| l.unwrap())
        .any(|l| l.trim() == "READY");
    assert!(
        ready,
        "{point}: child ended without reaching its crash point"
    );
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(!status.success(), "{point}: child was not killed");
}

#[test]
fn sigkill_while_writing_leaves_previous_archive_intact() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let final_path = dir.join("zones.tar.gz");
    // The previous archive.
    let mut w = ArchiveWriter::create(&final_path, ArchiveKind::Zones, "previous").unwrap();
    w.add_zone_bytes(
        "example.com.zone",
        "example.com",
        zone_text("example.com", 41, 5).as_bytes(),
        0o600,
    )
    .unwrap();
    w.finish().unwrap();
    let previous = fs::read(&final_path).unwrap();

    for point in [
        "after-create",
        "mid-file",
        "late-in-file",
        "between-files",
        "atomic-copy",
    ] {
        crash_at(point, &final_path);
        assert_eq!(
            fs::read(&final_path).unwrap(),
            previous,
            "{point}: previous archive changed"
        );
        assert_eq!(mode(&final_path), 0o600);
        let report = verify(&final_path, &Limits::default());
        assert!(report.ok, "{point}: {:?}", report.problems);
        assert_eq!(report.zones[0].serial, 41);
        // Only hidden partial files (mode 0600) besides the final name.
        let mut partials = 0;
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            if name == "zones.tar.gz" {
                continue;
            }
            assert!(
                name.starts_with(".zones.tar.gz.partial-"),
                "{point}: unexpected file {name}"
            );
            assert_eq!(mode(&e.path()), 0o600, "{point}: {name}");
            partials += 1;
        }
        assert_eq!(remove_partial_files(&final_path).unwrap(), partials);
        assert_eq!(fs::read_dir(dir).unwrap().count(), 1);
    }

    // Killed after finish: the new archive is complete under the final name.
    crash_at("after-finish", &final_path);
    let report = verify(&final_path, &Limits::default());
    assert!(report.ok, "{:?}", report.problems);
    assert_eq!(report.source.as_deref(), Some("child"));
    let names: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["zones.tar.gz"]);
}
