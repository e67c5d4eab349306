//! Snapshot → tar.gz of a 1,000,000-lease directory vs `tar czf` of the same files.
//!
//! Generates a lease directory the way Kea leaves it between LFC runs: `X.2` (LFC output,
//! sorted, deduplicated), `X.1` (the rotated file: renewals, releases as valid-lifetime-0 rows,
//! new leases, in time order) and `X` (the same, still being appended). Then, in the same run:
//!
//! * `tar czf` of the three files (GNU tar + gzip -6, what the original design did);
//! * this crate's path in a child process: [`Snapshot::take`] → [`Snapshot::compact`] →
//!   `Compacted::write_to` into one tar entry (size known up front), gzip-compressed with
//!   flate2 (zlib-rs backend) at level `KEA_BENCH_GZIP_LEVEL` (default 1) — the effective set
//!   only, as LFC would write it.
//!
//! Prints both wall times, the ratio (target ≤ 0.5) and the child's peak RSS (`VmHWM`, target
//! ≤ 256 MB). `KEA_BENCH_LEASES` sets the lease count (default 1,000,000); `KEA_BENCH_DATA`
//! keeps (and reuses) the generated directory.
//!
//! Run: `cargo bench -p kea-leases --bench snapshot`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use flate2::Compression;
use flate2::write::GzEncoder;
use kea_leases::load::Role;
use kea_leases::snapshot::Snapshot;

const HEADER: &str = "address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,user_context";
const NOW: u64 = 1_795_000_000;

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

fn addr(i: u32) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::from(u32::from(std::net::Ipv4Addr::new(10, 0, 0, 0)) + i)
}

/// One realistic row: most clients send a client id, a third a hostname, a few carry a user
/// context; a few leases are expired-reclaimed (state 2).
fn write_row(w: &mut impl Write, i: u32, valid: u32, cltt: u64, rng: &mut Rng) {
    let mac = [0x00, 0x16, 0x3e, (i >> 16) as u8, (i >> 8) as u8, i as u8];
    let hw = format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]
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
        addr(i),
        cltt + u64::from(valid)
    )
    .unwrap();
}

/// Generates the directory; returns (lease file path, total rows, files).
fn generate(dir: &Path, n: u32) -> (PathBuf, u64, Vec<PathBuf>) {
    let x = dir.join("kea-leases4.csv");
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut rows = 0u64;
    let open = |p: &Path| {
        let mut w = BufWriter::with_capacity(1 << 20, File::create(p).unwrap());
        writeln!(w, "{HEADER}").unwrap();
        w
    };
    // X.2: 90% of the addresses, sorted (LFC output).
    let mut w = open(&Role::Previous.path_for(&x));
    for i in (0..n).filter(|i| i % 10 != 9) {
        write_row(&mut w, i, 4000, NOW - 3000 - rng.below(900), &mut rng);
        rows += 1;
    }
    w.flush().unwrap();
    // X.1 and X: new leases (the other 10%), renewals of 15% / 10%, releases of 2% / 1%
    // (valid lifetime 0), shuffled into time order.
    let mut events: Vec<(u32, u32)> = Vec::new();
    for (k, file) in [Role::Rotated, Role::Current].into_iter().enumerate() {
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
        let mut w = open(&file.path_for(&x));
        let base = NOW - 2000 + 1000 * k as u64;
        for (t, &(i, valid)) in events.iter().enumerate() {
            let cltt = base + (t as u64 * 900 / events.len() as u64);
            write_row(&mut w, i, valid, cltt, &mut rng);
            rows += 1;
        }
        w.flush().unwrap();
    }
    let files = [Role::Previous, Role::Rotated, Role::Current]
        .iter()
        .map(|r| r.path_for(&x))
        .collect();
    (x, rows, files)
}

