//! Where the daemons are: their control sockets and files.
//!
//! [`LocalTarget`] is Knot and Kea on this host (or in this pod): UNIX sockets and the lease
//! file, reached directly. Every operation in [`crate::backup`], [`crate::restore`] and
//! [`crate::pod`] is written over it; the Kubernetes transport runs those same operations inside
//! the pod.

use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kea_leases::{ControlClient, UnixConnector};
use knot_ctl::{Client, Timeouts};

/// Default Knot control socket.
pub const DEFAULT_KNOT_SOCKET: &str = "/run/knot/knot.sock";
/// Default Kea DHCPv4 control socket.
pub const DEFAULT_KEA_SOCKET: &str = "/run/kea/kea4-ctrl-socket";
/// Default Kea DHCPv4 memfile lease file.
pub const DEFAULT_KEA_LEASE_FILE: &str = "/var/lib/kea/kea-leases4.csv";

/// Knot and Kea on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalTarget {
    /// Knot's control socket.
    pub knot_socket: PathBuf,
    /// Kea DHCPv4's control socket.
    pub kea_socket: PathBuf,
    /// Kea DHCPv4's memfile lease file (the current file; `.1`, `.2`, `.completed` beside it).
    pub kea_lease_file: PathBuf,
    /// The name archives carry (`knot-zones-<name>-<stamp>.tar.gz`): the host name by default.
    pub name: String,
}

impl Default for LocalTarget {
    fn default() -> Self {
        LocalTarget {
            knot_socket: DEFAULT_KNOT_SOCKET.into(),
            kea_socket: DEFAULT_KEA_SOCKET.into(),
            kea_lease_file: DEFAULT_KEA_LEASE_FILE.into(),
            name: host_name(),
        }
    }
}

impl LocalTarget {
    /// Connects to Knot's control socket.
    pub fn knot(&self) -> Result<Client<UnixStream>, knot_ctl::Error> {
        Client::connect_with(&self.knot_socket, Timeouts::default())
    }

    /// Connects to Knot, retrying until it answers `status` or `timeout` passes.
    pub fn wait_for_knot(&self, timeout: Duration) -> Result<Client<UnixStream>, knot_ctl::Error> {
        let deadline = Instant::now() + timeout;
        loop {
            let attempt = self.knot().and_then(|mut c| c.status().map(|()| c));
            match attempt {
                Ok(c) => return Ok(c),
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    /// A client for Kea's control channel (one connection per command, as Kea wants).
    pub fn kea(&self) -> ControlClient<UnixConnector> {
        ControlClient::unix(&self.kea_socket)
    }

    /// The directory holding the lease files.
    pub fn lease_dir(&self) -> &Path {
        self.kea_lease_file.parent().unwrap_or(Path::new("."))
    }

    /// `local:<name>`, the source recorded in archive manifests.
    pub fn source(&self) -> String {
        format!("local:{}", self.name)
    }

    /// The owner (uid, gid) of Knot's control socket: the user knotd runs as. Directories Knot
    /// must write into (backups) are handed to it.
    pub fn knot_owner(&self) -> Option<(u32, u32)> {
        let meta = std::fs::metadata(&self.knot_socket).ok()?;
        Some((meta.uid(), meta.gid()))
    }
}

/// This machine's host name (`localhost` if it cannot be read).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Where a command works: resolved once from the command line, before anything runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Knot and Kea on this host (`--local`).
    Local(LocalTarget),
    /// The StatefulSet's pod, through the Kubernetes API.
    Kube(crate::kube::KubeTarget),
}
