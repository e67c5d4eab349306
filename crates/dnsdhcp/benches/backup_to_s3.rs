//! `dnsdhcp backup all --local --to s3://...` vs a local `dnsdhcp backup all` followed by
//! uploading the same two archives with a plain multipart client (`aws s3 cp`), in the same run,
//! against the same S3 server on 127.0.0.1 (`s3s-fs`).
//!
//! One knotd serves 10 zones with 1,000,000 records in total (`BENCH_RECORDS`), one kea-dhcp4
//! holds 1,000,000 leases (`BENCH_LEASES`). Both ways run as child processes, three rounds
//! alternating; the medians, their ratio (target ≤ 1.0×) and dnsdhcp's peak RSS (`wait4`,
//! target ≤ 128 MB) are printed.
//!
//! ```sh
//! cargo bench -p dnsdhcp --bench backup_to_s3
//! ```

use std::fs;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use test_support::kea::{KeaConfig, KeaServer, Subnet};
use test_support::knot::KnotServer;
use test_support::leasegen::{self, ChildRun};
use test_support::s3::{S3Kind, S3Server};

const BIN: &str = env!("CARGO_BIN_EXE_dnsdhcp");
const ZONES: usize = 10;

fn zone_text(zone: usize, records: usize) -> String {
    let mut text = String::with_capacity(records * 40);
    text.push_str("$TTL 3600\n@ IN SOA ns1 hostmaster 1 3600 900 604800 300\n@ IN NS ns1\n");
    text.push_str("ns1 IN A 192.0.2.1\n");
    for i in 0..records {
        match i % 4 {
            0 | 1 => text.push_str(&format!(
                "h{i} IN A 10.{zone}.{}.{}\n",
                i >> 8 & 255,
                i & 255
            )),
            2 => text.push_str(&format!(
                "h{i} IN AAAA fd00:{zone:x}::{:x}:{:x}\n",
                i >> 16,
                i & 0xffff
            )),
            _ => text.push_str(&format!("t{i} IN TXT \"record {i} of zone {zone}\"\n")),
        }
    }
    text
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Runs `cmd` quietly, panicking with its stderr on failure.
fn run(what: &str, cmd: &mut Command) -> ChildRun {
    let err = tempfile::NamedTempFile::new().expect("temp file");
    let r = leasegen::run_measured(
        cmd.stdout(Stdio::null())
            .stderr(Stdio::from(err.reopen().expect("reopen"))),
    );
    assert!(
        r.status.success(),
        "{what} failed: {}",
        fs::read_to_string(err.path()).unwrap_or_default()
    );
    r
}

fn stamped(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with("knot-zones-") || n.starts_with("kea-leases-")
        })
        .collect();
    v.sort();
    v
}

fn main() {
    let records: usize = std::env::var("BENCH_RECORDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let leases: u32 = std::env::var("BENCH_LEASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let work = tempfile::tempdir().expect("tempdir");
    eprintln!(
        "{records} records in {ZONES} zones, {leases} leases; starting knotd, kea-dhcp4, s3s-fs ..."
    );
    let names: Vec<String> = (0..ZONES).map(|i| format!("z{i}.bench")).collect();
    let texts: Vec<String> = (0..ZONES).map(|i| zone_text(i, records / ZONES)).collect();
    let zones: Vec<(&str, &str)> = names
        .iter()
        .zip(&texts)
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    let knot = KnotServer::start(&zones);
    drop(texts);
    let live = work.path().join("live");
    fs::create_dir_all(&live).expect("mkdir");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    leasegen::generate(&live, leases, Ipv4Addr::new(10, 64, 0, 0), now);
    let kea = KeaServer::start(
        KeaConfig::new()
            .subnets(vec![Subnet {
                id: 1,
                prefix: "10.64.0.0/10".into(),
                pools: vec!["10.64.0.1 - 10.127.255.254".into()],
                relay_addresses: Vec::new(),
            }])
            .data_dir(&live),
    );
    let s3 = S3Server::start(S3Kind::S3sFs);
    s3.create_bucket("bench");

    let target = |cmd: &mut Command| {
        cmd.arg("--knot-socket")
            .arg(knot.socket_path())
            .arg("--kea-socket")
            .arg(kea.socket_path())
            .arg("--kea-lease-file")
            .arg(kea.lease_file())
            .args(["--name", "bench"])
            .env("HOME", "/nonexistent")
            .env("TMPDIR", work.path())
            .envs(s3.env());
    };
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let (mut our_rss, mut local_rss, mut bytes) = (0, 0, 0);
    for round in 0..3 {
        let mut cmd = Command::new(BIN);
        cmd.args(["backup", "all", "--local", "--to"])
            .arg(format!("s3://bench/ours-{round}"));
        target(&mut cmd);
        let r = run("dnsdhcp backup all --to", &mut cmd);
        ours.push(r.wall);
        our_rss = our_rss.max(r.peak_rss);

        let out = work.path().join(format!("local-{round}"));
        let mut cmd = Command::new(BIN);
        cmd.args(["backup", "all", "--local", "-b"]).arg(&out);
        target(&mut cmd);
        let local = run("dnsdhcp backup all", &mut cmd);
        local_rss = local_rss.max(local.peak_rss);
        let mut wall = local.wall;
        bytes = 0;
        for f in stamped(&out) {
            bytes += fs::metadata(&f).map_or(0, |m| m.len());
            let r = run(
                "aws s3 cp",
                Command::new("aws")
                    .args([
                        "s3",
                        "cp",
                        "--only-show-errors",
                        "--endpoint-url",
                        &s3.endpoint,
                    ])
                    .arg(&f)
                    .arg(format!("s3://bench/base-{round}/"))
                    .envs(s3.env()),
            );
            wall += r.wall;
        }
        theirs.push(wall);
        let _ = fs::remove_dir_all(&out);
    }
    let (a, b) = (median(ours), median(theirs));
    println!(
        "backup all --to s3:// ({records} records, {leases} leases, {:.1} MB of archives): \
         dnsdhcp {:.3} s (peak RSS {:.1} MB) vs local backup {} + aws s3 cp {:.3} s: \
         ratio {:.2}x (target <= 1.0x, <= 128 MB)",
        mb(bytes),
        a.as_secs_f64(),
        mb(our_rss),
        format_args!("(peak RSS {:.1} MB)", mb(local_rss)),
        b.as_secs_f64(),
        a.as_secs_f64() / b.as_secs_f64()
    );
}
