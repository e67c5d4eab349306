//! Replies of newer Knot versions (3.4.1+, 3.5), which CI cannot run, replayed from recorded
//! byte sequences: markers in FILTER, the bare version string, extra zone-status rows.
//! The byte sequences follow the wire format of libknot/control (unchanged from 3.2.6 to 3.5.0).

use std::io::{self, Cursor, Read, Write};

use knot_ctl::codec::{self, Item, Items, Unit};
use knot_ctl::{Change, Client, Error, Record, ReloadOptions};

/// A byte stream that replays recorded server bytes and keeps what the client wrote.
struct Replay {
    reply: Cursor<Vec<u8>>,
    sent: Vec<u8>,
}

impl Read for Replay {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reply.read(buf)
    }
}

impl Write for Replay {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.sent.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn client(reply: &[u8]) -> Client<Replay> {
    Client::new(Replay {
        reply: Cursor::new(reply.to_vec()),
        sent: Vec::new(),
    })
}

/// The COMMAND of every request unit the client wrote.
fn sent_commands(c: Client<Replay>) -> Vec<String> {
    let mut out = Vec::new();
    let bytes = take_sent(c);
    for u in codec::decode(&bytes).unwrap() {
        if let Unit::Data(i) = u
            && let Some(cmd) = i.text(Item::Command)
        {
            out.push(cmd);
        }
    }
    out
}

fn take_sent(c: Client<Replay>) -> Vec<u8> {
    c.into_inner().sent
}

#[test]
fn bare_version_string_of_3_3_and_later() {
    // status version reply of 3.4.1: DATA{DATA="3.4.1"} BLOCK
    let mut c = client(b"\x01\x1a\x00\x053.4.1\x03");
    let v = c.version().unwrap();
    assert_eq!((v.major, v.minor, v.patch), (3, 4, 1));
    assert_eq!(v.text, "3.4.1");
    assert_eq!(
        take_sent(c),
        b"\x01\x10\x00\x06status\x19\x00\x07version\x03"
    );
}

#[test]
fn prefixed_version_string_of_3_2() {
    let mut c = client(b"\x01\x1a\x00\x0eVersion: 3.2.6\x03");
    assert_eq!(c.version().unwrap().text, "3.2.6");
}

fn status_unit(extra: bool, field: &str, value: &str, filter: Option<&str>) -> Unit {
    let items = Items::new()
        .with(Item::Zone, "sec.test.")
        .with(Item::Type, field)
        .with(Item::Data, value)
        .with_opt(Item::Filter, filter);
    if extra {
        Unit::Extra(items)
    } else {
        Unit::Data(items)
    }
}

#[test]
fn zone_status_markers_in_filter_and_extra_rows_3_5() {
    let bytes = codec::encode(&[
        status_unit(false, "role", "slave", Some("se")),
        status_unit(true, "serial", "-", Some("se")),
        status_unit(true, "transaction", "open", Some("se")),
        status_unit(true, "freeze", "yes", Some("se")),
        status_unit(true, "XFR-freeze", "-", Some("se")),
        status_unit(true, "catalog", "cat.test.", Some("se")),
        status_unit(true, "loading", "running", Some("se")),
        status_unit(true, "refresh", "+59s", Some("se")),
        status_unit(true, "expiration", "pending", Some("se")),
        status_unit(true, "flush", "-", Some("se")),
        Unit::Block,
    ])
    .unwrap();
    let mut c = client(&bytes);
    let s = c.zone_status("sec.test").unwrap();
    assert_eq!(s.zone, "sec.test.");
    assert_eq!(s.role.as_deref(), Some("slave"));
    assert_eq!(s.serial, None);
    assert!(s.transaction && s.secondary && s.empty && !s.catalog_member);
    assert_eq!(s.freeze.as_deref(), Some("yes"));
    assert_eq!(s.catalog.as_deref(), Some("cat.test."));
    let events: Vec<(&str, &str)> = s
        .events
        .iter()
        .map(|e| (e.name.as_str(), e.value.as_str()))
        .collect();
    assert_eq!(
        events,
        vec![
            ("loading", "running"),
            ("refresh", "+59s"),
            ("expiration", "pending")
        ]
    );
}

#[test]
fn zone_status_markers_in_flags_up_to_3_4_0() {
    let items = Items::new()
        .with(Item::Flags, "m")
        .with(Item::Zone, "member.test.")
        .with(Item::Type, "serial")
        .with(Item::Data, "2024010101");
    let bytes = codec::encode(&[Unit::Data(items), Unit::Block]).unwrap();
    let s = client(&bytes).zone_status("member.test").unwrap();
    assert!(s.catalog_member && !s.secondary && !s.empty);
    assert_eq!(s.serial, Some(2024010101));
}

fn diff_unit(marker_item: Item, marker: &str, owner: &str, data: &str) -> Unit {
    Unit::Data(
        Items::new()
            .with(marker_item, marker)
            .with(Item::Zone, "ex.test.")
            .with(Item::Owner, owner)
            .with(Item::Ttl, "300")
            .with(Item::Type, "A")
            .with(Item::Data, data),
    )
}

#[test]
fn zone_diff_markers_in_filter_from_3_4_1_and_flags_before() {
    for marker_item in [Item::Filter, Item::Flags] {
        let bytes = codec::encode(&[
            diff_unit(marker_item, "-", "old.ex.test.", "192.0.2.1"),
            diff_unit(marker_item, "+", "new.ex.test.", "192.0.2.2"),
            Unit::Block,
        ])
        .unwrap();
        let diff = client(&bytes).zone_diff("ex.test").unwrap();
        assert_eq!(diff.len(), 2);
        assert_eq!(diff[0].change, Change::Removed);
        assert_eq!(
            diff[0].record,
            Record::new("old.ex.test.", 300, "A", "192.0.2.1")
        );
        assert_eq!(diff[1].change, Change::Added);
    }
}

#[test]
fn zone_validate_is_sent_to_3_4_but_not_to_3_2() {
    let mut c = client(b"\x01\x1a\x00\x053.4.1\x03\x03");
    let reply = c
        .call(&[Items::command("zone-validate").with(Item::Zone, "ex.test")])
        .unwrap();
    assert!(reply.is_empty());
    assert_eq!(sent_commands(c), vec!["status", "zone-validate"]);

    let mut c = client(b"\x01\x1a\x00\x0eVersion: 3.2.6\x03");
    let e = c
        .call(&[Items::command("zone-validate").with(Item::Zone, "ex.test")])
        .unwrap_err();
    assert!(matches!(e, Error::UnsupportedCommand { .. }));
    assert_eq!(sent_commands(c), vec!["status"]);
}

#[test]
fn blocking_reload_is_not_sent_when_zone_status_shows_a_transaction() {
    let bytes = codec::encode(&[
        Unit::Data(
            Items::new()
                .with(Item::Zone, "ex.test.")
                .with(Item::Type, "transaction")
                .with(Item::Data, "open"),
        ),
        Unit::Block,
    ])
    .unwrap();
    let mut c = client(&bytes);
    let e = c
        .zone_reload(
            "ex.test",
            ReloadOptions {
                blocking: true,
                force: false,
            },
        )
        .unwrap_err();
    assert!(matches!(e, Error::TransactionOpen { .. }));
    let sent = take_sent(c);
    let units = codec::decode(&sent).unwrap();
    // Only zone-status (FILTER=t) went out.
    assert_eq!(
        units,
        vec![
            Unit::Data(
                Items::command("zone-status")
                    .with(Item::Zone, "ex.test")
                    .with(Item::Filter, "t")
            ),
            Unit::Block,
        ]
    );
}

#[test]
fn parser_error_with_3_5_detail_maps_back_to_its_record() {
    let bad = Record::new("b", 60, "A", "x");
    let error = Items::command("zone-set")
        .with(Item::Error, "parser failed, invalid IPv4 address")
        .with(Item::Zone, "ex.test")
        .with(Item::Owner, "b")
        .with(Item::Ttl, "60")
        .with(Item::Type, "A")
        .with(Item::Data, "x");
    let bytes = codec::encode(&[Unit::Data(error), Unit::Block]).unwrap();
    let mut c = client(&bytes);
    let failures = c
        .zone_set_batch("ex.test", &[Record::new("a", 60, "A", "192.0.2.1"), bad])
        .unwrap();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].index, 1);
    assert!(
        matches!(&failures[0].error, Error::ParserFailed(m) if m.text.ends_with("invalid IPv4 address"))
    );
}

#[test]
fn stop_reply_is_block_then_end() {
    let c = client(b"\x03\x00");
    c.stop().unwrap();
}

#[test]
fn malformed_replies_are_errors_not_panics() {
    // Invalid item code inside a DATA unit.
    let mut c = client(b"\x01\x1f\x00\x00\x03");
    assert!(matches!(c.status(), Err(Error::Protocol(_))));
    assert!(matches!(c.status(), Err(Error::Broken)));
    // Connection closed mid-stream of a zone-read.
    let bytes = codec::encode(&[Unit::Data(Items::new().with(Item::Owner, "a.ex.test."))]).unwrap();
    let mut c = client(&bytes[..bytes.len() - 3]);
    let results: Vec<_> = c.zone_read("ex.test", None, None).unwrap().collect();
    assert!(
        matches!(results.as_slice(), [Err(Error::Protocol(_))]),
        "{results:?}"
    );
    // END instead of a reply.
    let mut c = client(b"\x00");
    assert!(matches!(c.status(), Err(Error::Protocol(_))));
}
