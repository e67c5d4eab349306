//! `gcp-storage-emulator` (PyPI) on 127.0.0.1, in memory, stopped when dropped. A missing
//! emulator is a test failure naming how to install it (`scripts/install-deps.sh` installs it),
//! never a skip.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::knot::free_port;

/// A running `gcp-storage-emulator`.
pub struct GcsEmulator {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

impl GcsEmulator {
    /// Starts the emulator on a free port of 127.0.0.1 with bucket `bucket` and waits until it
    /// listens.
    pub fn start(bucket: &str) -> GcsEmulator {
        let bin = which("gcp-storage-emulator").unwrap_or_else(|| {
            panic!(
                "gcp-storage-emulator not found on PATH: install the PyPI package \
                 `gcp-storage-emulator` (pip install gcp-storage-emulator, or \
                 scripts/install-deps.sh); these tests never skip"
            )
        });
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("server.log")).expect("log file");
        let child = Command::new(bin)
            .args(["start", "--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--in-memory", "--default-bucket", bucket])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start gcp-storage-emulator: {e}"));
        let mut server = GcsEmulator {
            endpoint: format!("http://127.0.0.1:{port}"),
            child: Some(child),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = server
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "gcp-storage-emulator exited ({status}); log:\n{}",
                    server.log()
                );
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return server;
            }
            assert!(
                Instant::now() < deadline,
                "gcp-storage-emulator did not listen within 60 s; log:\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The server's output so far (its request log).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for GcsEmulator {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
