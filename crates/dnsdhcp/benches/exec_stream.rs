//! Streaming a 200 MB archive through the exec WebSocket vs through a plain local pipe.
//!
//! Both ways run the same in-pod commands (`dnsdhcp pod send-file` / `receive-file`) and do the
//! same work at the receiving end (SHA-256, file written and fsynced); only the transport
//! differs: (a) kube-rs exec over a WebSocket to the FAKE API server of `tests/kube_fake.rs` on
//! 127.0.0.1, which runs the command locally; (b) the command's stdin/stdout pipe directly.
//! Target: (a) at most 1.5x (b). Run: `cargo bench -p dnsdhcp --bench exec_stream`
//! (`EXEC_STREAM_MB=N` to change the size, `EXEC_STREAM_RUNS=N` the repetitions; best run counts).

#[path = "../tests/kube_fake.rs"]
mod kube_fake;

use std::fs;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dnsdhcp::kube::{Cluster, KubeTarget, ProgressMode};
use kube_fake::{FakeApi, FakeConfig};
use sha2::{Digest, Sha256};

const BIN: &str = env!("CARGO_BIN_EXE_dnsdhcp");

fn make_file(path: &Path, len: u64) {
    let mut f = std::io::BufWriter::with_capacity(1 << 20, fs::File::create(path).unwrap());
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        for chunk in buf.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
        }
        let n = left.min(buf.len() as u64) as usize;
        f.write_all(&buf[..n]).unwrap();
        left -= n as u64;
    }
    f.flush().unwrap();
}

fn digest(path: &Path) -> (u64, String) {
    let mut f = fs::File::open(path).unwrap();
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let r = f.read(&mut buf).unwrap();
        if r == 0 {
            break;
        }
        h.update(&buf[..r]);
        n += r as u64;
    }
    (n, hex::encode(h.finalize()))
}

/// (b) download: `dnsdhcp pod send-file SRC | (sha256 + write DEST + fsync)`.
fn pipe_download(src: &Path, dest: &Path) -> Duration {
    let t = Instant::now();
    let mut child = Command::new(BIN)
        .args(["pod", "send-file"])
        .arg(src)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut f = fs::File::create(dest).unwrap();
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = out.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        f.write_all(&buf[..n]).unwrap();
    }
    f.sync_all().unwrap();
    let _ = h.finalize();
    assert!(child.wait().unwrap().success());
    t.elapsed()
}

/// (b) upload: digest first (as the transport does), then
/// `(read SRC) | dnsdhcp pod receive-file --size N --sha256 H DEST`.
fn pipe_upload(src: &Path, dest: &Path) -> Duration {
    let t = Instant::now();
    let (size, sha) = digest(src);
    let mut child = Command::new(BIN)
        .args([
            "pod",
            "receive-file",
            "--size",
            &size.to_string(),
            "--sha256",
            &sha,
        ])
        .arg(dest)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let mut f = fs::File::open(src).unwrap();
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        input.write_all(&buf[..n]).unwrap();
    }
    drop(input);
    assert!(child.wait().unwrap().success());
    t.elapsed()
}

fn main() {
    let mb: u64 = std::env::var("EXEC_STREAM_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let runs: usize = std::env::var("EXEC_STREAM_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let len = mb * 1000 * 1000;
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("archive.tar.gz");
    make_file(&src, len);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let _in_runtime = rt.enter();
    let fake = rt.block_on(FakeApi::start(
        FakeConfig::new(BIN).container("knot-auth", &[]),
    ));
    let mut c = Cluster::new(
        fake.client(),
        &KubeTarget {
            context: None,
            namespace: "dns-dhcp".into(),
            statefulset: "unified-dns-dhcp".into(),
            name: None,
        },
    );
    c.progress = ProgressMode::Quiet;

    let best = |v: &mut Vec<Duration>| {
        v.sort();
        v[0]
    };
    let (mut pd, mut ed, mut pu, mut eu) = (vec![], vec![], vec![], vec![]);
    for _ in 0..runs {
        let out = dir.path().join("out.bin");
        pd.push(pipe_download(&src, &out));
        fs::remove_file(&out).unwrap();

        let t = Instant::now();
        rt.block_on(c.download_file("knot-auth", src.to_str().unwrap(), &out))
            .expect("exec download");
        ed.push(t.elapsed());
        fs::remove_file(&out).unwrap();

        pu.push(pipe_upload(&src, &out));
        fs::remove_file(&out).unwrap();

        let t = Instant::now();
        rt.block_on(c.upload_file("knot-auth", &src, out.to_str().unwrap()))
            .expect("exec upload");
        eu.push(t.elapsed());
        fs::remove_file(&out).unwrap();
    }
    let (pd, ed, pu, eu) = (best(&mut pd), best(&mut ed), best(&mut pu), best(&mut eu));
    let rate = |d: Duration| len as f64 / d.as_secs_f64() / 1e6;
    println!("exec_stream: {mb} MB, best of {runs} runs");
    println!(
        "  download  pipe {:>7.3}s ({:>6.0} MB/s)   exec {:>7.3}s ({:>6.0} MB/s)   ratio {:.2}x",
        pd.as_secs_f64(),
        rate(pd),
        ed.as_secs_f64(),
        rate(ed),
        ed.as_secs_f64() / pd.as_secs_f64()
    );
    println!(
        "  upload    pipe {:>7.3}s ({:>6.0} MB/s)   exec {:>7.3}s ({:>6.0} MB/s)   ratio {:.2}x",
        pu.as_secs_f64(),
        rate(pu),
        eu.as_secs_f64(),
        rate(eu),
        eu.as_secs_f64() / pu.as_secs_f64()
    );
    println!("  target: ratio <= 1.50x");
}
