//! Static records at scale: the `dnsdhcp` binary as a user runs it (`records plan|apply
//! --local`) against a real knotd, compared in the same run with `knotc zone-read` of the same
//! zones and with the original design's merge script.
//!
//! For each size N (default 1,000, 10,000 and 100,000; env `DNSDHCP_BENCH_RECORDS`, comma
//! separated) one forward zone (`home.arpa.`) gets N A records and one reverse zone
//! (`10.in-addr.arpa.`) their N PTRs, from one values file (`DNSDHCP_BENCH_FAMILY=6`: N AAAA
//! records and their PTRs in `8.b.d.0.1.0.0.2.ip6.arpa.`, 34 labels each):
//!
//! * first apply on a fresh knotd (median of 3 fresh servers), beside what knotd alone needs
//!   for the same records (set through one connection by the `knot-ctl` library, pre-built),
//!   and for every record the apply writes (the ownership records too, read back from the
//!   zones): the difference is the tool's own time;
//! * no-change `records apply` and `records plan` (median of 5 each; nothing is sent, the SOA
//!   serials stay the same);
//! * `knotc zone-read` of both zones (median of 5), the floor any tool reading the zones meets;
//! * peak RSS of every `dnsdhcp` run (`wait4`), and knotd's RSS once the records are in.
//!
//! The original script (three `knotc` processes per record, A and PTR) runs once, first and
//! again, at `DNSDHCP_BENCH_SCRIPT_RECORDS` records (default 1,000; 0 skips it): it takes minutes
//! per thousand records, so larger sizes are compared with its time scaled linearly, and the
//! output says so.
//!
//! Run: `cargo bench -p dnsdhcp --bench records_apply` (`DNSDHCP_TEST_DAEMONS=trixie` for Knot
//! 3.4). Under `cargo test --benches` it runs a smoke size (50 records, script at 20) and checks
//! the results only.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use knot_ctl::{Client, FlushOptions, Record};
use test_support::knot::{KNOTC, KnotServer};

const FORWARD: &str = "home.arpa";
const DNSDHCP: &str = env!("CARGO_BIN_EXE_dnsdhcp");

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

/// The address family of the records (`DNSDHCP_BENCH_FAMILY`: 4, the default, or 6).
#[derive(Clone, Copy, PartialEq)]
enum Family {
    V4,
    V6,
}

fn family() -> Family {
    static FAMILY: std::sync::OnceLock<Family> = std::sync::OnceLock::new();
    *FAMILY.get_or_init(|| match std::env::var("DNSDHCP_BENCH_FAMILY").as_deref() {
        Err(_) | Ok("4") => Family::V4,
        Ok("6") => Family::V6,
        Ok(other) => panic!("DNSDHCP_BENCH_FAMILY={other}: 4 or 6"),
    })
}

/// The reverse zone of the record addresses.
fn reverse() -> &'static str {
    match family() {
        Family::V4 => "10.in-addr.arpa",
        Family::V6 => "8.b.d.0.1.0.0.2.ip6.arpa",
    }
}

/// The forward records' type.
fn rtype() -> &'static str {
    match family() {
        Family::V4 => "A",
        Family::V6 => "AAAA",
    }
}

/// Record `i`'s address: `10.a.b.c` or `2001:db8::x:y`.
fn address(i: usize) -> String {
    match family() {
        Family::V4 => format!("10.{}.{}.{}", (i >> 16) as u8, (i >> 8) as u8, i as u8),
        Family::V6 => format!("2001:db8::{:x}:{:x}", (i >> 16) & 0xffff, i & 0xffff),
    }
}

/// Record `i`'s PTR owner relative to [`reverse`].
fn ptr_owner(i: usize) -> String {
    match family() {
        Family::V4 => format!("{}.{}.{}", i as u8, (i >> 8) as u8, (i >> 16) as u8),
        Family::V6 => {
            // The 24 nibbles below 2001:db8::/32, lowest first.
            let low = i as u128 & 0xffff_ffff;
            (0..24)
                .map(|n| format!("{:x}", (low >> (4 * n)) & 0xf))
                .collect::<Vec<_>>()
                .join(".")
        }
    }
}

/// The forward records in the zone: N, and `ns1`'s A record in the IPv4 run.
fn forward_count(n: usize) -> usize {
    n + usize::from(family() == Family::V4)
}

fn server() -> KnotServer {
    KnotServer::builder()
        .zone(FORWARD, FORWARD_ZONE)
        .zone(reverse(), REVERSE_ZONE)
        .start()
}

