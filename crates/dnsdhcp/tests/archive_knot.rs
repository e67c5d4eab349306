//! The archive layer on a real Knot backup directory (`knotc zone-backup` from a running knotd):
//! written with zone facts, verified, extracted byte for byte, and the zones-only prefix copy.

use std::fs;
use std::path::Path;

use dnsdhcp::archive::{ArchiveKind, ArchiveWriter, ExtractOptions, Limits, extract, verify};
use test_support::knot::{KnotServer, MINIMAL_ZONE, require_knot};

/// Every regular file under `dir`, relative path -> contents.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.push((rel, fs::read(&p).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[test]
fn real_knot_backup_directory_round_trips_with_zone_facts() {
    require_knot();
    let knot = KnotServer::start(&[("example.test", MINIMAL_ZONE), ("other.test", MINIMAL_ZONE)]);
    // A dynamic change, so the backup's zone file differs from the original.
    knot.knotc_ok(&["zone-begin", "example.test"]);
    knot.knotc_ok(&["zone-set", "example.test", "dyn", "300", "A", "192.0.2.77"]);
    knot.knotc_ok(&["zone-commit", "example.test"]);
    knot.knotc_ok(&["zone-flush", "example.test"]);

    let work = tempfile::tempdir().unwrap();
    let backup = work.path().join("knot-backup");
    knot.knotc_ok(&["-b", "zone-backup", "+backupdir", backup.to_str().unwrap()]);
    let zone_files: Vec<String> = files(&backup)
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| p.ends_with(".zone"))
        .collect();
    assert_eq!(zone_files.len(), 2, "backup holds: {:?}", files(&backup));

    // Zone files first (the prefix that becomes zones.tar.gz), then everything else.
    let full = work.path().join("knot-zones-test.tar.gz");
    let zones = work.path().join("zones.tar.gz");
    let mut w = ArchiveWriter::create(&full, ArchiveKind::ZonesFull, "local:test").unwrap();
    for f in &zone_files {
        let name = Path::new(f).file_name().unwrap().to_string_lossy();
        w.add_zone_file(f, name.strip_suffix(".zone").unwrap(), &backup.join(f))
            .unwrap();
    }
    w.end_prefix().unwrap();
    for (rel, _) in files(&backup) {
        if !zone_files.contains(&rel) {
            w.add_file(&rel, &backup.join(&rel)).unwrap();
        }
    }
    let (fm, zm) = w
        .finish_with_prefix_copy(&zones, ArchiveKind::Zones)
        .unwrap();

    let example = fm.zones.iter().find(|z| z.name == "example.test.").unwrap();
    let status = knot.knotc_ok(&["zone-status", "example.test"]);
    assert!(
        status.contains(&format!("serial: {}", example.serial)),
        "{status} vs {example:?}"
    );
    assert_eq!(example.records, 4, "SOA, NS, ns1 A and the dynamic A");
    assert_eq!(zm.zones, fm.zones);

    for archive in [&full, &zones] {
        let report = verify(archive, &Limits::default());
        assert!(report.ok, "{}: {:?}", archive.display(), report.problems);
    }
    let dest = work.path().join("restored");
    extract(&full, &dest, &ExtractOptions::default()).unwrap();
    assert_eq!(files(&dest), files(&backup));
}
