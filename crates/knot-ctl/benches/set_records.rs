//! Sets N A records (default 10,000; env `KNOT_BENCH_RECORDS`) into a zone of a real knotd,
//! three ways, in one run on one machine:
//!
//! * (a) this library: one connection, one transaction, the records batched as DATA units;
//! * (b) one `knotc zone-set` process per record inside one `knotc` transaction;
//! * (c) the original design: `knotc zone-begin`, `zone-set`, `zone-commit` per record.
//!
//! Also shown, for reference: (a1) the library with one request/reply per record.
//! Run: `cargo bench -p knot-ctl --bench set_records`.

use std::process::Command;
use std::time::{Duration, Instant};

use knot_ctl::{Client, Record};
use test_support::knot::{KNOTC, KnotServer, MINIMAL_ZONE};

fn records(n: usize) -> Vec<Record> {
    (0..n)
        .map(|i| {
            Record::new(
                format!("h{i}"),
                300,
                "A",
                format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255),
            )
        })
        .collect()
}

fn knotc(knot: &KnotServer, args: &[&str]) {
    let out = Command::new(KNOTC)
        .arg("-s")
        .arg(knot.socket_path())
        .args(args)
        .output()
        .expect("run knotc");
    assert!(
        out.status.success() && !String::from_utf8_lossy(&out.stderr).contains("error"),
        "knotc {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn count_hosts(knot: &KnotServer, zone: &str) -> usize {
    let mut c = Client::connect(knot.socket_path()).expect("connect");
    c.zone_read(zone, None, Some("A"))
        .expect("zone-read")
        .filter(|r| r.as_ref().is_ok_and(|r| r.owner.starts_with('h')))
        .count()
}

fn main() {
    // A test runner listing tests (nextest `--list`): this binary has none to list.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: then run a tiny smoke size.
    let benching = std::env::args().any(|a| a == "--bench");
    let n: usize = std::env::var("KNOT_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if benching { 10_000 } else { 20 });
    let recs = records(n);
    let knot = KnotServer::start(&[
        ("a.test", MINIMAL_ZONE),
        ("a1.test", MINIMAL_ZONE),
        ("b.test", MINIMAL_ZONE),
        ("c.test", MINIMAL_ZONE),
    ]);
    println!(
        "set_records: {n} A records into one zone, knotd at {}",
        knot.socket_path().display()
    );

    // (a) library: one connection, one transaction, batched.
    let t = Instant::now();
    {
        let mut c = Client::connect(knot.socket_path()).expect("connect");
        let mut txn = c.zone_begin("a.test").expect("begin");
        let failures = txn.set_batch(&recs).expect("batch");
        assert!(failures.is_empty(), "{failures:?}");
        txn.commit().expect("commit");
    }
    let a = t.elapsed();
    assert_eq!(count_hosts(&knot, "a.test"), n);

    // (a1) library: one connection, one transaction, one request per record.
    let t = Instant::now();
    {
        let mut c = Client::connect(knot.socket_path()).expect("connect");
        let mut txn = c.zone_begin("a1.test").expect("begin");
        for r in &recs {
            txn.set(r).expect("set");
        }
        txn.commit().expect("commit");
    }
    let a1 = t.elapsed();
    assert_eq!(count_hosts(&knot, "a1.test"), n);

    // (b) one knotc process per record inside one knotc transaction.
    let t = Instant::now();
    knotc(&knot, &["zone-begin", "b.test"]);
    for r in &recs {
        knotc(
            &knot,
            &["zone-set", "b.test", &r.owner, "300", "A", &r.data],
        );
    }
    knotc(&knot, &["zone-commit", "b.test"]);
    let b = t.elapsed();
    assert_eq!(count_hosts(&knot, "b.test"), n);

    // (c) the original design: begin, set, commit per record (three processes each).
    let t = Instant::now();
    for r in &recs {
        knotc(&knot, &["zone-begin", "c.test"]);
        knotc(
            &knot,
            &["zone-set", "c.test", &r.owner, "300", "A", &r.data],
        );
        knotc(&knot, &["zone-commit", "c.test"]);
    }
    let c = t.elapsed();
    assert_eq!(count_hosts(&knot, "c.test"), n);

    let s = |d: Duration| d.as_secs_f64();
    println!(
        "(a)  library, 1 connection, 1 transaction, batched : {:>10.3} s",
        s(a)
    );
    println!(
        "(a1) library, 1 connection, 1 transaction, per-rec : {:>10.3} s  (a1/a = {:.1})",
        s(a1),
        s(a1) / s(a)
    );
    println!(
        "(b)  knotc zone-set process per record, 1 txn      : {:>10.3} s",
        s(b)
    );
    println!(
        "(c)  knotc begin+set+commit per record             : {:>10.3} s",
        s(c)
    );
    println!("ratio b/a = {:.0}  (target >= 100)", s(b) / s(a));
    println!("ratio c/a = {:.0}  (target >= 300)", s(c) / s(a));
}
