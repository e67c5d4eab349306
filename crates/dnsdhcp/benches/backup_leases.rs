//! `dnsdhcp backup leases --local` against a live kea-dhcp4 holding 1,000,000 leases (spread
//! over `.2`, `.1` and the current file) vs `tar czf` of the same three files, in the same run.
//!
//! Both run as child processes, three rounds alternating; the medians, their ratio (target
//! ≤ 0.5×) and each one's peak RSS (`wait4`) are printed. Then, once each, the other lease
//! commands at the same scale with their peak RSS: `verify` and `pod init-leases` (target
//! ≤ 64 MB), `restore --leases --local` into the live Kea (≤ 128 MB; Kea reloads the whole set),
//! and Kea's own resident memory before and after — the figures behind the chart's limits.
//!
//! `BENCH_LEASES` sets the lease count (default 1,000,000); `DNSDHCP_TEST_DAEMONS=trixie`
//! measures Kea 2.6.
//!
//! ```sh
//! cargo bench -p dnsdhcp --bench backup_leases
//! ```

use std::fs;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use test_support::kea::{KeaConfig, KeaServer, Subnet};
use test_support::leasegen::{self, ChildRun};

const BIN: &str = env!("CARGO_BIN_EXE_dnsdhcp");

fn mb(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1 << 20)
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

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Resident and peak resident memory of `pid` (or of its `kea-dhcp4` descendant), in bytes.
fn kea_memory(pid: u32) -> (u64, u64) {
    let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    if comm.trim() != "kea-dhcp4" {
        let children =
            fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        if let Some(c) = children
            .split_whitespace()
            .next()
            .and_then(|c| c.parse().ok())
        {
            return kea_memory(c);
        }
    }
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn main() {
    let n: u32 = std::env::var("BENCH_LEASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let work = tempfile::tempdir().expect("tempdir");
    let live = work.path().join("live");
    fs::create_dir_all(&live).expect("mkdir");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let g = leasegen::generate(&live, n, Ipv4Addr::new(10, 64, 0, 0), now);
    let bytes: u64 = g
        .files
        .iter()
        .map(|f| fs::metadata(f).map_or(0, |m| m.len()))
        .sum();
    eprintln!(
        "{n} leases: {} rows, {:.1} MB over .2/.1/current; starting kea-dhcp4 ...",
        g.rows,
        mb(bytes)
    );
    let config = KeaConfig::new()
        .subnets(vec![Subnet {
            id: 1,
            prefix: "10.64.0.0/10".into(),
            pools: vec!["10.64.0.1 - 10.127.255.254".into()],
            relay_addresses: Vec::new(),
        }])
        .data_dir(&live);
    let kea = KeaServer::start(config.clone());
    let kea_pid = kea.pid().expect("kea pid");
    let (kea_rss, _) = kea_memory(kea_pid);

    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    let (mut our_rss, mut tar_rss) = (0, 0);
    let mut sizes = (0, 0);
    for round in 0..3 {
        let out = work.path().join(format!("dnsdhcp-{round}"));
        let r = run(
            "dnsdhcp backup leases",
            Command::new(BIN)
                .args(["backup", "leases", "--local", "--name", "bench", "-b"])
                .arg(&out)
                .arg("--kea-socket")
                .arg(kea.socket_path())
                .arg("--kea-lease-file")
                .arg(kea.lease_file()),
        );
        ours.push(r.wall);
        our_rss = our_rss.max(r.peak_rss);
        sizes.0 = fs::metadata(out.join("kea-leases.tar.gz")).map_or(0, |m| m.len());

        let tarball = work.path().join(format!("tar-{round}.tar.gz"));
        let names: Vec<&std::ffi::OsStr> = g
            .files
            .iter()
            .map(|f| f.file_name().expect("name"))
            .collect();
        let r = run(
            "tar czf",
            Command::new("tar")
                .arg("czf")
                .arg(&tarball)
                .arg("-C")
                .arg(&live)
                .args(&names),
        );
        theirs.push(r.wall);
        tar_rss = tar_rss.max(r.peak_rss);
        sizes.1 = fs::metadata(&tarball).map_or(0, |m| m.len());
        if round > 0 {
            let _ = fs::remove_dir_all(&out);
            let _ = fs::remove_file(&tarball);
        }
    }
    let (a, b) = (median(ours), median(theirs));
    println!(
        "backup leases --local, {n} leases: dnsdhcp {:.3} s (peak RSS {:.1} MB, {:.1} MB archive) \
         vs tar czf {:.3} s (peak RSS {:.1} MB, {:.1} MB): ratio {:.2}x (target <= 0.5x)",
        a.as_secs_f64(),
        mb(our_rss),
        mb(sizes.0),
        b.as_secs_f64(),
        mb(tar_rss),
        mb(sizes.1),
        a.as_secs_f64() / b.as_secs_f64()
    );

    let archive = work.path().join("dnsdhcp-0").join("kea-leases.tar.gz");
    let r = run("verify", Command::new(BIN).arg("verify").arg(&archive));
    println!(
        "verify: {:.3} s, peak RSS {:.1} MB (target <= 64 MB)",
        r.wall.as_secs_f64(),
        mb(r.peak_rss)
    );

    let restored = work.path().join("restored");
    fs::create_dir_all(&restored).expect("mkdir");
    fs::copy(&archive, restored.join("kea-leases.tar.gz")).expect("copy");
    let r = run(
        "pod init-leases",
        Command::new(BIN)
            .args(["pod", "init-leases", "--kea-lease-file"])
            .arg(restored.join("kea-leases4.csv")),
    );
    println!(
        "pod init-leases: {:.3} s, peak RSS {:.1} MB (target <= 64 MB)",
        r.wall.as_secs_f64(),
        mb(r.peak_rss)
    );

    let r = run(
        "restore --leases",
        Command::new(BIN)
            .args(["restore", "--local", "--leases"])
            .arg(&archive)
            .arg("--kea-socket")
            .arg(kea.socket_path())
            .arg("--kea-lease-file")
            .arg(kea.lease_file()),
    );
    let (kea_after, kea_peak) = kea_memory(kea_pid);
    println!(
        "restore --leases --local: {:.3} s (Kea reloads and is counted), peak RSS {:.1} MB \
         (target <= 128 MB)",
        r.wall.as_secs_f64(),
        mb(r.peak_rss)
    );
    println!(
        "kea-dhcp4 ({}) holding {} leases: RSS {:.0} MB after start, {:.0} MB after the \
         restore's reload, peak {:.0} MB",
        if kea.daemons().kea_2_6() {
            "2.6"
        } else {
            "2.2"
        },
        g.leases,
        mb(kea_rss),
        mb(kea_after),
        mb(kea_peak)
    );
    drop(kea);
}
