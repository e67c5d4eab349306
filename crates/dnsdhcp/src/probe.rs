//! The chart's probes: each asks the daemon itself, never a file that may outlive it.
//!
//! * [`knot`]: Knot answers `status` on its control socket (what `knotc status` sends). Knot
//!   serves one control connection at a time, so while a long zone operation (a backup, a
//!   restore, a static-record merge) holds the socket, a DNS query to Knot decides instead.
//! * [`kea`]: Kea (`kea-dhcp4` or `kea-dhcp-ddns`) answers `status-get` on its control socket
//!   with result 0.
//! * [`post_start_ready`]: `dnsdhcp pod post-start` has finished and left the pod ready (see
//!   [`PostStartState`]): knot-auth's readiness, so a failed static-record merge can keep the
//!   pod from becoming Ready when the chart asks for that.

use std::fs;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::Duration;

use kea_leases::{ControlClient, ControlError, UnixConnector};
use knot_ctl::{Client, Timeouts};
use serde::{Deserialize, Serialize};

/// Why a probe failed: the daemon does not answer, or not as it should.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    /// Knot answers neither on its control socket nor over DNS.
    #[error("knot does not answer a DNS query on {dns} ({dns_error}), nor `status` on {}", socket.display())]
    Knot {
        /// The control socket.
        socket: PathBuf,
        /// Why the control channel failed.
        #[source]
        control: Box<knot_ctl::Error>,
        /// The DNS address asked instead.
        dns: SocketAddr,
        /// Why the DNS query failed.
        dns_error: io::Error,
    },
    /// Kea's control channel failed or `status-get` did not succeed.
    #[error("{} does not answer status-get", socket.display())]
    Kea {
        /// The control socket.
        socket: PathBuf,
        /// The error.
        #[source]
        source: Box<ControlError>,
    },
    /// post-start has not finished yet (no state file).
    #[error("post-start has not finished ({} does not exist yet)", path.display())]
    PostStartRunning {
        /// The state file.
        path: PathBuf,
    },
    /// The state file cannot be read.
    #[error("{}: {source}", path.display())]
    StateFile {
        /// The state file.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// post-start finished and keeps the pod not Ready.
    #[error("not ready: {0}")]
    NotReady(String),
}

/// How Knot answered [`knot`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KnotAnswer {
    /// `status` on the control socket.
    Control,
    /// The control socket is busy (or unreachable) but Knot answers DNS.
    Dns,
}

/// Knot is alive: it answers `status` on `socket` within `timeout`, or, failing that, a DNS
/// query sent to `dns` (any answer counts: the query is for the root SOA, which Knot refuses).
pub fn knot(socket: &Path, dns: SocketAddr, timeout: Duration) -> Result<KnotAnswer, ProbeError> {
    let timeouts = Timeouts {
        connect: timeout,
        read: timeout,
        write: timeout,
    };
    let control = Client::connect_with(socket, timeouts).and_then(|mut c| c.status());
    let Err(control) = control else {
        return Ok(KnotAnswer::Control);
    };
    match dns_answers(dns, timeout) {
        Ok(()) => Ok(KnotAnswer::Dns),
        Err(dns_error) => Err(ProbeError::Knot {
            socket: socket.to_owned(),
            control: Box::new(control),
            dns,
            dns_error,
        }),
    }
}

/// Sends one DNS query (`. SOA`) over UDP and waits for a reply with the same ID.
fn dns_answers(server: SocketAddr, timeout: Duration) -> io::Result<()> {
    let bind: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0".parse().expect("literal")
    } else {
        "[::]:0".parse().expect("literal")
    };
    let sock = UdpSocket::bind(bind)?;
    sock.connect(server)?;
    sock.set_read_timeout(Some(timeout))?;
    let id = (std::process::id() as u16) ^ 0x5a5a;
    let mut query = Vec::with_capacity(17);
    query.extend_from_slice(&id.to_be_bytes());
    // Flags 0 (a query, no recursion), one question, no other sections.
    query.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    // The root name, type SOA (6), class IN (1).
    query.extend_from_slice(&[0, 0, 6, 0, 1]);
    sock.send(&query)?;
    let mut buf = [0u8; 512];
    loop {
        let n = sock.recv(&mut buf)?;
        // A response (QR set) to our ID.
        if n >= 12 && buf[..2] == id.to_be_bytes() && buf[2] & 0x80 != 0 {
            return Ok(());
        }
    }
}

/// Kea (`kea-dhcp4` or `kea-dhcp-ddns`) answers `status-get` on `socket` with result 0 within
/// `timeout`.
pub fn kea(socket: &Path, timeout: Duration) -> Result<(), ProbeError> {
    let mut connector = UnixConnector::new(socket);
    connector.timeout = Some(timeout);
    let client = ControlClient::new(connector);
    client
        .call("status-get", None)
        .map(|_| ())
        .map_err(|source| ProbeError::Kea {
            socket: socket.to_owned(),
            source: Box::new(source),
        })
}

