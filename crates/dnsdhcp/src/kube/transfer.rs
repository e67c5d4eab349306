//! Files in and out of the pod over exec: `dnsdhcp pod send-file` / `receive-file` in the pod.

use std::fs::Permissions;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use sha2::{Digest, Sha256};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::error::{KubeError, io_at};
use super::exec::{ExecLimits, Place, Stdin, exec};
use super::inpod::{FORMAT_VERSION, Received, parse_result, parse_sent};
use super::progress::{ProgressMode, human};
use crate::archive::{self, Limits};

/// An `AsyncWrite` that hashes what passes through.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: AsyncWrite + Unpin> AsyncWrite for Hashing<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                this.hasher.update(&buf[..n]);
                this.bytes += n as u64;
                Poll::Ready(Ok(n))
            }
            other => other,
        }
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// What to do with a downloaded file before it gets its final name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// `archive::verify` must pass.
    Archive,
    /// Nothing beyond size and digest.
    None,
}

/// Streams `remote` (a file in the container) to `local` atomically: a hidden temporary file
/// (mode 0600) beside it, checked against the sender's size and SHA-256, fsynced, optionally
/// verified as an archive, then renamed. On any error the temporary file is removed and
/// `local` is untouched.
pub(crate) async fn download(
    at: &Place<'_>,
    binary: &str,
    remote: &str,
    local: &Path,
    check: Check,
    limits: ExecLimits,
    progress: ProgressMode,
) -> Result<u64, KubeError> {
    let dir = match local.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let (tmp, file) = partial_file(&dir, local).await?;
    let mut sink = Hashing {
        inner: tokio::io::BufWriter::with_capacity(1 << 20, tokio::fs::File::from_std(file)),
        hasher: Sha256::new(),
        bytes: 0,
    };
    let command = vec![
        binary.to_owned(),
        "pod".into(),
        "send-file".into(),
        remote.to_owned(),
    ];
    let mut transfer = progress.transfer(
        format!("{}:{remote} -> {}", at.container, local.display()),
        None,
        false,
    );
    let during = format!("download of {remote}");
    let out = exec(
        at,
        &command,
        None,
        &mut sink,
        Some(&mut transfer),
        limits,
        &during,
    )
    .await?;
    let sent = parse_sent(&out.stderr)
        .filter(|s| s.version == FORMAT_VERSION)
        .ok_or_else(|| KubeError::Protocol {
            command: command.join(" "),
            detail: format!(
                "no size/digest line of format version {FORMAT_VERSION} on stderr (is the dnsdhcp in the pod another version?)"
            ),
        })?;
    let got = hex::encode(sink.hasher.finalize_reset());
    if sent.size != sink.bytes || !sent.sha256.eq_ignore_ascii_case(&got) {
        return Err(KubeError::ConnectionLost {
            pod: at.pod.to_owned(),
            container: at.container.to_owned(),
            during,
            detail: format!(
                "received {} bytes (sha256 {got}), the pod sent {} (sha256 {}); nothing written",
                sink.bytes, sent.size, sent.sha256
            ),
        });
    }
    transfer.finish();
    sink.inner.flush().await.map_err(io_at(tmp.path()))?;
    drop(sink);
    let local_path = local.to_owned();
    blocking(local, move || publish(tmp, &local_path, &dir, check)).await?;
    Ok(sent.size)
}

/// The hidden temporary file (mode 0600) beside `local` in `dir` (created if missing) that a
/// download is written to, and a handle to write it with.
async fn partial_file(
    dir: &Path,
    local: &Path,
) -> Result<(tempfile::NamedTempFile, std::fs::File), KubeError> {
    let name = local
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    // File-system steps run off the async runtime.
    let d = dir.to_owned();
    blocking(dir, move || {
        std::fs::create_dir_all(&d).map_err(io_at(&d))?;
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}.partial-"))
            .permissions(Permissions::from_mode(0o600))
            .tempfile_in(&d)
            .map_err(io_at(&d))?;
        let file = tmp.as_file().try_clone().map_err(io_at(tmp.path()))?;
        Ok((tmp, file))
    })
    .await
}

