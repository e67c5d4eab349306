//! `dnsdhcp backup leases --local` against a live kea-dhcp4 holding 1,000,000 leases (spread
//! over `.2`, `.1` and the current file) vs `tar czf` of the same three files, in the same run.
//!
//! Both run as child processes, three rounds alternating, the backups into one directory that
//! already holds a backup (as for every backup but the first); the medians of wall and CPU time,
//! their ratios (target <= 0.5x wall), each one's peak RSS (`wait4`) and the machine's load
//! before and after are printed. Then, once each, `verify` and `pod init-leases` of the archive
//! at the same scale with their peak RSS (target <= 64 MB), and Kea's own resident memory.
//! With `BENCH_RESTORE=1` also `restore --leases --local` into the live Kea (<= 128 MB; Kea
//! reloads the whole set, which takes minutes at this scale).
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
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use test_support::kea::{KeaConfig, KeaServer, Subnet};
use test_support::leasegen::{self, ChildRun};

const BIN: &str = env!("CARGO_BIN_EXE_dnsdhcp");

fn mb(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}

/// Runs `cmd` quietly, panicking with its stderr on failure.
fn run(what: &str, cmd: &mut Command) -> ChildRun {
    run_output(what, cmd).0
}

/// Like [`run`], also returning what `cmd` printed on stdout.
fn run_output(what: &str, cmd: &mut Command) -> (ChildRun, String) {
    let out = tempfile::NamedTempFile::new().expect("temp file");
    let err = tempfile::NamedTempFile::new().expect("temp file");
    let r = leasegen::run_measured(
        cmd.stdout(Stdio::from(out.reopen().expect("reopen")))
            .stderr(Stdio::from(err.reopen().expect("reopen"))),
    );
    assert!(
        r.status.success(),
        "{what} failed: {}",
        fs::read_to_string(err.path()).unwrap_or_default()
    );
    (r, fs::read_to_string(out.path()).unwrap_or_default())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The 1, 5 and 15 minute load averages, as `uptime` prints them.
fn load() -> String {
    fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
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
        .data_dir(&live)
        // Loading a million leases takes Kea well over a minute on a busy machine.
        .start_timeout(Duration::from_secs(1200));
    let started = Instant::now();
    let kea = KeaServer::start(config);
    eprintln!(
        "kea-dhcp4 answered after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let kea_pid = kea.pid().expect("kea pid");
    let (kea_rss, _) = kea_memory(kea_pid);

    let load_before = load();
    let (mut ours, mut our_cpu) = (Vec::new(), Vec::new());
    let (mut theirs, mut their_cpu) = (Vec::new(), Vec::new());
    let (mut our_rss, mut tar_rss) = (0, 0);
    let mut sizes = (0, 0);
    // Every round backs up into the same directory, which holds the previous backup, as
    // every backup but a user's first does (its lease count is checked against the new one).
    let out = work.path().join("dnsdhcp");
    let backup = || {
        let mut cmd = Command::new(BIN);
        cmd.args(["backup", "leases", "--local", "--name", "bench", "-b"])
            .arg(&out)
            .arg("--kea-socket")
            .arg(kea.socket_path())
            .arg("--kea-lease-file")
            .arg(kea.lease_file());
        cmd
    };
    run("dnsdhcp backup leases (the previous backup)", &mut backup());
    for round in 0..3 {
        let r = run("dnsdhcp backup leases", &mut backup());
        ours.push(r.wall);
        our_cpu.push(r.cpu);
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
        their_cpu.push(r.cpu);
        tar_rss = tar_rss.max(r.peak_rss);
        sizes.1 = fs::metadata(&tarball).map_or(0, |m| m.len());
        let _ = fs::remove_file(&tarball);
    }
    let load_after = load();
    let (a, b) = (median(ours), median(theirs));
    let (ca, cb) = (median(our_cpu), median(their_cpu));
    println!(
        "backup leases --local, {n} leases ({} rows, {:.1} MB): dnsdhcp {:.3} s, CPU {:.3} s, \
         peak RSS {:.1} MB, {:.1} MB archive | tar czf {:.3} s, CPU {:.3} s, peak RSS {:.1} MB, \
         {:.1} MB | ratio {:.2}x wall (target <= 0.5x), {:.2}x CPU | load {load_before} before, \
         {load_after} after",
        g.rows,
        mb(bytes),
        a.as_secs_f64(),
        ca.as_secs_f64(),
        mb(our_rss),
        mb(sizes.0),
        b.as_secs_f64(),
        cb.as_secs_f64(),
        mb(tar_rss),
        mb(sizes.1),
        a.as_secs_f64() / b.as_secs_f64(),
        ca.as_secs_f64() / cb.as_secs_f64(),
    );

    let archive = out.join("kea-leases.tar.gz");
    let (r, report) = run_output(
        "verify",
        Command::new(BIN).args(["verify", "--json"]).arg(&archive),
    );
    let report: serde_json::Value = serde_json::from_str(&report).expect("verify --json");
    let report = &report["reports"][0];
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(
        report["lease_count"], g.leases,
        "the archive holds every lease"
    );
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

    if std::env::var_os("BENCH_RESTORE").is_some_and(|v| v == "1") {
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
        println!(
            "restore --leases --local: {:.3} s (Kea reloads and is counted), peak RSS {:.1} MB \
             (target <= 128 MB)",
            r.wall.as_secs_f64(),
            mb(r.peak_rss)
        );
    }
    let (kea_after, kea_peak) = kea_memory(kea_pid);
    println!(
        "kea-dhcp4 ({}) holding {} leases: RSS {:.0} MB after start, {:.0} MB now, peak {:.0} MB",
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
