//! A zone archived by a newer Knot, holding a record type the running Knot reads only by number
//! (WALLET: Knot 3.4 reads it by name, Knot 3.2 only as `TYPE262 \# LEN HEX`), restored into a
//! real `knotd` (3.2.6 on the host, 3.4.6 with `DNSDHCP_TEST_DAEMONS=trixie`) on both restore
//! paths: the preflight asks knotd its version, the record goes back in the form that Knot
//! loads (converted to RFC 3597 form for 3.2, said in a note), and the zone serves it with the
//! archived wire form — never a zone left unloaded.

use std::fs;
use std::path::{Path, PathBuf};

use dnsdhcp::archive::{self, ArchiveKind, ArchiveWriter, ExtractOptions, Limits};
use dnsdhcp::backup;
use dnsdhcp::restore::{self, ZoneRestoreOptions};
use dnsdhcp::target::LocalTarget;
use dnsdhcp::zonefile::{KnotTable, knot_form, parse_served};
use test_support::knot::KnotServer;

const ZONE: &str = "wallet.test.";
const ZONE_TEXT: &str =
    "$TTL 3600\n@ SOA ns1 hostmaster 7 3600 900 604800 300\n@ NS ns1\nns1 A 192.0.2.1\n";
/// What the archive adds to the zone: a WALLET record (two character strings).
const WALLET_LINE: &str = "w.wallet.test. 60 WALLET \"hello\" \"a b\"\n";
/// Its wire form: each string a length octet and its octets.
const WALLET_WIRE: &[u8] = b"\x05hello\x03a b";

fn target(knot: &KnotServer) -> LocalTarget {
    LocalTarget {
        knot_socket: knot.socket_path().to_owned(),
        name: "test".into(),
        ..LocalTarget::default()
    }
}

/// A full archive and its zones-only copy, as a Knot 3.4 backup of the zone holding the
/// WALLET record would be: this Knot's own backup, the record added to the zone file, written
/// with the project's archive writer.
fn wallet_archives(t: &LocalTarget, dir: &Path) -> (PathBuf, PathBuf) {
    let zb = backup::backup_zones(t, &dir.join("orig")).expect("backup zones");
    let tree = dir.join("tree");
    archive::extract(&zb.full.path, &tree, &ExtractOptions::default()).unwrap();
    let zone_file = tree.join(backup::member_of_zone(ZONE));
    let mut text = fs::read_to_string(&zone_file).unwrap();
    text.push_str(WALLET_LINE);
    fs::write(&zone_file, text).unwrap();

    let (full, zones) = (
        dir.join("knot-zones-wallet.tar.gz"),
        dir.join("zones.tar.gz"),
    );
    let mut w = ArchiveWriter::create(&full, ArchiveKind::ZonesFull, "test").unwrap();
    w.add_dir("zonefiles", 0o750).unwrap();
    w.add_dir_all_with(
        "zonefiles",
        &tree.join("zonefiles"),
        backup::classify_zone_member,
    )
    .unwrap();
    w.end_prefix().unwrap();
    let mut rest: Vec<_> = fs::read_dir(&tree)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "zonefiles" && n != archive::MANIFEST_NAME)
        .collect();
    rest.sort();
    for name in rest {
        let src = tree.join(&name);
        if src.is_dir() {
            w.add_dir(&name, 0o750).unwrap();
            w.add_dir_all(&name, &src).unwrap();
        } else {
            w.add_file(&name, &src).unwrap();
        }
    }
    w.finish_with_prefix_copy(&zones, ArchiveKind::Zones)
        .unwrap();
    (full, zones)
}

/// The WALLET record the zone serves, as wire bytes (whatever form this Knot prints it in).
fn served_wallet(t: &LocalTarget) -> Option<Vec<u8>> {
    let mut client = t.knot().unwrap();
    let records: Vec<_> = client
        .zone_read(ZONE, None, None)
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert!(
        records.iter().all(|r| r.owner != "intruder.wallet.test."),
        "the damage is undone: {records:?}"
    );
    let r = records.iter().find(|r| r.owner == "w.wallet.test.")?;
    let rec = parse_served(&r.owner, 60, &r.rtype, &r.data).unwrap();
    let key = match knot_form(&rec, KnotTable::OLDEST).unwrap() {
        Some(form) => form.key,
        None => rec.key,
    };
    Some(key[1..].to_vec())
}

fn damage(knot: &KnotServer) {
    knot.knotc_ok(&["zone-begin", ZONE]);
    knot.knotc_ok(&["zone-set", ZONE, "intruder", "60", "TXT", "\"x\""]);
    knot.knotc_ok(&["zone-commit", ZONE]);
}

#[test]
fn a_type_the_running_knot_reads_only_by_number_is_restored_in_rfc_3597_form_on_both_paths() {
    let knot = KnotServer::start(&[(ZONE, ZONE_TEXT)]);
    let t = target(&knot);
    let v = t.knot().unwrap().version().unwrap();
    let (table, _) = KnotTable::for_version(v.major, v.minor);
    let dir = tempfile::tempdir().unwrap();
    let (full, zones) = wallet_archives(&t, dir.path());
    for path in [&full, &zones] {
        let report = archive::verify(path, &Limits::default());
        assert!(report.ok, "{}: {:?}", path.display(), report.problems);
        let newer = &report.zones[0].newer_types;
        assert_eq!(newer.len(), 1, "{newer:?}");
        assert_eq!((newer[0].name.as_str(), newer[0].code), ("WALLET", 262));
        assert!(newer[0].convertible);
    }
    assert_eq!(served_wallet(&t), None);

    for path in [&zones, &full] {
        damage(&knot);
        let r = restore::restore_local(&t, Some(path), None, &ZoneRestoreOptions::default())
            .unwrap_or_else(|e| panic!("restore {}: {e}", path.display()));
        let converted = r
            .notes
            .iter()
            .any(|n| n.contains("converted to RFC 3597 form"));
        assert_eq!(
            converted,
            !table.reads(domain::base::iana::Rtype::from_int(262)),
            "knotd {}: {:?}",
            v.text,
            r.notes
        );
        if converted {
            let note = &r.notes[0];
            assert!(
                note.contains("zone wallet.test.: zonefiles/wallet.test.zone:"),
                "{note}"
            );
            assert!(note.contains(&v.text) && note.contains("TYPE262"), "{note}");
        }
        assert_eq!(
            served_wallet(&t).as_deref(),
            Some(WALLET_WIRE),
            "knotd {} after restoring {}",
            v.text,
            path.display()
        );
        // A second restore of the same archive leaves the record as it is.
        let again = restore::restore_zones(&t, path).expect("restore again");
        assert_eq!(again.zones.len(), 1);
        assert_eq!(served_wallet(&t).as_deref(), Some(WALLET_WIRE));
    }
}
