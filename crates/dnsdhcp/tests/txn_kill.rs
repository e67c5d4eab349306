//! `dnsdhcp restore --local` and `dnsdhcp records apply --local`, killed with SIGKILL at many
//! points against a real knotd: no kill leaves a transaction that blocks later writes. The
//! next run recognises the transaction the killed process left open (its marker names a
//! process that is gone), aborts it, and completes; someone else's open transaction, and one
//! of a dnsdhcp still running, are refused with a clear message and left alone.

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use knot_ctl::Client;
use test_support::ctl_relay::CtlRelay;
use test_support::knot::{KnotServer, MINIMAL_ZONE};

const ZONE: &str = "home.test";
const BIN: &str = env!("CARGO_BIN_EXE_dnsdhcp");

fn zone_text(records: usize, octet: u8) -> String {
    let mut text = String::from(MINIMAL_ZONE);
    for i in 0..records {
        text.push_str(&format!(
            "h{i} IN A 10.{octet}.{}.{}\n",
            i >> 8 & 255,
            i & 255
        ));
    }
    text
}

fn client(k: &KnotServer) -> Client<UnixStream> {
    Client::connect(k.socket_path())
        .unwrap_or_else(|e| panic!("connect to knotd: {e}; log:\n{}", k.log()))
}

fn open_txns(k: &KnotServer) -> Vec<String> {
    client(k).open_transactions(None).unwrap()
}

fn dnsdhcp(k: &KnotServer, args: &[&str]) -> Command {
    via(k.socket_path(), args)
}

fn via(socket: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .arg("--local")
        .arg("--knot-socket")
        .arg(socket)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{:?}: {}",
        cmd,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Starts `cmd` with its output discarded (a full pipe would stall it).
fn spawn_quiet(mut cmd: Command) -> Child {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// knotd's control socket behind a [`CtlRelay`], driven through whole dnsdhcp runs: counting
/// what dnsdhcp sends, or SIGKILLing dnsdhcp right after forwarding the n-th piece.
struct Relay(CtlRelay);

impl Relay {
    fn start(knot: &Path) -> Relay {
        Relay(CtlRelay::start(knot))
    }

    fn path(&self) -> &Path {
        self.0.path()
    }

    /// Runs `cmd` to completion through the relay; returns (pieces, first zone-begin piece).
    fn count(&self, cmd: Command) -> (usize, usize) {
        self.0.reset();
        let out = spawn_quiet(cmd).wait().unwrap();
        assert!(out.success());
        let begin = self.0.first_zone_begin().expect("a transaction was begun");
        (self.0.pieces(), begin)
    }

    /// Runs `cmd` through the relay, killed as `kill` says. Returns whether the kill happened
    /// (the run may have ended before).
    fn kill_at(&self, cmd: Command, kill: Kill) -> bool {
        self.0.reset();
        match kill {
            Kill::AfterPiece(at) => self.0.kill_after_piece(at),
            Kill::BeforeCommit => self
                .0
                .kill_before(|piece| piece.windows(11).any(|w| w == b"zone-commit")),
        }
        let mut child = spawn_quiet(cmd);
        self.0.set_victim(child.id());
        child.wait().unwrap();
        // knotd runs whatever reached it before the kill; wait until it closed every
        // connection, so what it left is final.
        self.0.wait_closed(std::time::Duration::from_secs(30));
        self.0.killed()
    }
}

/// Where a run is killed.
#[derive(Debug, Clone, Copy)]
enum Kill {
    /// Right after the relay forwarded this piece (counted in a full run; pieces follow the
    /// client's writes, so the same number may fall a little earlier or later in another run).
    AfterPiece(usize),
    /// Just before the first `zone-commit` would reach knotd: always inside a transaction.
    BeforeCommit,
}

/// Kill points: every piece from the first `zone-begin` to the end, at most `n` of them
/// spread evenly, plus one before the transaction; and one just before the first commit.
fn kill_points((pieces, begin): (usize, usize), n: usize) -> Vec<Kill> {
    let span = pieces - begin + 1;
    let step = span.div_ceil(n).max(1);
    let mut v: Vec<usize> = (begin..=pieces).step_by(step).collect();
    v.push(pieces);
    v.insert(0, begin.saturating_sub(1).max(1));
    v.dedup();
    v.into_iter()
        .map(Kill::AfterPiece)
        .chain([Kill::BeforeCommit])
        .collect()
}

/// What the zone serves (SOA aside: a restore moves the serial on), as sorted lines.
fn served(k: &KnotServer) -> Vec<String> {
    let mut v: Vec<String> = client(k)
        .zone_read(ZONE, None, None)
        .unwrap()
        .map(|r| r.unwrap())
        .filter(|r| r.rtype != "SOA")
        .map(|r| format!("{} {} {}", r.owner, r.rtype, r.data))
        .collect();
    v.sort();
    v
}

fn zones_archive(k: &KnotServer, dir: &Path) -> PathBuf {
    run_ok(&mut dnsdhcp(
        k,
        &[
            "backup",
            "zones",
            "--name",
            "t",
            "-b",
            dir.to_str().unwrap(),
        ],
    ));
    dir.join("zones.tar.gz")
}

/// Makes the zone differ from the archive in many records, so a restore has a long
/// transaction.
fn change_zone(k: &KnotServer, octet: u8, records: usize) {
    let mut c = client(k);
    let mut txn = c.zone_begin(&format!("{ZONE}.")).unwrap();
    let recs: Vec<knot_ctl::Record> = (0..records)
        .map(|i| {
            knot_ctl::Record::new(
                format!("x{i}.{ZONE}."),
                60,
                "A",
                format!("10.{octet}.{}.{}", i >> 8 & 255, i & 255),
            )
        })
        .collect();
    assert!(txn.set_batch(&recs).unwrap().is_empty());
    txn.commit().unwrap();
}

#[test]
fn restore_killed_at_many_points_never_blocks_the_next_run() {
    let k = KnotServer::start(&[(ZONE, &zone_text(8_000, 1))]);
    let dir = tempfile::tempdir().unwrap();
    let archive = zones_archive(&k, dir.path());
    let archive_s = archive.to_str().unwrap();
    let want = served(&k);
    let relay = Relay::start(k.socket_path());
    let args = ["restore", "--zones", archive_s];
    change_zone(&k, 99, 1_500);
    let full = relay.count(via(relay.path(), &args));
    let points = kill_points(full, 8);
    for (trial, at) in points.iter().copied().enumerate() {
        change_zone(&k, 100 + trial as u8, 1_500);
        let killed = relay.kill_at(via(relay.path(), &args), at);
        let open = open_txns(&k);
        if matches!(at, Kill::BeforeCommit) {
            // The recovery is exercised at least here, whatever the other kills hit.
            assert!(
                killed && !open.is_empty(),
                "a kill before the commit left {open:?}"
            );
        }
        // The rerun recognises the abandoned transaction, aborts it, and restores.
        let out = run_ok(&mut dnsdhcp(&k, &["restore", "--zones", archive_s]));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            !open.is_empty(),
            stdout.contains("that an interrupted dnsdhcp"),
            "trial {trial} (killed: {killed}, open: {open:?}): {stdout}"
        );
        eprintln!("trial {trial}: {at:?} of {full:?}: killed {killed}, left open: {open:?}");
        assert!(open_txns(&k).is_empty(), "trial {trial}");
        let now = served(&k);
        assert!(
            now == want,
            "trial {trial}: serves {} records, the archive has {}",
            now.len(),
            want.len()
        );
    }
}

fn values(dir: &Path, name: &str, records: usize, octet: u8) -> PathBuf {
    let mut text = format!("zones:\n  - name: {ZONE}\nstaticRecords:\n");
    for i in 0..records {
        text.push_str(&format!(
            "  - \"s{i} A 10.{octet}.{}.{}\"\n",
            i >> 8 & 255,
            i & 255
        ));
    }
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn records_apply_killed_at_many_points_never_blocks_the_next_run() {
    let k = KnotServer::start(&[(ZONE, MINIMAL_ZONE)]);
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(k.socket_path());
    let v = values(dir.path(), "v.yaml", 2_000, 49);
    run_ok(&mut dnsdhcp(
        &k,
        &["records", "apply", "-f", v.to_str().unwrap()],
    ));
    let v = values(dir.path(), "w.yaml", 2_000, 48);
    let full = relay.count(via(
        relay.path(),
        &["records", "apply", "--force", "-f", v.to_str().unwrap()],
    ));
    let points = kill_points(full, 8);
    for (trial, at) in points.iter().copied().enumerate() {
        let v = values(
            dir.path(),
            &format!("v{trial}.yaml"),
            2_000,
            50 + trial as u8,
        );
        let v = v.to_str().unwrap();
        let args = ["records", "apply", "--force", "-f", v];
        let killed = relay.kill_at(via(relay.path(), &args), at);
        let open = open_txns(&k);
        if matches!(at, Kill::BeforeCommit) {
            // The recovery is exercised at least here, whatever the other kills hit.
            assert!(
                killed && !open.is_empty(),
                "a kill before the commit left {open:?}"
            );
        }
        let out = run_ok(&mut dnsdhcp(&k, &args));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            !open.is_empty(),
            stdout.contains("that an interrupted dnsdhcp"),
            "trial {trial} (killed: {killed}, open: {open:?}): {stdout}"
        );
        eprintln!("trial {trial}: {at:?} of {full:?}: killed {killed}, left open: {open:?}");
        assert!(open_txns(&k).is_empty(), "trial {trial}");
        // A second apply has nothing to do: the first one applied everything.
        let out = run_ok(&mut dnsdhcp(&k, &args));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("nothing to apply"),
            "trial {trial}"
        );
        assert!(!served(&k).iter().any(|l| l.contains("_dnsdhcp-txn")));
    }
}

