//! Running one command in a container over the exec WebSocket, with bytes in and out.
//!
//! Standard input, when given, is a stream of known length: the in-pod side reads exactly that
//! many bytes, so the end of input never needs signalling (exec protocol v4 cannot). Standard
//! output goes to any writer; standard error is kept (its last 64 KiB); the exit status comes
//! from the status channel. A connection that ends without a status is a lost connection.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::api::AttachParams;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::{self, Message};

use super::error::{KubeError, Req};
use super::progress::Transfer;

/// Buffer sizes of the exec streams (kube-rs defaults to 1 KiB).
pub const STREAM_BUF: usize = 256 << 10;
/// How much of a command's stderr is kept.
const STDERR_KEEP: usize = 64 << 10;

/// Where a command runs.
#[derive(Clone)]
pub(crate) struct Place<'a> {
    pub client: &'a kube::Client,
    pub namespace: &'a str,
    pub pod: &'a str,
    pub statefulset: &'a str,
    pub container: &'a str,
}

/// Time limits of one exec.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ExecLimits {
    /// Opening the exec stream.
    pub connect: Duration,
    /// No byte moving in either direction (and no exit) for this long.
    pub idle: Duration,
    /// The whole command.
    pub total: Duration,
}

/// What a command produced besides its stdout.
#[derive(Debug, Clone)]
pub(crate) struct ExecOutput {
    /// Standard error (last 64 KiB).
    pub stderr: String,
}

/// Standard input for a command: a reader and exactly how many bytes it yields.
pub(crate) struct Stdin<'a> {
    pub reader: &'a mut (dyn AsyncRead + Unpin + Send),
    pub len: u64,
}

/// Runs `command` in the container; fails unless it exits 0.
pub(crate) async fn exec(
    at: &Place<'_>,
    command: &[String],
    stdin: Option<Stdin<'_>>,
    stdout: &mut (dyn AsyncWrite + Unpin + Send),
    progress: Option<&mut Transfer>,
    limits: ExecLimits,
    during: &str,
) -> Result<ExecOutput, KubeError> {
    use futures::StreamExt;

    let cmdline = command.join(" ");
    let site = Site { at, during, limits };
    let conn = open(&site, command, stdin.is_some(), &cmdline).await?;
    let (tx, rx) = conn.into_stream().split();
    let meter = Meter::new(progress);
    let sender = send_stdin(tx, stdin, &site, &meter);
    let receiver = receive(rx, stdout, &site, &meter, &cmdline);
    let (status, stderr) = run_until_status(sender, receiver, &site, &cmdline).await?;
    finish(at, cmdline, &status, stderr)
}

/// One exec's place, purpose and time limits: what its errors say.
struct Site<'a, 'p> {
    at: &'a Place<'p>,
    during: &'a str,
    limits: ExecLimits,
}

impl Site<'_, '_> {
    fn lost(&self, detail: String) -> KubeError {
        KubeError::ConnectionLost {
            pod: self.at.pod.to_owned(),
            container: self.at.container.to_owned(),
            during: self.during.to_owned(),
            detail,
        }
    }

    /// No byte moved `what` ("to" or "from") the container for the idle limit.
    fn idle_timeout(&self, what: &str) -> KubeError {
        KubeError::Timeout {
            step: format!(
                "{}: no data {what} {}/{} for {}s",
                self.during,
                self.at.pod,
                self.at.container,
                self.limits.idle.as_secs()
            ),
            after: self.limits.idle,
        }
    }
}

/// Bytes moved: the progress bar of the transfer's direction, and the bytes sent so far (the
/// receiving side is not idle while an upload moves).
struct Meter<'t> {
    progress: std::sync::Mutex<Option<&'t mut Transfer>>,
    upload: bool,
    sent: std::sync::atomic::AtomicU64,
}

