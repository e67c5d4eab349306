//! The small commands the Kubernetes transport runs inside the pod (`dnsdhcp pod send-file`,
//! `dnsdhcp pod receive-file`, `dnsdhcp zones status`): plain blocking code over stdin/stdout.

use std::fs::{self, File, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::target::LocalTarget;

/// Format version of every JSON document dnsdhcp prints (`"version"`), the results the in-pod
/// commands print for the workstation among them (both sides share the types; a result of
/// another version is refused).
pub const FORMAT_VERSION: u32 = 1;

/// A JSON report as `--json` prints it: `kind` (which command's report), the format
/// `version`, and the report's own fields. The pod prints it, the workstation parses it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Report<T> {
    /// Which command's report.
    pub kind: String,
    /// [`FORMAT_VERSION`].
    pub version: u32,
    /// The report's fields.
    #[serde(flatten)]
    pub body: T,
}

impl<T> Report<T> {
    /// `body` as a report of `kind` in this format version.
    pub fn new(kind: &str, body: T) -> Report<T> {
        Report {
            kind: kind.to_owned(),
            version: FORMAT_VERSION,
            body,
        }
    }
}

/// The JSON error object a command prints on stdout with `--json` when it fails (kind
/// `error`); the Kubernetes target reads an in-pod restore's back to report it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ErrorReport {
    /// The message, each cause once.
    pub error: String,
    /// What to do, where the fix is always the same.
    pub hint: Option<String>,
    /// A restore that stopped part-way: what is in place, what is not, how to finish.
    pub incomplete: Option<Incomplete>,
    /// A backup that kept `zones.tar.gz` / `kea-leases.tar.gz`: per kind refused, the
    /// [`crate::backup::ShrinkRefused`] (kept file, old and new counts, reason).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept: Option<serde_json::Value>,
}

/// What a restore that stopped part-way left (see
/// [`crate::restore::RestoreError::Incomplete`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Incomplete {
    /// What is restored.
    pub restored: Vec<String>,
    /// What is not.
    pub not_restored: Vec<String>,
    /// The command that finishes the restore.
    pub finish: String,
}

impl Incomplete {
    /// The parts of an incomplete-restore error, if `e` is one.
    pub fn of(e: &crate::restore::RestoreError) -> Option<Incomplete> {
        match e {
            crate::restore::RestoreError::Incomplete {
                restored,
                not_restored,
                finish,
                ..
            } => Some(Incomplete {
                restored: restored.clone(),
                not_restored: not_restored.clone(),
                finish: finish.clone(),
            }),
            _ => None,
        }
    }
}

/// `zones status --json`: every zone Knot serves and its serial.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ZonesStatus {
    /// The zones.
    pub items: Vec<ZoneServing>,
}

/// `leases count --json`: how many leases Kea holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LeasesCount {
    /// The number.
    pub count: u64,
}

/// Parses the report of `kind` an in-pod `command` printed (see [`parse_result`]).
pub fn parse_report<T: serde::de::DeserializeOwned>(
    stdout: &[u8],
    command: &str,
    kind: &str,
) -> Result<T, super::KubeError> {
    let r: Report<T> = parse_result(stdout, command, |r: &Report<T>| r.version)?;
    if r.kind == kind {
        Ok(r.body)
    } else {
        Err(super::KubeError::Protocol {
            command: command.to_owned(),
            detail: format!("a {:?} report where {kind:?} was expected", r.kind),
        })
    }
}

/// Parses the result an in-pod `command` printed on stdout as `T`, whose format version
/// `version_of` reads: output that is not a `T`, or of another format version, is refused.
pub fn parse_result<T: serde::de::DeserializeOwned>(
    stdout: &[u8],
    command: &str,
    version_of: impl Fn(&T) -> u32,
) -> Result<T, super::KubeError> {
    let bad = |detail: String| super::KubeError::Protocol {
        command: command.to_owned(),
        detail,
    };
    let value: T = serde_json::from_slice(stdout).map_err(|e| {
        bad(format!(
            "{e}: {}",
            String::from_utf8_lossy(&stdout[..stdout.len().min(4096)])
        ))
    })?;
    match version_of(&value) {
        FORMAT_VERSION => Ok(value),
        v => Err(bad(format!(
            "format version {v}, this dnsdhcp reads version {FORMAT_VERSION}"
        ))),
    }
}

/// Reads exactly `size` bytes of JSON from `input` (the workstation announces the length, so
/// the end of input never needs signalling) and parses them as `T`.
pub fn read_json<T: serde::de::DeserializeOwned>(
    input: &mut impl Read,
    size: u64,
) -> io::Result<T> {
    let mut buf = Vec::new();
    input.take(size).read_to_end(&mut buf)?;
    if (buf.len() as u64) < size {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("input ended after {} of {size} bytes", buf.len()),
        ));
    }
    serde_json::from_slice(&buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Chunk size of the in-pod copies.
const CHUNK: usize = 256 << 10;

/// What `send-file` sent; written as the last line of its stderr so the receiver can check it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SentFile {
    /// [`FORMAT_VERSION`].
    pub version: u32,
    /// Bytes sent.
    pub size: u64,
    /// Lower-case hex SHA-256 of them.
    pub sha256: String,
}

/// The key of the JSON line `send-file` writes to stderr when done.
pub const SENT_KEY: &str = "dnsdhcp-sent";

