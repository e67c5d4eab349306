//! Every zone Knot serves, against a real `knotd` (3.2.6 on the host, 3.4.6 with
//! `DNSDHCP_TEST_DAEMONS=trixie`): one record of every type in Knot's type table, the root zone,
//! escaped and upper-case names, a DNSSEC-signed zone and a 20,000-record zone with an RRset of
//! 5,000 records go through `backup` → `verify` → `restore` on both restore paths and serve the
//! archive record for record afterwards, with a serial that only moves forward. Zones of
//! 200,000 and 1,000,000 records restored ten times on each path are `#[ignore]`d (minutes):
//! `cargo nextest run -p dnsdhcp --test zones_every_kind --run-ignored only`.

use std::collections::BTreeSet;
use std::time::Duration;

use dnsdhcp::archive::{self, ArchiveKind, ArchiveWriter, Limits};
use dnsdhcp::backup;
use dnsdhcp::restore::{self, RestoreError, ZoneRestoreOptions};
use dnsdhcp::target::LocalTarget;
use dnsdhcp::zones::Method;
use knot_ctl::Record;
use test_support::knot::{KnotServer, MINIMAL_ZONE};

/// One record of every type Knot reads (the generic form for those it only prints).
const TYPES_ZONE: &str = include_str!("data/types.test.zone");

const SMALL: &str = "$TTL 3600\n@ SOA ns1 hostmaster 7 3600 900 604800 300\n@ NS ns1\nns1 A 192.0.2.1\nWWW A 192.0.2.2\n";

fn target(knot: &KnotServer) -> LocalTarget {
    LocalTarget {
        knot_socket: knot.socket_path().to_owned(),
        kea_socket: Default::default(),
        kea_lease_file: Default::default(),
        name: "test".into(),
    }
}

/// Every record `zone` serves, one line each, the SOA's serial replaced by `N`.
fn served(t: &LocalTarget, zone: &str, skip_dnssec: bool) -> BTreeSet<String> {
    let mut client = t.knot().expect("connect to knotd");
    client
        .zone_read(zone, None, None)
        .expect("zone-read")
        .map(|r| r.expect("record"))
        .filter(|r| {
            !skip_dnssec || !matches!(r.rtype.as_str(), "RRSIG" | "NSEC" | "NSEC3" | "NSEC3PARAM")
        })
        .map(|mut r| {
            if r.rtype == "SOA" {
                let mut f: Vec<&str> = r.data.split_whitespace().collect();
                f[2] = "N";
                r.data = f.join(" ");
            }
            r.to_string()
        })
        .collect()
}

fn serial(t: &LocalTarget, zone: &str) -> u32 {
    t.knot()
        .unwrap()
        .zone_status(zone)
        .unwrap()
        .serial
        .expect("zone loaded")
}

/// Adds a record and removes the zone's NS RRset: what a restore must undo.
fn damage(knot: &KnotServer, zone: &str) {
    knot.knotc_ok(&["zone-begin", zone]);
    knot.knotc_ok(&["zone-set", zone, "intruder", "60", "TXT", "\"x\""]);
    knot.knotc_ok(&["zone-unset", zone, "@", "NS"]);
    knot.knotc_ok(&["zone-commit", zone]);
}