impl<'t> Meter<'t> {
    fn new(progress: Option<&'t mut Transfer>) -> Self {
        Meter {
            upload: progress.as_ref().is_some_and(|t| t.upload),
            progress: std::sync::Mutex::new(progress),
            sent: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// `n` bytes of stdin sent.
    fn uploaded(&self, n: usize) {
        self.sent
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        self.tick(n, true);
    }

    /// `n` bytes of stdout received.
    fn downloaded(&self, n: usize) {
        self.tick(n, false);
    }

    /// `n` bytes moved up (`upload`) or down: the progress bar moves if it shows that way.
    fn tick(&self, n: usize, upload: bool) {
        if upload == self.upload
            && let Ok(mut p) = self.progress.lock()
            && let Some(p) = p.as_deref_mut()
        {
            p.inc(n as u64);
        }
    }

    /// Bytes of stdin sent so far.
    fn sent(&self) -> u64 {
        self.sent.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Opens the exec stream, within the connect limit.
async fn open(
    site: &Site<'_, '_>,
    command: &[String],
    with_stdin: bool,
    cmdline: &str,
) -> Result<kube::client::Connection, KubeError> {
    use kube::Resource;

    let at = site.at;
    let req = Req {
        verb: "create",
        resource: "pods/exec",
        namespace: at.namespace,
        pod: at.pod,
        statefulset: at.statefulset,
    };
    let ap = AttachParams::default()
        .container(at.container)
        .stdin(with_stdin)
        .stdout(true)
        .stderr(true);
    let request = kube::core::Request::new(Pod::url_path(&(), Some(at.namespace)))
        .exec(at.pod, command.to_vec(), &ap)
        .map_err(|e| KubeError::ExecFailed {
            pod: at.pod.to_owned(),
            container: at.container.to_owned(),
            command: cmdline.to_owned(),
            message: e.to_string(),
        })?;
    // kube-rs's AttachedProcess sends stdin in 4 KiB frames; `send_stdin` sends up to
    // STREAM_BUF per frame and speaks the same channel protocol (v5 and v4).
    let connect = site.limits.connect;
    match tokio::time::timeout(connect, at.client.connect(request)).await {
        Err(_) => Err(KubeError::Timeout {
            step: format!(
                "opening exec in {}/{} for {}",
                at.pod, at.container, site.during
            ),
            after: connect,
        }),
        Ok(Err(e)) => Err(map_exec_error(at, &req, cmdline, e)),
        Ok(Ok(c)) => Ok(c),
    }
}

/// Sends stdin (exactly `len` bytes; stdin is never closed: on protocol v4 that closes the
/// whole connection, and the command reads exactly `len` bytes), then keeps the connection
/// alive with pings. Returns only on an error.
async fn send_stdin<T>(
    mut tx: T,
    stdin: Option<Stdin<'_>>,
    site: &Site<'_, '_>,
    meter: &Meter<'_>,
) -> Result<(), KubeError>
where
    T: futures::Sink<Message, Error = tungstenite::Error> + Unpin,
{
    use futures::SinkExt;

    if let Some(Stdin { reader, len }) = stdin {
        let mut buf = vec![0u8; STREAM_BUF + 1];
        let mut left = len;
        while left > 0 {
            let want = left.min(STREAM_BUF as u64) as usize;
            let n = reader
                .read(&mut buf[1..=want])
                .await
                .map_err(|e| site.lost(format!("reading local input: {e}")))?;
            if n == 0 {
                return Err(site.lost(format!(
                    "local input ended {left} bytes before its announced length"
                )));
            }
            buf[0] = 0; // stdin channel
            let frame = Message::binary(bytes::Bytes::copy_from_slice(&buf[..=n]));
            match tokio::time::timeout(site.limits.idle, tx.send(frame)).await {
                Err(_) => return Err(site.idle_timeout("to")),
                Ok(Err(e)) => return Err(site.lost(format!("sending: {e}"))),
                Ok(Ok(())) => {}
            }
            left -= n as u64;
            meter.uploaded(n);
        }
    }
    loop {
        tokio::time::sleep(Duration::from_secs(30)).await;
        if let Err(e) = tx.send(Message::Ping(Default::default())).await {
            return Err(site.lost(format!("sending: {e}")));
        }
    }
}

/// Writes the stdout channel to `stdout` and keeps the stderr channel's tail until the status
/// arrives: `Some((status, stderr))`, or `None` if the connection closed first.
async fn receive<R>(
    mut rx: R,
    stdout: &mut (dyn AsyncWrite + Unpin + Send),
    site: &Site<'_, '_>,
    meter: &Meter<'_>,
    cmdline: &str,
) -> Result<Option<(Status, Vec<u8>)>, KubeError>
where
    R: futures::Stream<Item = Result<Message, tungstenite::Error>> + Unpin,
{
    use futures::StreamExt;

    let mut stderr_kept: Vec<u8> = Vec::new();
    let mut seen_sent = 0;
    loop {
        let msg = match tokio::time::timeout(site.limits.idle, rx.next()).await {
            Err(_) => {
                let now = meter.sent();
                if now != seen_sent {
                    seen_sent = now;
                    continue;
                }
                return Err(site.idle_timeout("from"));
            }
            Ok(m) => m,
        };
        let b = match msg {
            None | Some(Ok(Message::Close(_))) => return Ok(None),
            Some(Err(e)) => return Err(site.lost(e.to_string())),
            Some(Ok(Message::Binary(b))) if b.len() > 1 => b,
            Some(Ok(_)) => continue,
        };
        match b[0] {
            1 => {
                stdout
                    .write_all(&b[1..])
                    .await
                    .map_err(|e| site.lost(format!("writing locally: {e}")))?;
                meter.downloaded(b.len() - 1);
            }
            2 => {
                stderr_kept.extend_from_slice(&b[1..]);
                if stderr_kept.len() > 2 * STDERR_KEEP {
                    stderr_kept.drain(..stderr_kept.len() - STDERR_KEEP);
                }
            }
            3 => {
                let status: Status =
                    serde_json::from_slice(&b[1..]).map_err(|e| KubeError::Protocol {
                        command: cmdline.to_owned(),
                        detail: format!("exec status: {e}"),
                    })?;
                stdout
                    .flush()
                    .await
                    .map_err(|e| site.lost(format!("writing locally: {e}")))?;
                return Ok(Some((status, stderr_kept)));
            }
            _ => {}
        }
    }
}

/// Runs the sender beside the receiver, within the total limit, until the exit status arrives.
/// A connection closed without a status is reported with the sender's error if it had one.
async fn run_until_status(
    sender: impl Future<Output = Result<(), KubeError>>,
    receiver: impl Future<Output = Result<Option<(Status, Vec<u8>)>, KubeError>>,
    site: &Site<'_, '_>,
    cmdline: &str,
) -> Result<(Status, Vec<u8>), KubeError> {
    tokio::pin!(sender);
    tokio::pin!(receiver);
    let mut send_err = None;
    let work = async {
        loop {
            tokio::select! {
                r = &mut receiver => break r,
                Err(e) = &mut sender, if send_err.is_none() => send_err = Some(e),
            }
        }
    };
    let received = match tokio::time::timeout(site.limits.total, work).await {
        Err(_) => {
            return Err(KubeError::Timeout {
                step: format!(
                    "{} in {}/{}: {cmdline}",
                    site.during, site.at.pod, site.at.container
                ),
                after: site.limits.total,
            });
        }
        Ok(r) => r?,
    };
    received.ok_or_else(|| {
        send_err.unwrap_or_else(|| {
            site.lost("the connection closed before the command's exit status arrived".into())
        })
    })
}

/// The command's outcome from its exit status and the tail of its stderr.
fn finish(
    at: &Place<'_>,
    cmdline: String,
    status: &Status,
    mut stderr_kept: Vec<u8>,
) -> Result<ExecOutput, KubeError> {
    if stderr_kept.len() > STDERR_KEEP {
        stderr_kept.drain(..stderr_kept.len() - STDERR_KEEP);
    }
    let stderr = String::from_utf8_lossy(&stderr_kept).into_owned();
    match exit_code(status) {
        Ok(0) => Ok(ExecOutput { stderr }),
        Ok(code) => Err(KubeError::CommandFailed {
            pod: at.pod.to_owned(),
            container: at.container.to_owned(),
            command: cmdline,
            code,
            stderr,
        }),
        Err(message) => Err(KubeError::ExecFailed {
            pod: at.pod.to_owned(),
            container: at.container.to_owned(),
            command: cmdline,
            message: format!("{message}{}", stderr_tail(&stderr)),
        }),
    }
}

fn stderr_tail(stderr: &str) -> String {
    let s = stderr.trim();
    if s.is_empty() {
        String::new()
    } else {
        format!("; stderr: {s}")
    }
}

/// The exit code in an exec status: 0 on success, the `ExitCode` cause on `NonZeroExitCode`,
/// otherwise the status message (the command could not be run).
pub fn exit_code(status: &Status) -> Result<i32, String> {
    if status.status.as_deref() == Some("Success") {
        return Ok(0);
    }
    if status.reason.as_deref() == Some("NonZeroExitCode")
        && let Some(code) = status
            .details
            .as_ref()
            .and_then(|d| d.causes.as_ref())
            .and_then(|c| {
                c.iter()
                    .find(|c| c.reason.as_deref() == Some("ExitCode"))
                    .and_then(|c| c.message.as_deref())
            })
            .and_then(|m| m.trim().parse().ok())
    {
        return Ok(code);
    }
    Err(status
        .message
        .clone()
        .unwrap_or_else(|| format!("exec failed: {status:?}")))
}

fn map_exec_error(at: &Place<'_>, req: &Req<'_>, cmdline: &str, e: kube::Error) -> KubeError {
    if let Some(mapped) = super::error::transport(&e) {
        return mapped;
    }
    if let kube::Error::Api(status) = &e {
        let msg = status.message.to_ascii_lowercase();
        if status.code == 400 && msg.contains("container") {
            return KubeError::MissingContainer {
                pod: at.pod.to_owned(),
                container: at.container.to_owned(),
                available: Vec::new(),
            };
        }
        if status.code == 403 || status.code == 404 {
            return req.map(e);
        }
    }
    KubeError::ExecFailed {
        pod: at.pod.to_owned(),
        container: at.container.to_owned(),
        command: cmdline.to_owned(),
        message: e.to_string(),
    }
}
