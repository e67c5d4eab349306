//! Static records: `dnsdhcp`'s apply against the original design's merge script, same run, same
//! machine, real knotd.
//!
//! One forward zone (`home.arpa.`) gets N A records (default 10,000; env
//! `DNSDHCP_BENCH_RECORDS`), and their N PTRs go into one reverse zone (`10.in-addr.arpa.`):
//!
//! * first apply: `records::apply` from the values file (load, validate, read the zones, plan,
//!   one transaction per zone, flush) vs the script — one `knotc zone-begin`, `zone-set`,
//!   `zone-commit` per record, A and PTR, run by `sh`;
//! * second apply with nothing changed: `records::apply` again (empty plan, no transaction) vs
//!   the same script run again.
//!
//! Run: `cargo bench -p dnsdhcp --bench records_apply`. Under `cargo test --benches` it runs a
//! smoke size (50 records) and checks the results only.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use dnsdhcp::records::{ApplyOptions, apply, load_values};
use knot_ctl::Client;
use test_support::knot::{KNOTC, KnotServer};

const FORWARD: &str = "home.arpa";
const REVERSE: &str = "10.in-addr.arpa";

const FORWARD_ZONE: &str = "\
$TTL 3600
@   IN SOA ns1 hostmaster 1 3600 900 604800 300
@   IN NS  ns1
ns1 IN A   192.0.2.1
";

const REVERSE_ZONE: &str = "\
$TTL 3600
@   IN SOA ns1.home.arpa. hostmaster.home.arpa. 1 3600 900 604800 300
@   IN NS  ns1.home.arpa.
";

fn addr(i: usize) -> (u8, u8, u8) {
    ((i >> 16) as u8, (i >> 8) as u8, i as u8)
}

fn server() -> KnotServer {
    KnotServer::builder()
        .zone(FORWARD, FORWARD_ZONE)
        .zone(REVERSE, REVERSE_ZONE)
        .start()
}

fn values_text(n: usize) -> String {
    let mut s = format!("zones:\n  - name: {FORWARD}\n  - name: {REVERSE}\nstaticRecords:\n");
    for i in 0..n {
        let (a, b, c) = addr(i);
        let _ = writeln!(s, "  - \"h{i} IN A 10.{a}.{b}.{c}\"");
    }
    s
}

/// The original design's merge script: three knotc processes per record, errors swallowed.
fn script_text(socket: &Path, n: usize) -> String {
    let mut s = format!("K=\"{KNOTC} -s {}\"\n", socket.display());
    for i in 0..n {
        let (a, b, c) = addr(i);
        let _ = writeln!(
            s,
            "$K zone-begin {FORWARD} >/dev/null 2>&1; \
             $K zone-set {FORWARD} h{i} 3600 A 10.{a}.{b}.{c} >/dev/null 2>&1; \
             $K zone-commit {FORWARD} >/dev/null 2>&1"
        );
        let _ = writeln!(
            s,
            "$K zone-begin {REVERSE} >/dev/null 2>&1; \
             $K zone-set {REVERSE} {c}.{b}.{a} 3600 PTR h{i}.{FORWARD}. >/dev/null 2>&1; \
             $K zone-commit {REVERSE} >/dev/null 2>&1"
        );
    }
    s
}

/// Runs the script. Like the original, it swallows every knotc error, so its exit status (that
/// of its last command) means nothing; the zone contents are checked by the caller instead.
fn run_script(path: &Path) -> Duration {
    let start = Instant::now();
    let _status = Command::new("sh").arg(path).status().expect("run sh");
    start.elapsed()
}

fn count(knot: &KnotServer, zone: &str, rtype: &str) -> usize {
    let mut c = Client::connect(knot.socket_path()).expect("connect");
    c.zone_read(zone, None, Some(rtype))
        .expect("zone-read")
        .filter(|r| r.is_ok())
        .count()
}

fn serial(knot: &KnotServer, zone: &str) -> Option<u32> {
    let mut c = Client::connect(knot.socket_path()).expect("connect");
    c.zone_status(zone).expect("zone-status").serial
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn secs(d: Duration) -> String {
    format!("{:.4} s", d.as_secs_f64())
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let benching = std::env::args().any(|a| a == "--bench");
    let n: usize = std::env::var("DNSDHCP_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if benching { 10_000 } else { 50 });
    assert!(n <= 1 << 24, "at most 2^24 addresses in 10.0.0.0/8");
    let work = tempfile::tempdir().expect("tempdir");
    let values_path = work.path().join("values.yaml");
    std::fs::write(&values_path, values_text(n)).expect("write values");
    let opts = ApplyOptions::default();

    // dnsdhcp: first apply on fresh servers (median of 3), then no-change applies (median of 5).
    let mut first = Vec::new();
    let mut again = Vec::new();
    for round in 0..3 {
        let knot = server();
        let start = Instant::now();
        let values = load_values(&[&values_path]).expect("load values");
        let mut client = Client::connect(knot.socket_path()).expect("connect");
        let out = apply(&mut client, &values, &opts).expect("first apply");
        first.push(start.elapsed());
        drop(client);
        assert_eq!(out.committed.len(), 2);
        assert_eq!(count(&knot, FORWARD, "A"), n + 1);
        assert_eq!(count(&knot, REVERSE, "PTR"), n);
        if round == 0 {
            let serials = (serial(&knot, FORWARD), serial(&knot, REVERSE));
            for _ in 0..5 {
                let start = Instant::now();
                let values = load_values(&[&values_path]).expect("load values");
                let mut client = Client::connect(knot.socket_path()).expect("connect");
                let out = apply(&mut client, &values, &opts).expect("second apply");
                again.push(start.elapsed());
                assert!(out.plan.is_empty() && out.committed.is_empty());
            }
            assert_eq!((serial(&knot, FORWARD), serial(&knot, REVERSE)), serials);
        }
    }
    let ours_first = median(first);
    let ours_again = median(again);

    // The original script, first run then the same script again.
    let knot = server();
    let script = work.path().join("merge.sh");
    std::fs::write(&script, script_text(knot.socket_path(), n)).expect("write script");
    let script_first = run_script(&script);
    assert_eq!(count(&knot, FORWARD, "A"), n + 1);
    assert_eq!(count(&knot, REVERSE, "PTR"), n);
    let script_again = run_script(&script);

    let r1 = script_first.as_secs_f64() / ours_first.as_secs_f64();
    let r2 = script_again.as_secs_f64() / ours_again.as_secs_f64();
    println!("records_apply: {n} A records + {n} PTRs, one forward and one reverse zone");
    println!(
        "  first apply:     dnsdhcp {} (median of 3)  script {}  -> {r1:.0}x (target >= 200x)",
        secs(ours_first),
        secs(script_first)
    );
    println!(
        "  no-change apply: dnsdhcp {} (median of 5)  script {}  -> {r2:.0}x (target >= 1000x)",
        secs(ours_again),
        secs(script_again)
    );
}
