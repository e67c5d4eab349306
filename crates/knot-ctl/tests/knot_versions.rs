//! The control-protocol differences between Knot 3.2 (Debian 12) and Knot 3.4 (Debian 13, the
//! chart's major.minor), asserted on the real knotd of the running variant
//! (`DNSDHCP_TEST_DAEMONS=host|trixie`, see test_support::daemons): each test checks the raw
//! reply shows the behaviour of the version it talks to, and that the typed client handles it.

use std::os::unix::net::UnixStream;

use knot_ctl::codec::{Item, Items, Unit};
use knot_ctl::{Change, Client, Error, Record, Version};
use test_support::knot::{KnotServer, MINIMAL_ZONE};

const ZONE: &str = "example.test";

fn zone_text() -> String {
    format!("{MINIMAL_ZONE}www 300 IN A 192.0.2.10\nwww 300 IN A 192.0.2.11\n")
}

fn start() -> (KnotServer, Client<UnixStream>, Version) {
    let knot = KnotServer::start(&[(ZONE, &zone_text())]);
    let mut c = Client::connect(knot.socket_path()).expect("connect");
    let v = c.version().expect("version");
    // The fixture's variant and the version knotd reports agree.
    assert_eq!(
        knot.daemons().knot_3_4(),
        (v.major, v.minor) >= (3, 4),
        "{v:?}"
    );
    (knot, c, v)
}

fn at_least(v: &Version, major: u32, minor: u32, patch: u32) -> bool {
    (v.major, v.minor, v.patch) >= (major, minor, patch)
}

fn data_units(reply: &[Unit]) -> Vec<&Items> {
    reply
        .iter()
        .filter_map(|u| match u {
            Unit::Data(i) | Unit::Extra(i) => Some(i),
            _ => None,
        })
        .collect()
}

#[test]
fn status_version_is_prefixed_on_3_2_and_bare_from_3_3() {
    let (knot, mut c, v) = start();
    let reply = c
        .call(&[Items::command("status").with(Item::Type, "version")])
        .unwrap();
    let units = data_units(&reply);
    assert_eq!(units.len(), 1, "{reply:?}");
    let raw = units[0].text(Item::Data).unwrap();
    if at_least(&v, 3, 3, 0) {
        assert_eq!(raw, v.text, "bare version string");
    } else {
        assert_eq!(raw, format!("Version: {}", v.text));
    }
    // The parsed version is the daemon's own.
    let line = knot.knotd_version_line();
    assert!(line.ends_with(&v.text), "{line} vs {v:?}");
}

#[test]
fn zone_diff_markers_in_flags_on_3_2_and_filter_from_3_4_1() {
    let (_knot, mut c, v) = start();
    let mut txn = c.zone_begin(ZONE).unwrap();
    txn.set(&Record::new("new", 120, "A", "192.0.2.50"))
        .unwrap();
    txn.unset("www", Some("A"), Some("192.0.2.11")).unwrap();
    txn.detach();
    let reply = c
        .call(&[Items::command("zone-diff").with(Item::Zone, ZONE)])
        .unwrap();
    let units = data_units(&reply);
    assert_eq!(units.len(), 2, "{reply:?}");
    let (marker_item, other) = if at_least(&v, 3, 4, 1) {
        (Item::Filter, Item::Flags)
    } else {
        (Item::Flags, Item::Filter)
    };
    let markers: Vec<String> = units.iter().filter_map(|u| u.text(marker_item)).collect();
    assert_eq!(markers, ["-", "+"], "{reply:?}");
    assert!(
        units
            .iter()
            .all(|u| u.get(other).is_none_or(|b| b.is_empty())),
        "{reply:?}"
    );
    // The typed client reads both. Knot 3.4.6 reports a removed record with TTL 0; 3.2 with its
    // TTL (found here, not in newer-daemons.md).
    let diff = c.zone_diff(ZONE).unwrap();
    assert_eq!(diff.len(), 2, "{diff:?}");
    assert_eq!(diff[0].change, Change::Removed);
    let removed_ttl = if at_least(&v, 3, 4, 0) { 0 } else { 300 };
    assert_eq!(
        diff[0].record,
        Record::new("www.example.test.", removed_ttl, "A", "192.0.2.11")
    );
    assert_eq!(diff[1].change, Change::Added);
    assert_eq!(
        diff[1].record,
        Record::new("new.example.test.", 120, "A", "192.0.2.50")
    );
    c.zone_abort(ZONE).unwrap();
}