/// Backs up every zone of `knot`, verifies both archives, then for each restore path damages
/// every zone, restores and checks the zones serve the archive with a serial past both.
fn round_trip(knot: &KnotServer, zones: &[&str], skip_dnssec: bool) {
    let t = target(knot);
    let out = tempfile::tempdir().unwrap();
    let before: Vec<_> = zones.iter().map(|z| served(&t, z, skip_dnssec)).collect();
    let zb = backup::backup_zones(&t, out.path()).expect("backup zones");
    for w in [&zb.full, &zb.zones] {
        let report = archive::verify(&w.path, &Limits::default());
        assert!(report.ok, "{}: {:?}", w.path.display(), report.problems);
        let names: BTreeSet<String> = report.zones.iter().map(|z| z.name.clone()).collect();
        let want: BTreeSet<String> = zones.iter().map(|z| z.to_ascii_lowercase()).collect();
        assert_eq!(names, want, "{}", w.path.display());
    }
    for archive in [&zb.zones.path, &zb.full.path] {
        let served_before: Vec<u32> = zones.iter().map(|z| serial(&t, z)).collect();
        for z in zones {
            damage(knot, z);
        }
        let r = restore::restore_zones(&t, archive)
            .unwrap_or_else(|e| panic!("restore {}: {e}", archive.display()));
        for (i, z) in zones.iter().enumerate() {
            assert_eq!(
                served(&t, z, skip_dnssec),
                before[i],
                "{z} after restoring {}",
                archive.display()
            );
            let now = serial(&t, z);
            let archived = zb
                .zones
                .manifest
                .zones
                .iter()
                .find(|m| m.name.eq_ignore_ascii_case(z));
            let archived = archived.expect("zone in the manifest").serial;
            assert!(
                now > served_before[i] + 1 && now > archived,
                "{z}: serial {now}, served before {} (+1 damage), archived {archived}",
                served_before[i]
            );
            let rz = r
                .zones
                .iter()
                .find(|rz| rz.zone.eq_ignore_ascii_case(z))
                .unwrap();
            assert!(rz.serial == now || now > rz.serial, "{rz:?} vs {now}");
        }
    }
    // --keep-serial: the archived serial exactly.
    for z in zones {
        damage(knot, z);
    }
    let keep = ZoneRestoreOptions { keep_serial: true };
    restore::restore_zones_with(&t, &zb.zones.path, &keep).expect("restore keeping serials");
    for (i, z) in zones.iter().enumerate() {
        assert_eq!(served(&t, z, skip_dnssec), before[i], "{z}");
        if !skip_dnssec {
            let archived = zb
                .zones
                .manifest
                .zones
                .iter()
                .find(|m| m.name.eq_ignore_ascii_case(z));
            assert_eq!(serial(&t, z), archived.unwrap().serial, "{z}");
        }
    }
}

#[test]
fn every_type_and_every_zone_name_round_trips_on_both_restore_paths() {
    let knot = KnotServer::builder()
        .zone("types.test", TYPES_ZONE)
        .zone(".", "$TTL 3600\n@ SOA ns1.example. h.example. 5 3600 900 604800 300\n@ NS ns1.example.\nexample. NS ns1.example.\nns1.example. A 192.0.2.53\n")
        .zone("a\\047b.test", SMALL)
        .zone("x\\000y.test", SMALL)
        .zone("UPPER.Test", SMALL)
        .start();
    let zones = [
        ".",
        "a/b.test.",
        "types.test.",
        "upper.test.",
        "x\\000y.test.",
    ];
    round_trip(&knot, &zones, false);
}

#[test]
fn a_dnssec_signed_zone_round_trips_on_both_restore_paths() {
    let mut knot = KnotServer::builder()
        .zone("signed.test", SMALL)
        .template_option("dnssec-signing", "on")
        .start();
    // Wait for the first signature (key generation and signing run after the load).
    let t = target(&knot);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !served(&t, "signed.test.", false)
        .iter()
        .any(|r| r.contains(" RRSIG "))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the zone was never signed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    knot.wait_for_zone("signed.test");
    round_trip(&knot, &["signed.test."], true);
    assert!(
        served(&t, "signed.test.", false)
            .iter()
            .any(|r| r.contains(" RRSIG "))
    );
}

/// A zone of `n` records: an RRset of `rrset` A records at `big`, the rest at their own names.
fn big_zone(n: usize, rrset: usize) -> String {
    let mut z = String::from(
        "$TTL 3600\n@ SOA ns1 hostmaster 1 3600 900 604800 300\n@ NS ns1\nns1 A 192.0.2.1\n",
    );
    for i in 0..rrset {
        z.push_str(&format!(
            "big A 10.{}.{}.{}\n",
            i >> 16,
            (i >> 8) & 255,
            i & 255
        ));
    }
    for i in 0..n.saturating_sub(rrset + 3) {
        z.push_str(&format!("h{i} A 10.200.{}.{}\n", (i >> 8) & 255, i & 255));
    }
    z
}

