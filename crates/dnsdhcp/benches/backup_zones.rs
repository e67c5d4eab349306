//! `dnsdhcp backup zones --local` (the binary, as a user runs it) vs `knotc -b zone-backup`
//! followed by `tar czf` of the same directory, against the same live knotd in the same run.
//!
//! One real knotd serves 10 zones with 1,000,000 records in total (`BENCH_RECORDS` changes the
//! total), 10 % of them of types NLnet Labs `domain` cannot parse (URI, LOC, APL, SPF, ...).
//! Both ways run as child processes, three times each, alternating; the medians, their ratio
//! (target: dnsdhcp ≤ 1.0× the pair), dnsdhcp's peak RSS (`wait4`) and the load average are
//! printed. `DNSDHCP_TEST_DAEMONS=trixie` measures Knot 3.4.
//!
//! ```sh
//! cargo bench -p dnsdhcp --bench backup_zones
//! ```

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use test_support::knot::KnotServer;
use test_support::leasegen::{self, ChildRun};

const DNSDHCP: &str = env!("CARGO_BIN_EXE_dnsdhcp");
const ZONES: usize = 10;

/// One record of each type NLnet Labs `domain` 0.12 cannot read in Knot's presentation form
/// (and a few it can), `{i}` standing for the record's number.
const OTHER_TYPES: &[&str] = &[
    "URI 10 1 \"https://example.net/{i}\"",
    "LOC 52 22 23 N 4 53 32 E -2m 1m 10000m 10m",
    "APL 1:192.0.2.0/24 !2:2001:db8::/32",
    "SPF \"v=spf1 ip4:192.0.2.{i8} -all\"",
    "RT 10 relay{i}.example.net.",
    "NID 10 0014:4fff:ff20:ee64",
    "L32 10 10.1.2.{i8}",
    "L64 10 2001:0db8:1140:1000",
    "LP 10 l64-{i}.example.net.",
    "KX 10 kx{i}.example.net.",
    "EUI48 00-00-5e-00-53-2a",
    "EUI64 00-00-5e-ef-10-00-00-2a",
    "AFSDB 1 afs{i}.example.net.",
    "SMIMEA 3 1 1 0C72AC70B745AC19998811B131D662C9AC69DBDBE7CB23E5B514B56664C5D3D6",
    "CSYNC 66 3 A NS AAAA",
    "SVCB 1 svc{i}.example.net. alpn=h2 key65000=\"x\"",
    "DHCID AAIBY2/AuCccgoJbsaxcQc9TUapptP69lOjxfNuVAA2kjEA=",
    "SRV 10 60 5060 sip{i}.example.net.",
    "CAA 0 issue \"ca.example.net\"",
    "TYPE65280 \\# 3 abcdef",
];

/// A zone of `records` records: 40 % A, 20 % AAAA, 30 % TXT, 10 % the types above in turn.
fn zone_text(zone: usize, records: usize) -> String {
    let mut text = String::with_capacity(records * 40);
    text.push_str("$TTL 3600\n@ IN SOA ns1 hostmaster 1 3600 900 604800 300\n@ IN NS ns1\n");
    text.push_str("ns1 IN A 192.0.2.1\n");
    for i in 0..records {
        match i % 10 {
            0..=3 => text.push_str(&format!(
                "h{i} IN A 10.{zone}.{}.{}\n",
                i >> 8 & 255,
                i & 255
            )),
            4 | 5 => text.push_str(&format!(
                "h{i} IN AAAA fd00:{zone:x}::{:x}:{:x}\n",
                i >> 16,
                i & 0xffff
            )),
            6..=8 => text.push_str(&format!("t{i} IN TXT \"record {i} of zone {zone}\"\n")),
            _ => {
                let other = OTHER_TYPES[(i / 10) % OTHER_TYPES.len()]
                    .replace("{i8}", &(i & 255).to_string())
                    .replace("{i}", &i.to_string());
                text.push_str(&format!("o{i} IN {other}\n"));
            }
        }
    }
    text
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The 1-, 5- and 15-minute load averages.
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Runs `cmd` with its output captured, panicking with its stderr unless it exits 0.
fn run(what: &str, cmd: &mut Command) -> ChildRun {
    let err = tempfile::NamedTempFile::new().expect("temp file");
    let r = leasegen::run_measured(
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(err.reopen().expect("reopen"))),
    );
    assert!(
        r.status.success(),
        "{what} failed: {}",
        std::fs::read_to_string(err.path()).unwrap_or_default()
    );
    r
}

