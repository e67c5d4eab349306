//! Every typed command against a real knotd: Debian 12's 3.2.6 or Debian 13's 3.4.6
//! (`DNSDHCP_TEST_DAEMONS=host|trixie`); version-specific behaviour is in knot_versions.rs.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use knot_ctl::codec::{Item, Items, Unit};
use knot_ctl::{
    BackupOptions, Change, Client, Components, Error, FlushOptions, Record, ReloadOptions, Timeouts,
};
use test_support::knot::{KnotServer, MINIMAL_ZONE};

const ZONE: &str = "example.test";

fn zone_text() -> String {
    format!(
        "{MINIMAL_ZONE}www 300 IN A 192.0.2.10\nwww 300 IN A 192.0.2.11\nmail 300 IN MX 10 mx.example.net.\n"
    )
}

fn start() -> (KnotServer, Client<UnixStream>) {
    let knot = KnotServer::start(&[(ZONE, &zone_text())]);
    let client = Client::connect(knot.socket_path()).expect("connect");
    (knot, client)
}

fn read_all(c: &mut Client<UnixStream>, zone: &str) -> Vec<Record> {
    c.zone_read(zone, None, None)
        .expect("zone-read")
        .collect::<Result<Vec<_>, _>>()
        .expect("records")
}

fn wait_loaded(c: &mut Client<UnixStream>, zone: &str) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(serial) = c.zone_status(zone).expect("zone-status").serial {
            return serial;
        }
        assert!(Instant::now() < deadline, "zone {zone} never loaded");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn status_and_version() {
    let (knot, mut c) = start();
    c.status().unwrap();
    let v = c.version().unwrap();
    assert_eq!(v.major, 3);
    assert!(!v.text.starts_with("Version"), "{v:?}");
    assert!(knot.knotd_version_line().contains(&v.text));
}

#[test]
fn zone_status_fields_and_transaction_flag() {
    let (_knot, mut c) = start();
    let s = c.zone_status(ZONE).unwrap();
    assert_eq!(s.zone, "example.test.");
    assert_eq!(s.role.as_deref(), Some("master"));
    assert_eq!(s.serial, Some(1));
    assert!(!s.transaction);
    assert!(!s.empty && !s.secondary && !s.catalog_member);
    assert!(s.freeze.is_none());
    let txn = c.zone_begin(ZONE).unwrap();
    txn.detach();
    assert!(c.zone_status(ZONE).unwrap().transaction);
    assert_eq!(
        c.open_transactions(None).unwrap(),
        vec!["example.test.".to_string()]
    );
    c.zone_abort(ZONE).unwrap();
    assert!(!c.zone_status(ZONE).unwrap().transaction);
    let all = c.zone_status_all().unwrap();
    assert_eq!(all.len(), 1);
    assert!(
        matches!(c.zone_status("nope.test"), Err(Error::NoSuchZone(m)) if m.text == "no such zone found")
    );
}

#[test]
fn zone_status_of_zone_without_file_is_empty() {
    let knot = KnotServer::builder()
        .zone(ZONE, MINIMAL_ZONE)
        .zone_without_file("empty.test")
        .start();
    let mut c = Client::connect(knot.socket_path()).unwrap();
    let s = c.zone_status("empty.test").unwrap();
    assert_eq!(s.serial, None);
    assert!(s.empty, "{s:?}");
}