/// CPU seconds (user + system) of all reaped children so far.
fn children_cpu() -> f64 {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn vm_hwm_kb() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Our path, in the child: snapshot → compact → tar.gz. Prints "secs hwm_kb leases bytes".
fn child(lease_file: &Path, out: &Path, level: u32) {
    let t = Instant::now();
    let snap = Snapshot::take(lease_file).expect("snapshot");
    let t_snap = t.elapsed().as_secs_f64();
    let comp = snap.compact().expect("compact");
    let t_index = t.elapsed().as_secs_f64();
    assert!(comp.errors().is_empty(), "{:?}", &comp.errors()[..1]);
    let gz = GzEncoder::new(
        BufWriter::with_capacity(1 << 20, File::create(out).unwrap()),
        Compression::new(level),
    );
    let mut tar = tar::Builder::new(gz);
    let mut h = tar::Header::new_gnu();
    h.set_path("kea-leases4.csv").unwrap();
    h.set_size(comp.len());
    h.set_mode(0o644);
    h.set_mtime(NOW);
    h.set_cksum();
    // One tar entry whose size is known up front: header, streamed data, padding.
    tar.get_mut().write_all(h.as_bytes()).unwrap();
    comp.write_to(tar.get_mut()).expect("compacted data");
    let pad = (512 - comp.len() % 512) % 512;
    tar.get_mut().write_all(&vec![0; pad as usize]).unwrap();
    let gz = tar.into_inner().unwrap();
    gz.finish().unwrap().flush().unwrap();
    let secs = t.elapsed().as_secs_f64();
    eprintln!(
        "  snapshot {t_snap:.3} s, compaction index {:.3} s, write + gzip {:.3} s",
        t_index - t_snap,
        secs - t_index
    );
    println!(
        "{secs} {} {} {}",
        vm_hwm_kb(),
        comp.lease_count(),
        comp.len()
    );
}

fn main() {
    if let Ok(lease_file) = std::env::var("KEA_BENCH_CHILD") {
        let out = std::env::var("KEA_BENCH_OUT").unwrap();
        let level = std::env::var("KEA_BENCH_GZIP_LEVEL")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        child(Path::new(&lease_file), Path::new(&out), level);
        return;
    }
    let n: u32 = std::env::var("KEA_BENCH_LEASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    // KEA_BENCH_DATA keeps the generated directory (reused if it has the files) for profiling.
    let data = std::env::var_os("KEA_BENCH_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.path().join("kea"));
    std::fs::create_dir_all(&data).unwrap();
    let t = Instant::now();
    let (x, rows, files) =
        if std::env::var_os("KEA_BENCH_DATA").is_some() && data.join("kea-leases4.csv").exists() {
            let x = data.join("kea-leases4.csv");
            let files: Vec<PathBuf> = [Role::Previous, Role::Rotated, Role::Current]
                .iter()
                .map(|r| r.path_for(&x))
                .collect();
            (x, 0, files)
        } else {
            generate(&data, n)
        };
    let bytes: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum();
    println!(
        "generated {n} addresses: {rows} rows, {bytes} bytes in X.2/X.1/X ({:.1} s)",
        t.elapsed().as_secs_f64()
    );

    // tar czf of the same files (page cache warm for both: generated just now).
    let tar_out = dir.path().join("plain.tar.gz");
    let cpu0 = children_cpu();
    let t = Instant::now();
    let st = Command::new("tar")
        .arg("czf")
        .arg(&tar_out)
        .arg("-C")
        .arg(&data)
        .args(files.iter().map(|f| f.file_name().unwrap()))
        .status()
        .expect("tar");
    assert!(st.success());
    let tar_secs = t.elapsed().as_secs_f64();
    let cpu1 = children_cpu();
    let tar_cpu = cpu1 - cpu0;
    let tar_size = std::fs::metadata(&tar_out).unwrap().len();

    let ours_out = dir.path().join("snapshot.tar.gz");
    let t = Instant::now();
    let out = Command::new(std::env::current_exe().unwrap())
        .env("KEA_BENCH_CHILD", &x)
        .env("KEA_BENCH_OUT", &ours_out)
        .output()
        .expect("child");
    let wall = t.elapsed().as_secs_f64();
    let ours_cpu = children_cpu() - cpu1;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8_lossy(&out.stdout);
    let breakdown = String::from_utf8_lossy(&out.stderr).into_owned();
    let v: Vec<&str> = line.split_whitespace().collect();
    let secs: f64 = v[0].parse().unwrap();
    let hwm_kb: u64 = v[1].parse().unwrap();
    let ours_size = std::fs::metadata(&ours_out).unwrap().len();

    // The archive must hold the effective set: gzip -t and a line count through tar.
    let check = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "tar xzOf {} kea-leases4.csv | wc -l",
            ours_out.display()
        ))
        .output()
        .unwrap();
    let lines: u64 = String::from_utf8_lossy(&check.stdout)
        .trim()
        .parse()
        .unwrap();
    assert_eq!(lines, v[2].parse::<u64>().unwrap() + 1);

    println!(
        "tar czf (3 files):               {tar_secs:.3} s wall, {tar_cpu:.3} s CPU, {tar_size} bytes"
    );
    println!(
        "snapshot -> compact -> tar.gz:   {secs:.3} s wall ({wall:.3} s incl. process start), {ours_cpu:.3} s CPU, {ours_size} bytes, {} leases, {} bytes uncompressed",
        v[2], v[3]
    );
    print!("{breakdown}");
    println!(
        "ratio (snapshot / tar czf):      {:.2}x wall (target <= 0.5x), {:.2}x CPU",
        secs / tar_secs,
        ours_cpu / tar_cpu
    );
    println!(
        "peak RSS of snapshot path:       {:.1} MB (VmHWM; target <= 256 MB)",
        hwm_kb as f64 / 1024.0
    );
}