#[test]
fn someone_elses_transaction_and_a_running_dnsdhcps_are_refused_and_left_open() {
    let k = KnotServer::start(&[(ZONE, MINIMAL_ZONE)]);
    let dir = tempfile::tempdir().unwrap();
    let archive = zones_archive(&k, dir.path());
    let v = values(dir.path(), "v.yaml", 3, 9);
    let (v, archive) = (v.to_str().unwrap(), archive.to_str().unwrap());
    change_zone(&k, 7, 5);

    // knotc (no marker).
    k.knotc_ok(&["zone-begin", ZONE]);
    for args in [
        vec!["records", "apply", "-f", v],
        vec!["restore", "--zones", archive],
    ] {
        let out = dnsdhcp(&k, &args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains("open transaction that dnsdhcp did not start")
                && stderr.contains(&format!("knotc zone-abort {ZONE}.")),
            "{args:?}: {stderr}"
        );
        assert_eq!(open_txns(&k).len(), 1, "{args:?}: left open");
    }
    k.knotc_ok(&["zone-abort", ZONE]);

    // A dnsdhcp that still runs: this test process opens a marked transaction.
    let mut c = client(&k);
    let (txn, _) = dnsdhcp::txn::begin(&mut c, &format!("{ZONE}.")).unwrap();
    txn.detach();
    drop(c);
    let out = dnsdhcp(&k, &["records", "apply", "-f", v])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("another dnsdhcp (pid {}", std::process::id())),
        "{stderr}"
    );
    assert_eq!(open_txns(&k).len(), 1);
}
