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

/// Connection attempts knotc had to repeat (knotd 3.2 sometimes refuses a connection
/// between two sequential clients; knotc itself does not retry).
static RETRIES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn knotc(knot: &KnotServer, args: &[&str]) {
    for _ in 0..50 {
        let out = Command::new(KNOTC)
            .arg("-s")
            .arg(knot.socket_path())
            .args(args)
            .output()
            .expect("run knotc");
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("failed to connect") {
            RETRIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(2));
            continue;
        }
        assert!(
            out.status.success() && !stderr.contains("error"),
            "knotc {args:?}: {}{stderr}",
            String::from_utf8_lossy(&out.stdout),
        );
        return;
    }
    panic!(
        "knotc {args:?}: could not connect 50 times; knotd log tail:\n{}",
        log_tail(knot)
    );
}

fn log_tail(knot: &KnotServer) -> String {
    let log = knot.log();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
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
    // Each way gets a fresh knotd with the same configuration and the same empty zone.
    // `zonefile-sync: -1` (no zone-file flush after each commit): with the default immediate
    // flush, Debian's knotd 3.2.6 segfaulted in (c) after 3,000-5,000 begin/set/commit rounds
    // in three runs out of three (a flush racing the next control transaction, by its log).
    let fresh = |zone: &str| {
        KnotServer::builder()
            .zone(zone, MINIMAL_ZONE)
            .template_option("zonefile-sync", "-1")
            .start()
    };
    println!("set_records: {n} A records into one zone (a fresh knotd for each way)");

    // (a) library: one connection, one transaction, batched.
    let knot = fresh("a.test");
    let t = Instant::now();
    {
        let mut c = Client::connect(knot.socket_path()).expect("connect");
        let mut txn = c.zone_begin("a.test").expect("begin");
        let failures = txn.set_batch(&recs).expect("batch");
        assert!(failures.is_empty(), "{failures:?}");
        txn.commit().expect("commit");
    }
    let a = t.elapsed();
    println!("(a)  done: {:.3} s", a.as_secs_f64());
    assert_eq!(count_hosts(&knot, "a.test"), n);

    // (a1) library: one connection, one transaction, one request per record.
    let knot = fresh("a1.test");
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
    println!("(a1) done: {:.3} s", a1.as_secs_f64());
    assert_eq!(count_hosts(&knot, "a1.test"), n);

    // (b) one knotc process per record inside one knotc transaction.
    let knot = fresh("b.test");
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
    println!("(b)  done: {:.3} s", b.as_secs_f64());
    assert_eq!(count_hosts(&knot, "b.test"), n);

    // (c) the original design: begin, set, commit per record (three processes each).
    let knot = fresh("c.test");
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
    println!(
        "knotc connection retries: {}",
        RETRIES.load(std::sync::atomic::Ordering::Relaxed)
    );
    println!("ratio b/a = {:.0}  (target >= 100)", s(b) / s(a));
    println!("ratio c/a = {:.0}  (target >= 300)", s(c) / s(a));
}