fn values_text(n: usize) -> String {
    let reverse = reverse();
    let mut s = format!("zones:\n  - name: {FORWARD}\n  - name: {reverse}\nstaticRecords:\n");
    for i in 0..n {
        let _ = writeln!(s, "  - \"h{i} IN {} {}\"", rtype(), address(i));
    }
    s
}

/// The original design's merge script: three knotc processes per record, errors swallowed.
fn script_text(socket: &Path, n: usize) -> String {
    let mut s = format!("K=\"{KNOTC} -s {}\"\n", socket.display());
    let reverse = reverse();
    for i in 0..n {
        let (rtype, address, ptr) = (rtype(), address(i), ptr_owner(i));
        let _ = writeln!(
            s,
            "$K zone-begin {FORWARD} >/dev/null 2>&1; \
             $K zone-set {FORWARD} h{i} 3600 {rtype} {address} >/dev/null 2>&1; \
             $K zone-commit {FORWARD} >/dev/null 2>&1"
        );
        let _ = writeln!(
            s,
            "$K zone-begin {reverse} >/dev/null 2>&1; \
             $K zone-set {reverse} {ptr} 3600 PTR h{i}.{FORWARD}. >/dev/null 2>&1; \
             $K zone-commit {reverse} >/dev/null 2>&1"
        );
    }
    s
}

/// One finished process: wall time, peak RSS in bytes, stdout.
struct Run {
    time: Duration,
    peak_rss: u64,
    stdout: String,
}

/// Runs `cmd` to completion, timing it and taking its peak RSS from `wait4`. Panics unless it
/// exits 0 (its stderr goes to the bench's).
#[allow(clippy::zombie_processes)] // reaped by wait4 below
fn measure(cmd: &mut Command) -> Run {
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let mut stdout = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().expect("piped"), &mut stdout)
        .expect("read stdout");
    let mut status = 0;
    // SAFETY: wait4 on our own child's pid with valid out-pointers; the child is reaped here
    // (std's Child is never waited on afterwards).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    let time = start.elapsed();
    assert_eq!(pid, child.id() as libc::pid_t, "wait4 failed");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{cmd:?} failed (wait status {status})"
    );
    Run {
        time,
        peak_rss: usage.ru_maxrss as u64 * 1024,
        stdout,
    }
}

fn dnsdhcp(knot: &KnotServer, values: &Path, command: &str) -> Command {
    let mut c = Command::new(DNSDHCP);
    c.args(["records", command, "-f"])
        .arg(values)
        .arg("--local")
        .arg("--knot-socket")
        .arg(knot.socket_path())
        .env("NO_COLOR", "1");
    c
}

