//! Real S3 servers on 127.0.0.1: `moto` in server mode (PyPI `moto[server]`) and `s3s-fs`
//! (crates.io), each in a temporary directory, stopped when dropped. A missing server is a test
//! failure naming how to install it (`scripts/install-deps.sh` installs both), never a skip.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::knot::free_port;

/// Which S3 implementation to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum S3Kind {
    /// moto's server mode (Python): accepts any credentials.
    Moto,
    /// s3s-fs (Rust): objects as files, checks signatures against one key pair.
    S3sFs,
}

/// The access key the servers are started with.
pub const ACCESS_KEY: &str = "AKIADNSDHCPTEST00001";
/// The secret key the servers are started with.
pub const SECRET_KEY: &str = "dnsdhcp-test-secret-key-0000000000000000";

/// A running S3 server.
pub struct S3Server {
    /// Which implementation.
    pub kind: S3Kind,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

/// The `s3s-fs` binary: `$DNSDHCP_S3S_FS`, else `.cache/s3s-fs/bin/s3s-fs` of the repository,
/// else `s3s-fs` on `PATH`.
pub fn s3s_fs_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("DNSDHCP_S3S_FS") {
        return p.into();
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let cached = repo.join(".cache/s3s-fs/bin/s3s-fs");
    if cached.exists() {
        return cached;
    }
    which("s3s-fs").unwrap_or(cached)
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

impl S3Server {
    /// Starts `kind` on a free port of 127.0.0.1 and waits until it answers.
    pub fn start(kind: S3Kind) -> S3Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("server.log")).expect("log file");
        let mut cmd = match kind {
            S3Kind::Moto => {
                let moto = which("moto_server").unwrap_or_else(|| {
                    panic!(
                        "moto_server not found on PATH: install the PyPI package `moto[server]` \
                         (pip install 'moto[server]', or scripts/install-deps.sh); these tests \
                         never skip"
                    )
                });
                let mut c = Command::new(moto);
                c.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
                c
            }
            S3Kind::S3sFs => {
                let bin = s3s_fs_binary();
                assert!(
                    bin.is_file(),
                    "{} not found: install the crates.io package `s3s-fs` (scripts/install-deps.sh \
                     runs cargo install s3s-fs --features binary --root .cache/s3s-fs); these \
                     tests never skip",
                    bin.display()
                );
                let root = dir.path().join("root");
                std::fs::create_dir(&root).expect("s3s-fs root");
                let mut c = Command::new(bin);
                c.args(["--host", "127.0.0.1", "--port", &port.to_string()])
                    .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
                    .arg(&root);
                c
            }
        };
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {kind:?}: {e}"));
        let mut server = S3Server {
            kind,
            endpoint: format!("http://127.0.0.1:{port}"),
            child: Some(child),
            dir,
        };
        server.wait_until_up(port);
        server
    }

    fn wait_until_up(&mut self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("{:?} exited ({status}); log:\n{}", self.kind, self.log());
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "{:?} did not listen within 60 s; log:\n{}",
            self.kind,
            self.log()
        );
    }

    /// The server's output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Creates bucket `name` (moto: an unsigned `PUT /name`, which moto accepts; s3s-fs: a
    /// directory under its root).
    pub fn create_bucket(&self, name: &str) {
        match self.kind {
            S3Kind::S3sFs => {
                std::fs::create_dir(self.dir.path().join("root").join(name)).expect("bucket dir")
            }
            S3Kind::Moto => {
                let status = self.raw_request("PUT", &format!("/{name}"));
                assert!(
                    status.starts_with("HTTP/1.1 200"),
                    "create bucket: {status}"
                );
            }
        }
    }

    /// Sends one bodiless request and returns the status line.
    fn raw_request(&self, method: &str, path: &str) -> String {
        let host = self.endpoint.trim_start_matches("http://");
        let mut s = TcpStream::connect(host).expect("connect");
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .expect("send");
        let mut resp = String::new();
        let _ = s.read_to_string(&mut resp);
        resp.lines().next().unwrap_or_default().to_owned()
    }

    /// The file s3s-fs keeps object `key` of `bucket` in (to tamper with it in tests).
    pub fn object_file(&self, bucket: &str, key: &str) -> PathBuf {
        assert_eq!(
            self.kind,
            S3Kind::S3sFs,
            "only s3s-fs keeps objects as files"
        );
        self.dir.path().join("root").join(bucket).join(key)
    }

    /// Stops the server now (kill), as a server that goes away mid-transfer.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Environment for a client: endpoint, region and the server's key pair.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
        ]
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}