fn main() {
    let total: usize = std::env::var("BENCH_RECORDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let per_zone = total / ZONES;
    eprintln!("generating {ZONES} zones x {per_zone} records and starting knotd ...");
    let names: Vec<String> = (0..ZONES).map(|i| format!("z{i}.bench")).collect();
    let texts: Vec<String> = (0..ZONES).map(|i| zone_text(i, per_zone)).collect();
    let zones: Vec<(&str, &str)> = names
        .iter()
        .zip(&texts)
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    let knot = KnotServer::start(&zones);
    drop(texts);
    let work = tempfile::tempdir().expect("tempdir");

    let mut ours = Vec::new();
    let mut rss = Vec::new();
    let mut theirs = Vec::new();
    for round in 0..3 {
        let out = work.path().join(format!("dnsdhcp-{round}"));
        let r = run(
            "dnsdhcp backup zones",
            Command::new(DNSDHCP)
                .args(["backup", "zones", "--local", "--knot-socket"])
                .arg(knot.socket_path())
                .arg("--backup-dir")
                .arg(&out),
        );
        ours.push(r.wall);
        rss.push(r.peak_rss);
        let size: u64 = std::fs::read_dir(&out)
            .expect("backup dir")
            .filter_map(|e| e.ok()?.metadata().ok())
            .map(|m| m.len())
            .sum();

        let dir = work.path().join(format!("knotc-{round}"));
        let tarball = work.path().join(format!("knotc-{round}.tar.gz"));
        let start = Instant::now();
        run(
            "knotc zone-backup",
            knot.knotc_command()
                .args(["-b", "zone-backup", "+backupdir"])
                .arg(&dir)
                .arg("+journal"),
        );
        run(
            "tar czf",
            Command::new("tar")
                .arg("czf")
                .arg(&tarball)
                .arg("-C")
                .arg(&dir)
                .arg("."),
        );
        theirs.push(start.elapsed());
        let their_size = std::fs::metadata(&tarball).expect("tarball").len();
        eprintln!(
            "round {round}: dnsdhcp {:.3?} ({size} B, full archive + zones.tar.gz), peak RSS {:.1} MB; \
             knotc+tar {:.3?} ({their_size} B); load {}",
            ours[round],
            rss[round] as f64 / f64::from(1 << 20),
            theirs[round],
            load()
        );
        std::fs::remove_dir_all(&dir).ok();
        std::fs::remove_dir_all(&out).ok();
    }
    let (a, b) = (median(ours), median(theirs));
    let peak = rss.iter().max().copied().unwrap_or(0);
    println!(
        "backup zones, {ZONES} zones, {} records in total, {} (median of 3):",
        per_zone * ZONES,
        knot.knotd_version_line()
    );
    println!(
        "  dnsdhcp backup zones --local (full archive + zones.tar.gz, every record checked): {a:.3?}, peak RSS {:.1} MB",
        peak as f64 / f64::from(1 << 20)
    );
    println!(
        "  knotc -b zone-backup + tar czf:                                                   {b:.3?}"
    );
    println!(
        "  ratio dnsdhcp / (knotc + tar): {:.2}x (target <= 1.0x); load average {}",
        a.as_secs_f64() / b.as_secs_f64(),
        load()
    );
}