/// Writes `path` to `out` and returns its size and digest (also written as
/// `{"dnsdhcp-sent":{..}}` on `err`).
pub fn send_file(path: &Path, out: &mut impl Write, err: &mut impl Write) -> io::Result<SentFile> {
    let mut f = File::open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut size = 0u64;
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])?;
        size += n as u64;
    }
    out.flush()?;
    let sent = SentFile {
        version: FORMAT_VERSION,
        size,
        sha256: hex::encode(hasher.finalize()),
    };
    let line = serde_json::to_string(&SentTrailer { sent: sent.clone() })?;
    writeln!(err, "{line}")?;
    err.flush()?;
    Ok(sent)
}

/// The last line `send-file` writes to stderr: `{"dnsdhcp-sent": {..}}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SentTrailer {
    /// What was sent.
    #[serde(rename = "dnsdhcp-sent")]
    pub sent: SentFile,
}

/// Finds the `send-file` trailer in a captured stderr.
pub fn parse_sent(stderr: &str) -> Option<SentFile> {
    stderr.lines().rev().find_map(|l| {
        serde_json::from_str::<SentTrailer>(l.trim())
            .ok()
            .map(|t| t.sent)
    })
}

/// What `receive-file` wrote, printed as one JSON line on its stdout.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Received {
    /// [`FORMAT_VERSION`].
    pub version: u32,
    /// Where the file is now.
    pub path: String,
    /// Its size.
    pub size: u64,
}

/// Why `receive-file` failed. The destination is unchanged and no temporary file remains.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    /// The input ended early (the connection was lost).
    #[error("{}: input ended after {got} of {expected} bytes; nothing written", path.display())]
    Short {
        /// The destination.
        path: PathBuf,
        /// Bytes read.
        got: u64,
        /// Bytes announced.
        expected: u64,
    },
    /// The bytes do not have the announced digest.
    #[error("{}: SHA-256 mismatch (got {got}, expected {expected}); nothing written", path.display())]
    Digest {
        /// The destination.
        path: PathBuf,
        /// What arrived.
        got: String,
        /// What was announced.
        expected: String,
    },
    /// A file-system step failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
}

/// Reads exactly `size` bytes from `input` into a temporary file beside `dest` (mode 0600),
/// checks their SHA-256, fsyncs and renames it to `dest`. Reads nothing past `size`, so it
/// works when the sender cannot signal the end of its input (exec protocol v4). On a short
/// input or a wrong digest the temporary file is removed and `dest` is untouched.
pub fn receive_file(
    dest: &Path,
    size: u64,
    sha256: &str,
    input: &mut impl Read,
) -> Result<(), ReceiveError> {
    let io_at = |path: &Path| {
        let path = path.to_owned();
        move |source| ReceiveError::Io { path, source }
    };
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    if !dir.exists() {
        fs::create_dir_all(&dir).map_err(io_at(&dir))?;
        fs::set_permissions(&dir, Permissions::from_mode(0o700)).map_err(io_at(&dir))?;
    }
    let name = dest.file_name().unwrap_or_default().to_string_lossy();
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}.partial-"))
        .permissions(Permissions::from_mode(0o600))
        .tempfile_in(&dir)
        .map_err(io_at(&dir))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut got = 0u64;
    while got < size {
        let want = (size - got).min(CHUNK as u64) as usize;
        let n = match input.read(&mut buf[..want]) {
            Ok(0) => {
                return Err(ReceiveError::Short {
                    path: dest.to_owned(),
                    got,
                    expected: size,
                });
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_at(Path::new("<stdin>"))(e)),
        };
        hasher.update(&buf[..n]);
        tmp.write_all(&buf[..n]).map_err(io_at(tmp.path()))?;
        got += n as u64;
    }
    let digest = hex::encode(hasher.finalize());
    if !digest.eq_ignore_ascii_case(sha256) {
        return Err(ReceiveError::Digest {
            path: dest.to_owned(),
            got: digest,
            expected: sha256.to_owned(),
        });
    }
    tmp.as_file().sync_all().map_err(io_at(tmp.path()))?;
    tmp.persist(dest).map_err(|e| io_at(dest)(e.error))?;
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(io_at(&dir))?;
    Ok(())
}

/// A zone and the serial Knot serves (None: not loaded).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ZoneServing {
    /// The zone (FQDN, as Knot names it).
    pub zone: String,
    /// The SOA serial served, if loaded.
    pub serial: Option<u32>,
}

/// Every zone Knot serves and its serial (`dnsdhcp zones status`).
pub fn zones_status(target: &LocalTarget) -> Result<Vec<ZoneServing>, knot_ctl::Error> {
    let mut client = target.knot()?;
    Ok(client
        .zone_status_all()?
        .into_iter()
        .map(|s| ZoneServing {
            zone: s.zone,
            serial: s.serial,
        })
        .collect())
}

/// A raw handle on this process's standard output, unbuffered (for binary streams).
pub fn raw_stdout() -> io::Result<File> {
    use std::os::fd::AsFd;
    Ok(File::from(io::stdout().as_fd().try_clone_to_owned()?))
}

/// A raw handle on this process's standard input, unbuffered.
pub fn raw_stdin() -> io::Result<File> {
    use std::os::fd::AsFd;
    Ok(File::from(io::stdin().as_fd().try_clone_to_owned()?))
}