#[test]
fn set_commit_read_and_diff() {
    let (knot, mut c) = start();
    let mut txn = c.zone_begin(ZONE).unwrap();
    txn.set(&Record::new("new", 120, "A", "192.0.2.50"))
        .unwrap();
    txn.unset("www", Some("A"), Some("192.0.2.11")).unwrap();
    let diff = txn.diff().unwrap();
    assert_eq!(diff.len(), 2, "{diff:?}");
    assert_eq!(diff[0].change, Change::Removed);
    // Knot 3.4.6 reports a removed record with TTL 0 (knot_versions.rs).
    let removed_ttl = if knot.daemons().knot_3_4() { 0 } else { 300 };
    assert_eq!(
        diff[0].record,
        Record::new("www.example.test.", removed_ttl, "A", "192.0.2.11")
    );
    assert_eq!(diff[1].change, Change::Added);
    assert_eq!(
        diff[1].record,
        Record::new("new.example.test.", 120, "A", "192.0.2.50")
    );
    // zone-get sees the transaction's copy, zone-read the live zone.
    let got: Vec<_> = txn
        .get(Some("new"), None)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        got,
        vec![Record::new("new.example.test.", 120, "A", "192.0.2.50")]
    );
    let live: Vec<_> = txn.zone_read(ZONE, Some("new"), None).unwrap().collect();
    assert!(
        matches!(live.as_slice(), [Err(Error::NoSuchNode(_))]),
        "{live:?}"
    );
    txn.commit().unwrap();
    let recs = read_all(&mut c, ZONE);
    assert!(recs.contains(&Record::new("new.example.test.", 120, "A", "192.0.2.50")));
    assert!(!recs.iter().any(|r| r.data == "192.0.2.11"));
    assert_eq!(c.zone_status(ZONE).unwrap().serial, Some(2));
    // Filtered reads: owner (relative, absolute, apex) and type.
    let www: Vec<_> = c
        .zone_read(ZONE, Some("www.example.test."), Some("A"))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        www,
        vec![Record::new("www.example.test.", 300, "A", "192.0.2.10")]
    );
    let soa: Vec<_> = c
        .zone_read(ZONE, Some("@"), Some("SOA"))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(soa.len(), 1);
    assert!(soa[0].data.contains(" 2 3600 900 604800 300"), "{soa:?}");
    let none: Vec<_> = c
        .zone_read(ZONE, Some("www"), Some("TXT"))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(none.is_empty());
    // Removing a whole node.
    let mut txn = c.zone_begin(ZONE).unwrap();
    txn.unset("mail", None, None).unwrap();
    txn.commit().unwrap();
    assert!(
        !read_all(&mut c, ZONE)
            .iter()
            .any(|r| r.owner == "mail.example.test.")
    );
}

#[test]
fn transaction_guard_aborts_on_drop() {
    let (_knot, mut c) = start();
    {
        let mut txn = c.zone_begin(ZONE).unwrap();
        txn.set(&Record::new("gone", 60, "A", "192.0.2.99"))
            .unwrap();
        // dropped without commit
    }
    assert!(!c.zone_status(ZONE).unwrap().transaction);
    assert!(
        !read_all(&mut c, ZONE)
            .iter()
            .any(|r| r.owner.starts_with("gone"))
    );
    let txn = c.zone_begin(ZONE).unwrap();
    txn.abort().unwrap();
    assert!(!c.zone_status(ZONE).unwrap().transaction);
}

#[test]
fn errors_map_to_variants() {
    let (knot, mut c) = start();
    assert!(
        matches!(c.zone_commit(ZONE), Err(Error::NoActiveTransaction(m)) if m.text == "no active transaction")
    );
    assert!(matches!(
        c.zone_set(ZONE, &Record::new("a", 60, "A", "192.0.2.1")),
        Err(Error::NoActiveTransaction(_))
    ));
    assert!(matches!(
        c.zone_begin("nope.test").map(|t| t.detach()),
        Err(Error::NoSuchZone(_))
    ));
    let txn = c.zone_begin(ZONE).unwrap();
    txn.detach();
    assert!(matches!(
        c.zone_begin(ZONE).map(|t| t.detach()),
        Err(Error::TooManyTransactions(_))
    ));
    let ns1 = Record::new("ns1", 3600, "A", "192.0.2.1");
    assert!(
        matches!(c.zone_set(ZONE, &ns1), Err(Error::RecordExists(m)) if m.text == "such record already exists in zone" && m.zone.as_deref() == Some(ZONE))
    );
    assert!(matches!(
        c.zone_unset(ZONE, "www", Some("A"), Some("192.0.2.99")),
        Err(Error::NoSuchRecord(_))
    ));
    assert!(matches!(
        c.zone_unset(ZONE, "nonexistent", None, None),
        Err(Error::NoSuchNode(_))
    ));
    assert!(matches!(
        c.zone_set(ZONE, &Record::new("bad", 60, "A", "not-an-address")),
        Err(Error::ParserFailed(_))
    ));
    assert!(matches!(
        c.zone_set(ZONE, &Record::new("x.other.test.", 60, "A", "192.0.2.1")),
        Err(Error::OutOfZone(_))
    ));
    // Knot 3.4 takes the default TTL instead (knot_versions.rs).
    if !knot.daemons().knot_3_4() {
        assert!(matches!(
            c.zone_set(ZONE, &Record::without_ttl("nottl", "A", "192.0.2.1")),
            Err(Error::NoTtl(_))
        ));
    }
    // Without a TTL, an existing RRset's TTL is used.
    c.zone_set(ZONE, &Record::without_ttl("www", "A", "192.0.2.12"))
        .unwrap();
    c.zone_abort(ZONE).unwrap();
    // Commit failing a semantic check keeps the transaction open; the guard then aborts it.
    let mut txn = c.zone_begin(ZONE).unwrap();
    txn.set(&Record::new("www", 300, "CNAME", "ns1")).unwrap();
    let e = txn.commit().unwrap_err();
    assert!(matches!(e, Error::SemanticCheck(_)), "{e:?}");
    assert!(!c.zone_status(ZONE).unwrap().transaction);
    // Still in step after all those errors.
    c.status().unwrap();
}