/// What a failed static-record merge does in the pod (the chart's `postStart.onMergeError`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnMergeError {
    /// knot-auth does not become Ready (so `helm upgrade --wait` fails); Knot keeps serving.
    #[default]
    Fail,
    /// Logged only.
    Warn,
}

impl std::str::FromStr for OnMergeError {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "fail" => Ok(Self::Fail),
            "warn" => Ok(Self::Warn),
            other => Err(format!("{other:?}: expected `fail` or `warn`")),
        }
    }
}

/// How the static-record merge of post-start ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum RecordsMerge {
    /// Merged (possibly with nothing to change).
    Merged {
        /// RRsets changed.
        changes: usize,
    },
    /// No values file: nothing to merge.
    NoValues,
    /// Not merged; the zones are as they were.
    Failed {
        /// Why.
        error: String,
    },
}

/// What post-start leaves for knot-auth's readiness probe (a small JSON file in Knot's run
/// directory, an emptyDir: a restarted pod starts without one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostStartState {
    /// Whether the pod may become Ready.
    pub ready: bool,
    /// How the merge ended.
    pub records: RecordsMerge,
}

impl PostStartState {
    /// The state after a merge that ended as `records`, under policy `on_error`.
    pub fn new(records: RecordsMerge, on_error: OnMergeError) -> Self {
        let failed = matches!(records, RecordsMerge::Failed { .. });
        Self {
            ready: !(failed && on_error == OnMergeError::Fail),
            records,
        }
    }

    /// Writes the state to `path` atomically (a temporary file renamed).
    pub fn write(&self, path: &Path) -> io::Result<()> {
        let tmp = path.with_extension("tmp");
        let json = serde_json::to_vec(self).map_err(io::Error::other)?;
        fs::write(&tmp, json)?;
        fs::rename(&tmp, path)
    }
}

/// Removes a state file left by an earlier post-start (so readiness waits for this run).
pub fn clear_post_start_state(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// post-start has finished and left the pod ready.
pub fn post_start_ready(path: &Path) -> Result<PostStartState, ProbeError> {
    let data = match fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(ProbeError::PostStartRunning {
                path: path.to_owned(),
            });
        }
        Err(source) => {
            return Err(ProbeError::StateFile {
                path: path.to_owned(),
                source,
            });
        }
    };
    let state: PostStartState =
        serde_json::from_slice(&data).map_err(|e| ProbeError::StateFile {
            path: path.to_owned(),
            source: io::Error::new(io::ErrorKind::InvalidData, e),
        })?;
    if state.ready {
        return Ok(state);
    }
    Err(ProbeError::NotReady(match &state.records {
        RecordsMerge::Failed { error } => format!(
            "static records NOT merged (postStart.onMergeError=fail; fix them, or set it to \
             warn): {error}"
        ),
        other => format!("{other:?}"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_merge_keeps_the_pod_unready_only_under_fail() {
        let failed = RecordsMerge::Failed { error: "x".into() };
        assert!(!PostStartState::new(failed.clone(), OnMergeError::Fail).ready);
        assert!(PostStartState::new(failed, OnMergeError::Warn).ready);
        assert!(PostStartState::new(RecordsMerge::Merged { changes: 1 }, OnMergeError::Fail).ready);
        assert!(PostStartState::new(RecordsMerge::NoValues, OnMergeError::Fail).ready);
    }

    #[test]
    fn readiness_follows_the_state_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("post-start.json");
        assert!(matches!(
            post_start_ready(&path),
            Err(ProbeError::PostStartRunning { .. })
        ));
        let failed = RecordsMerge::Failed {
            error: "home.arpa: bad rdata".into(),
        };
        PostStartState::new(failed.clone(), OnMergeError::Fail)
            .write(&path)
            .unwrap();
        let e = post_start_ready(&path).unwrap_err().to_string();
        assert!(e.contains("bad rdata") && e.contains("onMergeError"), "{e}");
        PostStartState::new(failed, OnMergeError::Warn)
            .write(&path)
            .unwrap();
        assert!(post_start_ready(&path).is_ok());
        clear_post_start_state(&path).unwrap();
        clear_post_start_state(&path).unwrap();
        assert!(post_start_ready(&path).is_err());
    }

    #[test]
    fn on_merge_error_parses_the_chart_values() {
        assert_eq!("fail".parse::<OnMergeError>(), Ok(OnMergeError::Fail));
        assert_eq!("warn".parse::<OnMergeError>(), Ok(OnMergeError::Warn));
        assert!("ignore".parse::<OnMergeError>().is_err());
    }
}