/// A complete download made durable under its name: the temporary file fsynced, verified as
/// an archive if asked, renamed to `local`, and the rename made durable in `dir`.
fn publish(
    tmp: tempfile::NamedTempFile,
    local: &Path,
    dir: &Path,
    check: Check,
) -> Result<(), KubeError> {
    tmp.as_file().sync_all().map_err(io_at(tmp.path()))?;
    if check == Check::Archive {
        let report = archive::verify(tmp.path(), &Limits::default());
        if !report.ok {
            return Err(KubeError::Verify {
                path: tmp.path().to_owned(),
                problems: report.problems.iter().map(|p| p.to_string()).collect(),
            });
        }
    }
    tmp.persist(local).map_err(|e| io_at(local)(e.error))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_at(dir))
}

/// Runs blocking file-system work `f` (about `path`) on tokio's blocking pool, off the async
/// runtime's worker threads.
pub(crate) async fn blocking<T: Send + 'static>(
    path: &Path,
    f: impl FnOnce() -> Result<T, KubeError> + Send + 'static,
) -> Result<T, KubeError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| io_at(path)(std::io::Error::other(e)))?
}

/// Size and SHA-256 of a local file.
pub(crate) fn digest_file(path: &Path) -> Result<(u64, String), KubeError> {
    let mut f = std::fs::File::open(path).map_err(io_at(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let r = f.read(&mut buf).map_err(io_at(path))?;
        if r == 0 {
            break;
        }
        h.update(&buf[..r]);
        n += r as u64;
    }
    Ok((n, hex::encode(h.finalize())))
}

/// Where `receive-file` puts a file in the pod.
#[derive(Debug, Clone)]
pub(crate) enum RemoteDest {
    /// An absolute path.
    Path(String),
    /// `NAME` in the zones volume (`$DNSDHCP_ZONES_DIR` in the container).
    ZonesDir(String),
    /// `NAME` beside Kea's lease file (`$DNSDHCP_KEA_LEASE_FILE` in the container).
    LeaseDir(String),
}

impl std::fmt::Display for RemoteDest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RemoteDest::Path(p) => f.write_str(p),
            RemoteDest::ZonesDir(n) => write!(f, "$DNSDHCP_ZONES_DIR/{n}"),
            RemoteDest::LeaseDir(n) => write!(f, "<lease dir>/{n}"),
        }
    }
}

/// Streams the local file into the container with `dnsdhcp pod receive-file`, which writes it
/// under its final name only when every byte arrived with the right digest. Returns the size
/// and the path it has in the container.
pub(crate) async fn upload(
    at: &Place<'_>,
    binary: &str,
    local: &Path,
    dest: &RemoteDest,
    limits: ExecLimits,
    progress: ProgressMode,
) -> Result<(u64, String), KubeError> {
    let path = local.to_owned();
    let (size, sha) = blocking(local, move || digest_file(&path)).await?;
    let mut command = vec![
        binary.to_owned(),
        "pod".into(),
        "receive-file".into(),
        "--size".into(),
        size.to_string(),
        "--sha256".into(),
        sha,
    ];
    match dest {
        RemoteDest::Path(p) => command.push(p.clone()),
        RemoteDest::ZonesDir(n) => command.extend(["--into".into(), "zones-dir".into(), n.clone()]),
        RemoteDest::LeaseDir(n) => command.extend(["--into".into(), "lease-dir".into(), n.clone()]),
    }
    let file = tokio::fs::File::open(local).await.map_err(io_at(local))?;
    let mut reader = tokio::io::BufReader::with_capacity(1 << 20, file);
    let mut transfer = progress.transfer(
        format!(
            "{} -> {}:{dest} ({})",
            local.display(),
            at.container,
            human(size)
        ),
        Some(size),
        true,
    );
    let mut out = Vec::new();
    exec(
        at,
        &command,
        Some(Stdin {
            reader: &mut reader,
            len: size,
        }),
        &mut out,
        Some(&mut transfer),
        limits,
        &format!("upload of {}", local.display()),
    )
    .await?;
    transfer.finish();
    let received: Received =
        parse_result(&out, "dnsdhcp pod receive-file", |r: &Received| r.version)?;
    if received.size != size {
        return Err(KubeError::Protocol {
            command: command.join(" "),
            detail: format!("received {} bytes of {size}", received.size),
        });
    }
    Ok((size, received.path))
}