#[test]
fn batch_of_1000_with_3_bad_records_reports_exactly_those() {
    let (_knot, mut c) = start();
    let mut records: Vec<Record> = (0..1000)
        .map(|i| {
            Record::new(
                format!("h{i}"),
                300,
                "A",
                format!("10.0.{}.{}", i / 256, i % 256),
            )
        })
        .collect();
    records[17] = Record::new("h17", 300, "A", "300.1.2.3"); // parser failed
    records[500] = Record::new("h500.elsewhere.test.", 300, "A", "10.9.9.9"); // out of zone
    records[998] = Record::new("ns1", 3600, "A", "192.0.2.1"); // already exists
    let mut txn = c.zone_begin(ZONE).unwrap();
    let failures = txn.set_batch(&records).unwrap();
    let idx: Vec<usize> = failures.iter().map(|f| f.index).collect();
    assert_eq!(idx, vec![17, 500, 998], "{failures:?}");
    assert!(matches!(failures[0].error, Error::ParserFailed(_)));
    assert!(matches!(failures[1].error, Error::OutOfZone(_)));
    assert!(matches!(failures[2].error, Error::RecordExists(_)));
    txn.commit().unwrap();
    let recs = read_all(&mut c, ZONE);
    let hosts = recs.iter().filter(|r| r.owner.starts_with('h')).count();
    assert_eq!(hosts, 997);
    // Batched unset of what we added, with one missing record reported by index.
    let mut to_remove: Vec<Record> = records
        .iter()
        .enumerate()
        .filter(|(i, _)| ![17, 500, 998].contains(i))
        .map(|(_, r)| r.clone())
        .collect();
    to_remove.insert(3, Record::new("h3", 300, "A", "10.99.99.99"));
    let mut txn = c.zone_begin(ZONE).unwrap();
    let failures = txn.unset_batch(&to_remove).unwrap();
    assert_eq!(
        failures.iter().map(|f| f.index).collect::<Vec<_>>(),
        vec![3]
    );
    assert!(matches!(failures[0].error, Error::NoSuchRecord(_)));
    txn.commit().unwrap();
    assert!(
        !read_all(&mut c, ZONE)
            .iter()
            .any(|r| r.owner.starts_with('h'))
    );
}

#[test]
fn repeated_record_in_a_batch_is_not_sent_and_the_first_survives() {
    let (_knot, mut c) = start();
    let a = Record::new("dup", 60, "A", "192.0.2.33");
    let mut txn = c.zone_begin(ZONE).unwrap();
    let failures = txn
        .set_batch(&[
            a.clone(),
            Record::new("other", 60, "A", "192.0.2.34"),
            a.clone(),
        ])
        .unwrap();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].index, 2);
    assert!(matches!(
        failures[0].error,
        Error::DuplicateInBatch { first: 0 }
    ));
    txn.commit().unwrap();
    let dup: Vec<_> = c
        .zone_read(ZONE, Some("dup"), None)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        dup,
        vec![Record::new("dup.example.test.", 60, "A", "192.0.2.33")]
    );
}

#[test]
fn txt_rdata_round_trips_byte_exact() {
    let (_knot, mut c) = start();
    let texts = [
        r#""hello world""#,
        r#""semi;colon" "two; strings""#,
        r#""quote\"inside" "back\\slash""#,
        r#""tab\009and\255byte" "" "(parens)""#,
        r#""v=spf1 ip4:192.0.2.0/24 -all""#,
    ];
    let records: Vec<Record> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| Record::new(format!("txt{i}"), 60, "TXT", *t))
        .collect();
    let mut txn = c.zone_begin(ZONE).unwrap();
    txn.set(&records[0]).unwrap();
    assert!(txn.set_batch(&records[1..]).unwrap().is_empty());
    txn.commit().unwrap();
    for (i, t) in texts.iter().enumerate() {
        let got: Vec<_> = c
            .zone_read(ZONE, Some(&format!("txt{i}")), Some("TXT"))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].data, *t, "record {i}");
        assert_eq!(got[0].owner, format!("txt{i}.example.test."));
    }
}