#[test]
fn zone_status_rows_of_each_version() {
    let (_knot, mut c, v) = start();
    let reply = c
        .call(&[Items::command("zone-status").with(Item::Zone, ZONE)])
        .unwrap();
    let units = data_units(&reply);
    let fields: Vec<String> = units.iter().filter_map(|u| u.text(Item::Type)).collect();
    for f in ["role", "serial", "transaction", "freeze"] {
        assert!(fields.iter().any(|x| x == f), "{f} missing: {fields:?}");
    }
    // Raw rows as knotd sends them (knotc hides some): 3.4 adds DNSSEC-validate and DNSKEY-sync;
    // catalog, XFR-freeze, DS-check and DS-push are already there on 3.2.6.
    let mut expected = vec![
        "role",
        "serial",
        "transaction",
        "freeze",
        "XFR-freeze",
        "catalog",
        "load",
        "refresh",
        "update",
        "expiration",
        "flush",
        "backup/restore",
        "notify",
        "re-sign",
    ];
    if at_least(&v, 3, 4, 0) {
        expected.extend(["DNSSEC-validate", "DS-check", "DS-push", "DNSKEY-sync"]);
    } else {
        expected.extend(["DS-check", "DS-push"]);
    }
    assert_eq!(fields, expected);
    // No markers for a plain primary: FLAGS and FILTER are empty (3.2 sends FLAGS:'', 3.4
    // FILTER:'').
    let marker_item = if at_least(&v, 3, 4, 0) {
        Item::Filter
    } else {
        Item::Flags
    };
    assert!(
        units
            .iter()
            .all(|u| u.get(Item::Flags).is_none_or(|b| b.is_empty())
                && u.get(Item::Filter).is_none_or(|b| b.is_empty())),
        "{reply:?}"
    );
    assert!(
        units.iter().all(|u| u.get(marker_item).is_some()),
        "{marker_item:?} missing: {reply:?}"
    );
    // The typed view is the same on both.
    let s = c.zone_status(ZONE).unwrap();
    assert_eq!(s.role.as_deref(), Some("master"));
    assert_eq!(s.serial, Some(1));
    assert!(!s.transaction && !s.empty && !s.secondary && !s.catalog_member);
    let names: Vec<&str> = s.events.iter().map(|e| e.name.as_str()).collect();
    for f in ["role", "serial", "transaction", "freeze", "catalog"] {
        assert!(!names.contains(&f), "{f} taken for an event: {names:?}");
    }
}

#[test]
fn zone_set_without_ttl_on_a_new_node() {
    // 3.2: "no TTL specified"; 3.4: the default TTL (found here, not in newer-daemons.md). The
    // product never sets a record without a TTL.
    let (_knot, mut c, v) = start();
    let txn = c.zone_begin(ZONE).unwrap();
    txn.detach();
    let r = c.zone_set(ZONE, &Record::without_ttl("nottl", "A", "192.0.2.1"));
    if at_least(&v, 3, 4, 0) {
        r.unwrap();
        let got: Vec<Record> = c
            .call(&[Items::command("zone-get")
                .with(Item::Zone, ZONE)
                .with(Item::Owner, "nottl")])
            .map(|reply| {
                data_units(&reply)
                    .iter()
                    .map(|u| {
                        Record::new(
                            u.text(Item::Owner).unwrap(),
                            u.text(Item::Ttl).unwrap().parse().unwrap(),
                            u.text(Item::Type).unwrap(),
                            u.text(Item::Data).unwrap(),
                        )
                    })
                    .collect()
            })
            .unwrap();
        assert_eq!(
            got,
            vec![Record::new("nottl.example.test.", 3600, "A", "192.0.2.1")]
        );
    } else {
        assert!(matches!(r, Err(Error::NoTtl(_))), "{r:?}");
    }
    c.zone_abort(ZONE).unwrap();
}

#[test]
fn zone_validate_only_from_3_4() {
    let (_knot, mut c, v) = start();
    let r = c.call(&[Items::command("zone-validate").with(Item::Zone, ZONE)]);
    if at_least(&v, 3, 4, 0) {
        assert!(r.unwrap().iter().all(|u| !matches!(u, Unit::Data(_))));
    } else {
        assert!(
            matches!(&r, Err(Error::UnsupportedCommand { needs, .. }) if needs == "3.4.0"),
            "{r:?}"
        );
    }
}

#[test]
fn storage_directory_must_exist_before_the_first_commit() {
    // newer-daemons.md says Knot 3.4 does not create database.storage; neither does 3.2.6: on
    // both, the first zone-commit fails with "not exists" (zone-in-journal). The fixture creates
    // it (and the chart's storage is a mounted volume).
    let knot = KnotServer::builder()
        .zone(ZONE, &zone_text())
        .create_storage_dir(false)
        .start();
    let mut c = Client::connect(knot.socket_path()).unwrap();
    let mut txn = c.zone_begin(ZONE).unwrap();
    txn.set(&Record::new("new", 60, "A", "192.0.2.5")).unwrap();
    let r = txn.commit();
    assert!(matches!(&r, Err(Error::NotExists(_))), "{r:?}");
    assert!(!knot.storage_dir().exists());
    if c.zone_status(ZONE).unwrap().transaction {
        c.zone_abort(ZONE).unwrap();
    }
    // With the directory created, the same commit succeeds.
    std::fs::create_dir(knot.storage_dir()).unwrap();
    let mut txn = c.zone_begin(ZONE).unwrap();
    txn.set(&Record::new("new", 60, "A", "192.0.2.5")).unwrap();
    txn.commit().unwrap();
    assert_eq!(c.zone_status(ZONE).unwrap().serial, Some(2));
}
