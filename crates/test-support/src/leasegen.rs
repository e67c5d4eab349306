//! Large lease directories shaped like Kea leaves them between LFC runs, and the peak memory of
//! a child process, for the scale tests and benchmarks.
//!
//! [`generate`] writes `X.2` (LFC output: sorted, one row per lease), `X.1` (the rotated file:
//! new leases, renewals, releases as valid-lifetime-0 rows, in time order) and `X` (the same,
//! still being appended), with Kea 2.2's 11-column header. Deterministic for a given count.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// Kea 2.2's header (Kea 2.6 loads it too, adding `pool_id` as 0).
pub const HEADER: &str = "address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,user_context";

/// xorshift64*: deterministic, dependency-free randomness for the generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The address of lease `i`: `first` + i.
fn addr(first: Ipv4Addr, i: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(first) + i)
}

/// One realistic row: most clients send a client id, a third a hostname, a few carry a user
/// context; a few leases are expired-reclaimed (state 2).
fn write_row(w: &mut impl Write, first: Ipv4Addr, i: u32, valid: u32, cltt: u64, rng: &mut Rng) {
    let hw = format!(
        "00:16:3e:{:02x}:{:02x}:{:02x}",
        (i >> 16) as u8,
        (i >> 8) as u8,
        i as u8
    );
    let cid = if !i.is_multiple_of(10) {
        format!("01:{hw}")
    } else {
        String::new()
    };
    let host = if i.is_multiple_of(3) {
        format!("host-{i}.lab.example.org")
    } else {
        String::new()
    };
    let (fwd, rev) = if i.is_multiple_of(3) { (1, 1) } else { (0, 0) };
    let state = if valid != 0 && rng.below(50) == 0 {
        2
    } else {
        0
    };
    let ctx = if i.is_multiple_of(97) {
        "{ \"ISC\": { \"relay-agent-info\": { \"sub-options\": \"0x0104AABBCCDD\" } } }"
    } else {
        ""
    };
    writeln!(
        w,
        "{},{hw},{cid},{valid},{},1,{fwd},{rev},{host},{state},{ctx}",
        addr(first, i),
        cltt + u64::from(valid)
    )
    .expect("write lease row");
}

/// What [`generate`] wrote.
#[derive(Debug, Clone)]
pub struct Generated {
    /// The lease file `X` (`lease-database.name`).
    pub lease_file: PathBuf,
    /// `X.2`, `X.1`, `X`.
    pub files: Vec<PathBuf>,
    /// Rows over all files.
    pub rows: u64,
    /// Leases Kea holds after loading them (computed while generating).
    pub leases: u64,
}

/// Writes `n` leases' worth of `X.2` / `X.1` / `X` (named `kea-leases4.csv*`) into `dir`, the
/// addresses counting up from `first`, with expiry times around `now` (epoch seconds) so Kea
/// does not reclaim them during a test (valid lifetime 4000 s, at least 45 minutes left).
pub fn generate(dir: &Path, n: u32, first: Ipv4Addr, now: u64) -> Generated {
    let x = dir.join("kea-leases4.csv");
    let path_of = |suffix: &str| PathBuf::from(format!("{}{suffix}", x.display()));
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut rows = 0u64;
    let mut live = vec![false; n as usize];
    let open = |p: &Path| {
        let mut w = BufWriter::with_capacity(1 << 20, File::create(p).expect("create lease file"));
        writeln!(w, "{HEADER}").expect("write header");
        w
    };
    // X.2: 90% of the addresses, sorted (LFC output). Every lease has at least 45 minutes left,
    // so Kea reclaims none (and writes nothing) while a test or benchmark runs.
    let mut w = open(&path_of(".2"));
    for i in (0..n).filter(|i| i % 10 != 9) {
        write_row(
            &mut w,
            first,
            i,
            4000,
            now - 1000 - rng.below(300),
            &mut rng,
        );
        live[i as usize] = true;
        rows += 1;
    }
    w.flush().expect("flush");
    // X.1 and X: new leases (the other 10%), renewals of 15% / 10%, releases of 2% / 1%,
    // shuffled into time order.
    let mut events: Vec<(u32, u32)> = Vec::new();
    for (k, suffix) in [".1", ""].into_iter().enumerate() {
        events.clear();
        for i in (0..n).filter(|i| i % 10 == 9 && (i / 10) % 2 == k as u32) {
            events.push((i, 4000));
        }
        let (renew, release) = if k == 0 { (15, 2) } else { (10, 1) };
        for _ in 0..u64::from(n) * renew / 100 {
            events.push((rng.below(u64::from(n)) as u32, 4000));
        }
        for _ in 0..u64::from(n) * release / 100 {
            events.push((rng.below(u64::from(n)) as u32, 0));
        }
        for j in (1..events.len()).rev() {
            let r = rng.below(j as u64 + 1) as usize;
            events.swap(j, r);
        }
        let mut w = open(&path_of(suffix));
        let base = now - 1000 + 500 * k as u64;
        for (t, &(i, valid)) in events.iter().enumerate() {
            let cltt = base + (t as u64 * 900 / events.len() as u64);
            write_row(&mut w, first, i, valid, cltt, &mut rng);
            live[i as usize] = valid != 0;
            rows += 1;
        }
        w.flush().expect("flush");
    }
    Generated {
        files: vec![path_of(".2"), path_of(".1"), x.clone()],
        lease_file: x,
        rows,
        leases: live.iter().filter(|&&l| l).count() as u64,
    }
}

/// How a child process ended, with its peak resident memory.
#[derive(Debug, Clone, Copy)]
pub struct ChildRun {
    /// Its exit status.
    pub status: ExitStatus,
    /// Peak resident set size (`ru_maxrss` from `wait4`), in bytes.
    pub peak_rss: u64,
    /// Wall time from spawn to exit.
    pub wall: Duration,
    /// CPU time (user + system) of the child and of the children it waited for.
    pub cpu: Duration,
}

/// Spawns `cmd` and waits for it with `wait4`, returning its own peak RSS (not that of other
/// children). stdout and stderr are inherited unless `cmd` says otherwise.
pub fn run_measured(cmd: &mut Command) -> ChildRun {
    let start = Instant::now();
    let child: Child = cmd.spawn().expect("spawn child");
    wait_measured(child, start)
}

/// Waits for `child` (spawned at `start`) with `wait4`; see [`run_measured`].
pub fn wait_measured(child: Child, start: Instant) -> ChildRun {
    use std::os::unix::process::ExitStatusExt;
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: wait4 writes only into the two structs we pass; `pid` is our own child, reaped
    // here exactly once (dropping a `Child` neither waits nor signals).
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    assert_eq!(r, pid, "wait4: {}", std::io::Error::last_os_error());
    drop(child);
    ChildRun {
        status: ExitStatus::from_raw(status),
        peak_rss: ru.ru_maxrss as u64 * 1024,
        wall: start.elapsed(),
        cpu: timeval(ru.ru_utime) + timeval(ru.ru_stime),
    }
}

fn timeval(t: libc::timeval) -> Duration {
    Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
}