#[test]
fn blocking_reload_flush_restore_refused_while_transaction_open() {
    let (knot, mut c) = start();
    let txn = c.zone_begin(ZONE).unwrap();
    txn.detach();
    let blocking = ReloadOptions {
        blocking: true,
        force: false,
    };
    assert!(
        matches!(c.zone_reload(ZONE, blocking), Err(Error::TransactionOpen { zone, .. }) if zone == "example.test.")
    );
    let flush = FlushOptions {
        blocking: true,
        ..Default::default()
    };
    assert!(matches!(
        c.zone_flush(Some(ZONE), &flush),
        Err(Error::TransactionOpen { .. })
    ));
    let dir = knot.dir().join("never");
    assert!(matches!(
        c.zone_restore(&[ZONE], &BackupOptions::new(&dir)),
        Err(Error::TransactionOpen { .. })
    ));
    assert!(matches!(
        c.zone_restore(&[], &BackupOptions::new(&dir)),
        Err(Error::TransactionOpen { .. })
    ));
    // The control channel still answers (nothing blocking was sent).
    c.status().unwrap();
    c.zone_abort(ZONE).unwrap();
}

#[test]
fn reload_picks_up_changed_zone_file() {
    let (knot, mut c) = start();
    let write_zone = |serial: u32, extra: &str| {
        let text = zone_text().replace("hostmaster 1 ", &format!("hostmaster {serial} ")) + extra;
        std::fs::write(knot.zone_file(ZONE), format!("$ORIGIN {ZONE}.\n{text}")).unwrap();
        // knotd skips a zone file whose mtime equals the loaded one; a rewrite within the same
        // clock tick as the previous load keeps it, so move the mtime on explicitly.
        let file = std::fs::File::options()
            .append(true)
            .open(knot.zone_file(ZONE))
            .unwrap();
        file.set_modified(std::time::SystemTime::now() + Duration::from_secs(u64::from(serial)))
            .unwrap();
    };
    // Blocking: the reply comes after the reload.
    write_zone(7, "added 60 IN A 192.0.2.77\n");
    let blocking = ReloadOptions {
        blocking: true,
        force: false,
    };
    c.zone_reload(ZONE, blocking).unwrap();
    let serial = c.zone_status(ZONE).unwrap().serial;
    assert_eq!(serial, Some(7), "knotd log:\n{}", knot.log());
    assert!(
        read_all(&mut c, ZONE)
            .iter()
            .any(|r| r.owner == "added.example.test.")
    );
    // Force (3.2: re-creates the zone to reload modules): the reply does not wait for the load
    // even with B, so wait for the new serial.
    write_zone(8, "");
    c.zone_reload(
        ZONE,
        ReloadOptions {
            blocking: true,
            force: true,
        },
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while c.zone_status(ZONE).unwrap().serial != Some(8) {
        assert!(
            Instant::now() < deadline,
            "forced reload never loaded serial 8:\n{}",
            knot.log()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // Non-blocking: OK only means queued.
    c.zone_reload(ZONE, ReloadOptions::default()).unwrap();
    assert!(matches!(
        c.zone_reload("nope.test", ReloadOptions::default()),
        Err(Error::NoSuchZone(_))
    ));
}

#[test]
fn transaction_left_by_dead_clients_is_detected() {
    // Knot 3.2 serves one connection at a time: no client may sit idle while knotc runs.
    let (knot, c) = start();
    drop(c);
    let begin_bytes = || {
        let mut req = Vec::new();
        let begin = Items::command("zone-begin").with(Item::Zone, ZONE);
        knot_ctl::codec::encode_unit(&Unit::Data(begin), &mut req).unwrap();
        req.push(0x03);
        req
    };
    // 1. A knotc process that began a transaction and exited.
    knot.knotc_ok(&["zone-begin", ZONE]);
    let mut c = Client::connect(knot.socket_path()).unwrap();
    assert!(c.zone_status(ZONE).unwrap().transaction);
    c.zone_abort(ZONE).unwrap();
    drop(c);
    // 2. A raw connection that began a transaction and vanished without END.
    {
        let mut raw = UnixStream::connect(knot.socket_path()).unwrap();
        raw.write_all(&begin_bytes()).unwrap();
        let mut b = [0u8; 1];
        raw.read_exact(&mut b).unwrap();
        assert_eq!(b[0], 0x03);
    }
    let mut c = Client::connect(knot.socket_path()).unwrap();
    assert!(c.zone_status(ZONE).unwrap().transaction);
    c.zone_abort(ZONE).unwrap();
    drop(c);
    // 3. A child process killed (SIGKILL) after beginning its transaction.
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!(
            "/usr/sbin/knotc -s {} zone-begin {ZONE} >/dev/null && echo begun && exec sleep 60",
            knot.socket_path().display()
        ))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = [0u8; 6];
    child.stdout.take().unwrap().read_exact(&mut line).unwrap();
    assert_eq!(&line, b"begun\n");
    child.kill().unwrap();
    child.wait().unwrap();
    let mut fresh = Client::connect(knot.socket_path()).unwrap();
    let s = fresh.zone_status(ZONE).unwrap();
    assert!(s.transaction, "{s:?}");
    assert_eq!(
        fresh.open_transactions(None).unwrap(),
        vec!["example.test.".to_string()]
    );
    assert!(matches!(
        fresh.zone_begin(ZONE).map(|t| t.detach()),
        Err(Error::TooManyTransactions(_))
    ));
    fresh.zone_abort(ZONE).unwrap();
    assert!(fresh.open_transactions(None).unwrap().is_empty());
}

#[test]
fn flush_into_outdir() {
    let (knot, mut c) = start();
    let out = knot.dir().join("out");
    std::fs::create_dir(&out).unwrap();
    let mut txn = c.zone_begin(ZONE).unwrap();
    txn.set(&Record::new("flushed", 60, "A", "192.0.2.42"))
        .unwrap();
    txn.commit().unwrap();
    let opts = FlushOptions {
        outdir: Some(out.clone()),
        blocking: true,
        force: false,
    };
    c.zone_flush(Some(ZONE), &opts).unwrap();
    let text = std::fs::read_to_string(out.join("example.test.zone")).unwrap();
    assert!(text.contains("192.0.2.42"), "{text}");
    c.zone_flush(Some(ZONE), &FlushOptions::default()).unwrap();
    c.zone_flush(
        None,
        &FlushOptions {
            force: true,
            ..Default::default()
        },
    )
    .unwrap();
}

#[test]
fn backup_then_restore_gives_back_the_same_records() {
    let (knot, mut c) = start();
    let mut txn = c.zone_begin(ZONE).unwrap();
    txn.set(&Record::new("kept", 60, "TXT", r#""before backup""#))
        .unwrap();
    txn.commit().unwrap();
    let before = read_all(&mut c, ZONE);
    let dir = knot.dir().join("backup");
    c.zone_backup(&[ZONE], &BackupOptions::new(&dir)).unwrap();
    assert!(dir.join("knot_backup.label").exists());
    assert!(matches!(
        c.zone_backup(&[ZONE], &BackupOptions::new(&dir)),
        Err(Error::AlreadyExists(_))
    ));
    // Change the zone, then restore.
    let mut txn = c.zone_begin(ZONE).unwrap();
    txn.unset("kept", None, None).unwrap();
    txn.set(&Record::new("after", 60, "A", "192.0.2.200"))
        .unwrap();
    txn.commit().unwrap();
    assert_ne!(read_all(&mut c, ZONE), before);
    c.zone_restore(&[ZONE], &BackupOptions::new(&dir)).unwrap();
    wait_loaded(&mut c, ZONE);
    assert_eq!(read_all(&mut c, ZONE), before);
    // Component filters: journal on, timers off; all zones; a conflicting pair is refused.
    let dir2 = knot.dir().join("backup2");
    let opts = BackupOptions {
        components: Components {
            journal: Some(true),
            timers: Some(false),
            ..Default::default()
        },
        ..BackupOptions::new(&dir2)
    };
    c.zone_backup(&[], &opts).unwrap();
    assert!(dir2.join("journal").exists());
    assert!(!dir2.join("timers").exists());
    let missing = knot.dir().join("missing");
    let e = c
        .zone_restore(&[ZONE], &BackupOptions::new(&missing))
        .unwrap_err();
    assert!(matches!(e, Error::NotExists(_)), "{e:?}");
    let conflict = Items::command("zone-backup")
        .with(Item::Zone, ZONE)
        .with(Item::Filter, "dzZ")
        .with(
            Item::Data,
            knot.dir().join("b3").to_string_lossy().as_bytes(),
        );
    let reply = c.call(&[conflict]).unwrap();
    let Some(Unit::Data(items)) = reply.first() else {
        panic!("{reply:?}")
    };
    assert!(matches!(
        Error::from_server(items.clone()),
        Error::ParameterConflict(_)
    ));
    // Non-blocking backup: OK means queued; the label appears later.
    let dir4 = knot.dir().join("backup4");
    c.zone_backup(
        &[ZONE],
        &BackupOptions {
            blocking: false,
            ..BackupOptions::new(&dir4)
        },
    )
    .unwrap();
    wait_for_file(&dir4.join("knot_backup.label"));
}

fn wait_for_file(p: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !p.exists() {
        assert!(Instant::now() < deadline, "{} never appeared", p.display());
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn unknown_and_too_new_commands_are_never_sent() {
    let (knot, mut c) = start();
    // zone-validate exists from 3.4 (knot_versions.rs).
    if !knot.daemons().knot_3_4() {
        let e = c
            .call(&[Items::command("zone-validate").with(Item::Zone, ZONE)])
            .unwrap_err();
        assert!(
            matches!(&e, Error::UnsupportedCommand { needs, .. } if needs == "3.4.0"),
            "{e:?}"
        );
    }
    let e = c.call(&[Items::command("zone-frobnicate")]).unwrap_err();
    assert!(matches!(e, Error::UnsupportedCommand { .. }));
    assert!(c.call(&[Items::new().with(Item::Zone, ZONE)]).is_err());
    c.status().unwrap();
}

#[test]
fn wedged_server_times_out_instead_of_hanging() {
    let (mut knot, _c) = start();
    let pid = knot.pid().unwrap() as i32;
    let t = Timeouts {
        connect: Duration::from_millis(500),
        read: Duration::from_millis(300),
        write: Duration::from_millis(300),
    };
    let mut c = Client::connect_with(knot.socket_path(), t).unwrap();
    // SIGSTOP: the server still holds its socket but never answers.
    assert_eq!(unsafe_kill(pid, 19), 0);
    wait_stopped(pid);
    let e = c.status().unwrap_err();
    assert_eq!(unsafe_kill(pid, 18), 0);
    assert!(matches!(e, Error::Timeout(_)), "{e:?}");
    assert!(matches!(c.status(), Err(Error::Broken)));
    // A dead server is an error too: no socket file, or a stale one nobody listens on.
    assert!(matches!(
        Client::connect_with(knot.dir().join("no.sock"), t),
        Err(Error::Io(_))
    ));
    drop(c);
    knot.kill();
    assert!(knot.socket_path().exists());
    let e = Client::connect_with(knot.socket_path(), t).unwrap_err();
    assert!(matches!(e, Error::Timeout(_)), "{e:?}");
}

/// Waits until every thread of `pid` is stopped: a stop signal is delivered asynchronously,
/// and on a loaded machine a thread of knotd could still answer a request sent right after
/// `kill` returned.
fn wait_stopped(pid: i32) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let stopped = |stat: &str| {
        // The state follows the command name in parentheses.
        stat.rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('T') || rest.starts_with('t'))
    };
    loop {
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("knotd's threads");
        let all = tasks
            .flatten()
            .all(|t| std::fs::read_to_string(t.path().join("stat")).is_ok_and(|s| stopped(&s)));
        if all {
            return;
        }
        assert!(Instant::now() < deadline, "knotd (pid {pid}) did not stop");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn unsafe_kill(pid: i32, sig: i32) -> i32 {
    let out = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    if out.success() { 0 } else { 1 }
}

#[test]
fn generic_stream_and_stop() {
    /// A byte stream that is not a UnixStream, counting bytes both ways.
    struct Counting {
        inner: UnixStream,
        read: usize,
        written: usize,
    }
    impl Read for Counting {
        fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
            let n = self.inner.read(b)?;
            self.read += n;
            Ok(n)
        }
    }
    impl Write for Counting {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            let n = self.inner.write(b)?;
            self.written += n;
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.inner.flush()
        }
    }
    let (mut knot, c) = start();
    drop(c); // 3.2 serves one connection at a time
    let inner = UnixStream::connect(knot.socket_path()).unwrap();
    inner
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut c = Client::new(Counting {
        inner,
        read: 0,
        written: 0,
    });
    c.status().unwrap();
    assert_eq!(read_all_generic(&mut c).len(), 6);
    c.stop().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while knot.is_running() {
        assert!(Instant::now() < deadline, "knotd did not stop");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn read_all_generic<S: Read + Write>(c: &mut Client<S>) -> Vec<Record> {
    c.zone_read(ZONE, None, None)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}