/// Both zones read with `knotc zone-read`, one process each, output discarded.
fn knotc_zone_read(knot: &KnotServer) -> Duration {
    let start = Instant::now();
    for zone in [FORWARD, reverse()] {
        let status = knot
            .knotc_command()
            .args(["zone-read", zone])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .expect("run knotc");
        assert!(status.success(), "knotc zone-read {zone}");
    }
    start.elapsed()
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

fn serials(knot: &KnotServer) -> (Option<u32>, Option<u32>) {
    let mut c = Client::connect(knot.socket_path()).expect("connect");
    let mut serial = |z| c.zone_status(z).expect("zone-status").serial;
    (serial(FORWARD), serial(reverse()))
}

/// knotd's resident set size now, in bytes (`VmRSS` of the process running the server's
/// configuration, whichever way the variant starts it).
fn knotd_rss(knot: &KnotServer) -> u64 {
    let conf = knot.conf_path().to_string_lossy().into_owned();
    for entry in std::fs::read_dir("/proc").expect("/proc") {
        let dir = entry.expect("/proc entry").path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
        if comm.trim() != "knotd" || !String::from_utf8_lossy(&cmdline).contains(&conf) {
            continue;
        }
        let status = std::fs::read_to_string(dir.join("status")).unwrap_or_default();
        if let Some(kb) = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            return kb * 1024;
        }
    }
    panic!("no knotd process runs {conf}");
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// What knotd alone needs for the first apply's records: the same N A and N PTR records,
/// built beforehand, set through one connection (the `knot-ctl` library, batched), one
/// transaction per zone, committed and flushed. No validation, no plan, no ownership records:
/// the floor under any tool's first apply on this knotd.
fn knotd_alone(n: usize) -> Duration {
    let forward: Vec<Record> = (0..n)
        .map(|i| Record::new(format!("h{i}"), 3600, rtype(), address(i)))
        .collect();
    let ptrs: Vec<Record> = (0..n)
        .map(|i| Record::new(ptr_owner(i), 3600, "PTR", format!("h{i}.{FORWARD}.")))
        .collect();
    knotd_fill(&[forward, ptrs])
}

/// knotd alone with `records` (forward zone, reverse zone) on a fresh server: set through
/// one connection, one transaction per zone, committed and flushed. Checks every record is
/// in place.
fn knotd_fill(records: &[Vec<Record>; 2]) -> Duration {
    let knot = server();
    let zones = [FORWARD, reverse()];
    let before = zones.map(|z| count_all(&knot, z));
    let mut client = Client::connect(knot.socket_path()).expect("connect");
    let start = Instant::now();
    for (zone, records) in zones.iter().zip(records) {
        client.zone_begin(zone).expect("zone-begin").detach();
        let refused = client.zone_set_batch(zone, records).expect("zone-set");
        assert!(refused.is_empty(), "{} refused", refused.len());
    }
    for zone in zones {
        client.zone_commit(zone).expect("zone-commit");
    }
    for zone in zones {
        client
            .zone_flush(Some(zone), &FlushOptions::default())
            .expect("zone-flush");
    }
    let time = start.elapsed();
    for ((zone, records), before) in zones.iter().zip(records).zip(before) {
        // The SOA is replaced (its serial goes up), every other record is added.
        assert_eq!(count_all(&knot, zone), before + records.len(), "{zone}");
    }
    time
}

/// Every record the first apply wrote into the zones (ownership records included): what they
/// serve beyond the `initial` records read before the apply, the SOA aside.
fn written_records(knot: &KnotServer, initial: &[Vec<Record>; 2]) -> [Vec<Record>; 2] {
    let written = |zone: &str, initial: &[Record]| -> Vec<Record> {
        records_of(knot, zone)
            .into_iter()
            .filter(|r| r.rtype != "SOA" && !initial.contains(r))
            .collect()
    };
    [
        written(FORWARD, &initial[0]),
        written(reverse(), &initial[1]),
    ]
}

fn records_of(knot: &KnotServer, zone: &str) -> Vec<Record> {
    let mut c = Client::connect(knot.socket_path()).expect("connect");
    c.zone_read(zone, None, None)
        .expect("zone-read")
        .map(|r| r.expect("a record"))
        .collect()
}

fn count_all(knot: &KnotServer, zone: &str) -> usize {
    records_of(knot, zone).len()
}

/// Figures of one size.
struct Size {
    n: usize,
    first: Duration,
    first_rss: u64,
    floor: Duration,
    /// knotd alone with every record the first apply writes, ownership records included.
    floor_written: Duration,
    again: Duration,
    again_rss: u64,
    plan: Duration,
    plan_rss: u64,
    zone_read: Duration,
    knotd_rss: u64,
}

fn bench_size(n: usize, work: &Path) -> Size {
    let values = work.join(format!("values-{n}.yaml"));
    std::fs::write(&values, values_text(n)).expect("write values");
    let (mut first, mut again, mut plan, mut reads) = (vec![], vec![], vec![], vec![]);
    let floor = median((0..3).map(|_| knotd_alone(n)).collect());
    let (mut first_rss, mut again_rss, mut plan_rss, mut knotd) = (0, 0, 0, 0);
    let mut written = None;
    for round in 0..3 {
        let knot = server();
        let initial = [FORWARD, reverse()].map(|z| records_of(&knot, z));
        let run = measure(&mut dnsdhcp(&knot, &values, "apply"));
        assert!(run.stdout.contains("applied: committed"), "{}", run.stdout);
        first.push(run.time);
        first_rss = first_rss.max(run.peak_rss);
        assert_eq!(count(&knot, FORWARD, rtype()), forward_count(n));
        assert_eq!(count(&knot, reverse(), "PTR"), n);
        if round > 0 {
            continue;
        }
        knotd = knotd_rss(&knot);
        written = Some(written_records(&knot, &initial));
        let before = serials(&knot);
        for _ in 0..5 {
            let run = measure(&mut dnsdhcp(&knot, &values, "apply"));
            assert!(run.stdout.contains("nothing to apply"), "{}", run.stdout);
            again.push(run.time);
            again_rss = again_rss.max(run.peak_rss);
            let run = measure(&mut dnsdhcp(&knot, &values, "plan"));
            assert!(run.stdout.contains("no changes"), "{}", run.stdout);
            plan.push(run.time);
            plan_rss = plan_rss.max(run.peak_rss);
            reads.push(knotc_zone_read(&knot));
        }
        assert_eq!(serials(&knot), before, "a no-change apply changed a serial");
    }
    let written = written.expect("records read back after the first apply");
    let floor_written = median((0..3).map(|_| knotd_fill(&written)).collect());
    Size {
        n,
        first: median(first),
        first_rss,
        floor,
        floor_written,
        again: median(again),
        again_rss,
        plan: median(plan),
        plan_rss,
        zone_read: median(reads),
        knotd_rss: knotd,
    }
}

/// The script at `n` records on a fresh knotd: (first run, second run).
fn bench_script(n: usize, work: &Path) -> (Duration, Duration) {
    let knot = server();
    let script = work.join("merge.sh");
    std::fs::write(&script, script_text(knot.socket_path(), n)).expect("write script");
    let first = run_script(&script);
    assert_eq!(count(&knot, FORWARD, rtype()), forward_count(n));
    assert_eq!(count(&knot, reverse(), "PTR"), n);
    let again = run_script(&script);
    (first, again)
}

fn env_sizes(name: &str) -> Option<Vec<usize>> {
    let v = std::env::var(name).ok()?;
    Some(
        v.split(',')
            .map(|s| s.trim().replace('_', "").parse().expect("a record count"))
            .collect(),
    )
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let benching = std::env::args().any(|a| a == "--bench");
    let sizes = env_sizes("DNSDHCP_BENCH_RECORDS").unwrap_or(if benching {
        vec![1_000, 10_000, 100_000]
    } else {
        vec![50]
    });
    let script_n = env_sizes("DNSDHCP_BENCH_SCRIPT_RECORDS")
        .and_then(|v| v.first().copied())
        .unwrap_or(if benching { 1_000 } else { 20 });
    assert!(
        sizes.iter().all(|&n| n <= 1 << 24),
        "at most 2^24 addresses"
    );
    let work = tempfile::tempdir().expect("tempdir");

    let results: Vec<Size> = sizes.iter().map(|&n| bench_size(n, work.path())).collect();
    let script = (script_n > 0).then(|| bench_script(script_n, work.path()));

    let knot = server();
    println!(
        "records_apply: N {} records + N PTRs, one forward and one reverse zone ({}.); {}",
        rtype(),
        reverse(),
        knot.knotd_version_line()
    );
    drop(knot);
    for s in &results {
        println!("{} records (+ {} PTRs):", s.n, s.n);
        println!(
            "  first apply:     {} (median of 3), peak RSS {}  (target <= 2 s)",
            secs(s.first),
            mb(s.first_rss)
        );
        println!(
            "  knotd alone, the same records pre-built, one connection: {} (median of 3)  -> first apply {:.2}x",
            secs(s.floor),
            s.first.as_secs_f64() / s.floor.as_secs_f64()
        );
        println!(
            "  knotd alone, every record the apply writes (ownership records too): {} (median of 3)  -> first apply {:.2}x, +{}",
            secs(s.floor_written),
            s.first.as_secs_f64() / s.floor_written.as_secs_f64(),
            secs(s.first.saturating_sub(s.floor_written))
        );
        println!(
            "  no-change apply: {} (median of 5), peak RSS {}  -> {:.2}x knotc zone-read (target <= 3x)",
            secs(s.again),
            mb(s.again_rss),
            s.again.as_secs_f64() / s.zone_read.as_secs_f64()
        );
        println!(
            "  plan:            {} (median of 5), peak RSS {}  -> {:.2}x knotc zone-read (target <= 3x)",
            secs(s.plan),
            mb(s.plan_rss),
            s.plan.as_secs_f64() / s.zone_read.as_secs_f64()
        );
        println!(
            "  knotc zone-read of both zones: {} (median of 5); knotd RSS with the records: {}",
            secs(s.zone_read),
            mb(s.knotd_rss)
        );
        if let Some((first, again)) = script {
            let scale = s.n as f64 / script_n as f64;
            let how = if s.n == script_n {
                format!("measured at {script_n}")
            } else {
                format!("measured at {script_n} records and scaled linearly x{scale}")
            };
            println!(
                "  original script ({how}): first {}, again {}  -> first apply {:.0}x (target >= 200x), no-change apply {:.0}x (target >= 1000x)",
                secs(first.mul_f64(scale)),
                secs(again.mul_f64(scale)),
                first.as_secs_f64() * scale / s.first.as_secs_f64(),
                again.as_secs_f64() * scale / s.again.as_secs_f64()
            );
        }
    }
}