#[test]
fn a_20000_record_zone_with_a_5000_record_rrset_restores_by_its_zone_file() {
    let mut knot = KnotServer::builder()
        .zone("big.test", &big_zone(20_000, 5_000))
        .start();
    let t = target(&knot);
    let out = tempfile::tempdir().unwrap();
    let before = served(&t, "big.test.", false);
    assert_eq!(before.len(), 20_000);
    let zb = backup::backup_zones(&t, out.path()).expect("backup");
    for archive in [&zb.zones.path, &zb.full.path] {
        for _ in 0..2 {
            // 100 records of the big RRset go, and a record comes.
            let mut c = t.knot().unwrap();
            let mut txn = c.zone_begin("big.test.").unwrap();
            let gone: Vec<Record> = (0..100)
                .map(|i| Record::without_ttl("big.big.test.", "A", format!("10.0.0.{i}")))
                .collect();
            assert!(txn.unset_batch(&gone).unwrap().is_empty());
            txn.set(&Record::new("intruder.big.test.", 60, "A", "192.0.2.9"))
                .unwrap();
            txn.commit().unwrap();
            drop(c);
            assert_ne!(served(&t, "big.test.", false), before);
            let r = restore::restore_zones(&t, archive).expect("restore");
            assert_eq!(r.zones[0].method, Method::ZoneFile, "{}", archive.display());
            assert!(
                knot.is_running(),
                "knotd died restoring {}",
                archive.display()
            );
            assert_eq!(served(&t, "big.test.", false), before);
        }
    }
}

#[test]
fn restores_that_would_restore_nothing_or_miss_zones_change_nothing() {
    let knot = KnotServer::start(&[("one.test", SMALL), ("two.test", SMALL)]);
    let t = target(&knot);
    let out = tempfile::tempdir().unwrap();
    let zb = backup::backup_zones(&t, out.path()).unwrap();

    // The target serves only one of the two zones: the missing one is named, nothing changes.
    let other = KnotServer::start(&[("one.test", MINIMAL_ZONE)]);
    let to = target(&other);
    let before = served(&to, "one.test.", false);
    let s = serial(&to, "one.test.");
    for a in [&zb.zones.path, &zb.full.path] {
        let e = restore::restore_zones(&to, a).unwrap_err();
        assert!(matches!(e, RestoreError::UnknownZone { .. }), "{e}");
        assert!(e.to_string().contains("two.test."), "{e}");
        assert!(!e.to_string().contains("one.test."), "{e}");
    }
    assert_eq!(served(&to, "one.test.", false), before);
    assert_eq!(serial(&to, "one.test."), s);

    // An archive without zone files restores nothing: an error.
    let empty = out.path().join("empty.tar.gz");
    let w = ArchiveWriter::create(&empty, ArchiveKind::Zones, "test").unwrap();
    w.finish().unwrap();
    let e = restore::restore_zones(&t, &empty).unwrap_err();
    assert!(matches!(e, RestoreError::NothingToRestore { .. }), "{e}");
}

/// Restores a zone of `records` records (with an RRset of 5,000) ten times from each archive
/// after a damaging change; knotd must stay up and serve exactly the archive every time.
fn ten_restores_of(records: usize) {
    let mut knot = KnotServer::builder()
        .zone("large.test", &big_zone(records, 5_000))
        .start();
    let t = target(&knot);
    let out = tempfile::tempdir().unwrap();
    let before = served(&t, "large.test.", false);
    assert_eq!(before.len(), records);
    let zb = backup::backup_zones(&t, out.path()).expect("backup");
    for archive in [&zb.zones.path, &zb.full.path] {
        for round in 0..10 {
            let mut c = t.knot().unwrap();
            let mut txn = c.zone_begin("large.test.").unwrap();
            let gone: Vec<Record> = (0..50)
                .map(|i| {
                    Record::without_ttl("big.large.test.", "A", format!("10.0.0.{}", i + round))
                })
                .collect();
            assert!(txn.unset_batch(&gone).unwrap().is_empty());
            txn.set(&Record::new("intruder.large.test.", 60, "A", "192.0.2.9"))
                .unwrap();
            txn.commit().unwrap();
            drop(c);
            restore::restore_zones(&t, archive).expect("restore");
            assert!(
                knot.is_running(),
                "knotd died in round {round} of {}",
                archive.display()
            );
            assert_eq!(served(&t, "large.test.", false), before, "round {round}");
        }
    }
}

#[test]
#[ignore = "minutes; run with --run-ignored only"]
fn a_200000_record_zone_restores_ten_times_on_both_paths() {
    ten_restores_of(200_000);
}

#[test]
#[ignore = "many minutes; run with --run-ignored only"]
fn a_1000000_record_zone_restores_ten_times_on_both_paths() {
    ten_restores_of(1_000_000);
}
