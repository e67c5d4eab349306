//! Marked transactions on a real knotd: `zone-begin` + marker and marker-unset + `zone-commit`
//! each go out in one write, so a client killed right after that write still has knotd run
//! both requests (the bytes are in the socket), and a transaction is never open without its
//! marker. The "killed" client is a raw socket closed without reading any reply.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use knot_ctl::codec::{self, Item, Items, TYPE_BLOCK, Unit};
use knot_ctl::{Client, Record};
use test_support::knot::{KnotServer, MINIMAL_ZONE};

const ZONE: &str = "example.test.";
const MARKER_OWNER: &str = "_marker.example.test.";

fn marker() -> Record {
    Record::new(MARKER_OWNER, 0, "TXT", "\"owner=test pid=1\"")
}

/// Writes `requests` as back-to-back blocks in one write and closes without reading.
fn write_and_die(knot: &KnotServer, requests: &[Items]) {
    let mut body = Vec::new();
    for r in requests {
        codec::encode_unit(&Unit::Data(r.clone()), &mut body).unwrap();
        body.push(TYPE_BLOCK);
    }
    let mut s = UnixStream::connect(knot.socket_path()).unwrap();
    s.write_all(&body).unwrap();
    drop(s);
}

fn record_items(command: &str, r: &Record) -> Items {
    Items::command(command)
        .with(Item::Zone, ZONE)
        .with(Item::Owner, &r.owner)
        .with_opt(Item::Ttl, r.ttl.map(|t| t.to_string()))
        .with(Item::Type, &r.rtype)
        .with(Item::Data, &r.data)
}

/// Polls (bounded) until `f` holds: knotd handles the dead client's requests asynchronously.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < Duration::from_secs(10), "never: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn start() -> KnotServer {
    KnotServer::start(&[(
        "example.test",
        &format!("{MINIMAL_ZONE}www 300 IN A 192.0.2.10\n"),
    )])
}

fn connect(knot: &KnotServer) -> Client<UnixStream> {
    Client::connect(knot.socket_path()).unwrap()
}

#[test]
fn a_client_killed_after_the_begin_write_leaves_a_marked_transaction() {
    let knot = start();
    write_and_die(
        &knot,
        &[
            Items::command("zone-begin").with(Item::Zone, ZONE),
            record_items("zone-set", &marker()),
        ],
    );
    eventually("the transaction is open", || {
        !connect(&knot)
            .open_transactions(Some(ZONE))
            .unwrap()
            .is_empty()
    });
    eventually("the marker is in it", || {
        connect(&knot).zone_markers(ZONE, MARKER_OWNER).unwrap() == vec![marker().data]
    });
    let mut c = connect(&knot);
    c.zone_abort(ZONE).unwrap();
    assert!(c.open_transactions(Some(ZONE)).unwrap().is_empty());
    assert!(c.zone_markers(ZONE, MARKER_OWNER).unwrap().is_empty());
}

#[test]
fn a_client_killed_after_the_commit_write_commits_without_the_marker() {
    let knot = start();
    let extra = Record::new("new.example.test.", 300, "A", "192.0.2.99");
    {
        let mut c = connect(&knot);
        let mut txn = c.zone_begin_marked(ZONE, &marker()).unwrap();
        txn.set(&extra).unwrap();
        txn.detach();
    }
    write_and_die(
        &knot,
        &[
            Items::command("zone-unset")
                .with(Item::Zone, ZONE)
                .with(Item::Owner, MARKER_OWNER)
                .with(Item::Type, "TXT")
                .with(Item::Data, &marker().data),
            Items::command("zone-commit").with(Item::Zone, ZONE),
        ],
    );
    eventually("the transaction is committed", || {
        connect(&knot)
            .open_transactions(Some(ZONE))
            .unwrap()
            .is_empty()
    });
    let mut c = connect(&knot);
    let served: Vec<Record> = c
        .zone_read(ZONE, None, None)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(served.iter().any(|r| r.owner == extra.owner), "{served:?}");
    assert!(
        !served.iter().any(|r| r.owner == MARKER_OWNER),
        "the marker was committed: {served:?}"
    );
}

#[test]
fn begin_marked_against_someone_elses_transaction_fails_and_leaves_no_marker() {
    let knot = start();
    let mut other = connect(&knot);
    other.zone_begin(ZONE).unwrap().detach();
    drop(other);
    let mut c = connect(&knot);
    let err = c.zone_begin_marked(ZONE, &marker()).err().unwrap();
    assert!(
        matches!(err, knot_ctl::Error::TooManyTransactions(_)),
        "{err:?}"
    );
    // The marker that went into the foreign transaction was taken out again.
    assert!(c.zone_markers(ZONE, MARKER_OWNER).unwrap().is_empty());
    // And the normal path: begin marked, commit unmarking.
    c.zone_abort(ZONE).unwrap();
    let txn = c.zone_begin_marked(ZONE, &marker()).unwrap();
    txn.commit_unmarking(&marker()).unwrap();
    assert!(c.open_transactions(Some(ZONE)).unwrap().is_empty());
    let n = c
        .zone_read(ZONE, Some(MARKER_OWNER), None)
        .unwrap()
        .filter(|r| r.is_ok())
        .count();
    assert_eq!(n, 0);
}
