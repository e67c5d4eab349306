//! Running one command in a container over the exec WebSocket, with bytes in and out.
//!
//! Standard input, when given, is a stream of known length: the in-pod side reads exactly that
//! many bytes, so the end of input never needs signalling (exec protocol v4 cannot). Standard
//! output goes to any writer; standard error is kept (its last 64 KiB); the exit status comes
//! from the status channel. A connection that ends without a status is a lost connection.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::Api;
use kube::api::AttachParams;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::error::{KubeError, Req};
use super::progress::Transfer;

/// Buffer sizes of the exec streams (kube-rs defaults to 1 KiB).
pub const STREAM_BUF: usize = 256 << 10;
/// How much of a command's stderr is kept.
const STDERR_KEEP: usize = 64 << 10;

/// Where a command runs.
#[derive(Debug, Clone)]
pub(crate) struct Place<'a> {
    pub pods: &'a Api<Pod>,
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
    let cmdline = command.join(" ");
    let req = Req {
        verb: "create",
        resource: "pods/exec",
        namespace: at.namespace,
        pod: at.pod,
        statefulset: at.statefulset,
    };
    let ap = AttachParams::default()
        .container(at.container)
        .stdin(stdin.is_some())
        .stdout(true)
        .stderr(true)
        .max_stdin_buf_size(STREAM_BUF)
        .max_stdout_buf_size(STREAM_BUF)
        .max_stderr_buf_size(STDERR_KEEP);
    let mut proc =
        match tokio::time::timeout(limits.connect, at.pods.exec(at.pod, command.to_vec(), &ap))
            .await
        {
            Err(_) => {
                return Err(KubeError::Timeout {
                    step: format!("opening exec in {}/{} for {during}", at.pod, at.container),
                    after: limits.connect,
                });
            }
            Ok(Err(e)) => return Err(map_exec_error(at, &req, &cmdline, e)),
            Ok(Ok(p)) => p,
        };
    let mut out_r = proc.stdout().expect("stdout requested");
    let mut err_r = proc.stderr().expect("stderr requested");
    let in_w = if stdin.is_some() { proc.stdin() } else { None };
    let status = proc.take_status().expect("status taken once");

    let lost = |detail: String| KubeError::ConnectionLost {
        pod: at.pod.to_owned(),
        container: at.container.to_owned(),
        during: during.to_owned(),
        detail,
    };
    let idle_timeout = |what: &str| KubeError::Timeout {
        step: format!(
            "{during}: no data {what} {}/{} for {}s",
            at.pod,
            at.container,
            limits.idle.as_secs()
        ),
        after: limits.idle,
    };

    let idle = limits.idle;
    let progress_in = progress.as_ref().is_some_and(|t| t.upload);
    let progress = std::sync::Mutex::new(progress);
    let tick = |n: usize, upload: bool| {
        if upload == progress_in
            && let Ok(mut p) = progress.lock()
            && let Some(p) = p.as_deref_mut()
        {
            p.inc(n as u64);
        }
    };
    let copy_in = async {
        // The writer is handed back: stdin must stay open until the exit status arrived (on
        // protocol v4 closing it closes the whole connection). The command reads exactly
        // `len` bytes and exits on its own.
        let mut w = in_w;
        let r = async {
            let Some(Stdin { reader, len }) = stdin else {
                return Ok(());
            };
            let w = w.as_mut().expect("stdin requested");
            let mut buf = vec![0u8; STREAM_BUF];
            let mut left = len;
            while left > 0 {
                let want = left.min(buf.len() as u64) as usize;
                let n = reader
                    .read(&mut buf[..want])
                    .await
                    .map_err(|e| Err(format!("reading local input: {e}")))?;
                if n == 0 {
                    return Err(Err(format!(
                        "local input ended {left} bytes before its announced length"
                    )));
                }
                match tokio::time::timeout(idle, w.write_all(&buf[..n])).await {
                    Err(_) => return Err(Ok("to")),
                    Ok(Err(e)) => return Err(Err(format!("sending: {e}"))),
                    Ok(Ok(())) => {}
                }
                left -= n as u64;
                tick(n, true);
            }
            w.flush().await.map_err(|e| Err(format!("sending: {e}")))
        }
        .await;
        (r, w)
    };
    let copy_out = async {
        let mut buf = vec![0u8; STREAM_BUF];
        let mut total = 0u64;
        loop {
            let n = match tokio::time::timeout(idle, out_r.read(&mut buf)).await {
                Err(_) => return Err(Ok("from")),
                Ok(Err(e)) => return Err(Err(format!("receiving: {e}"))),
                Ok(Ok(0)) => break,
                Ok(Ok(n)) => n,
            };
            stdout
                .write_all(&buf[..n])
                .await
                .map_err(|e| Err(format!("writing locally: {e}")))?;
            total += n as u64;
            tick(n, false);
        }
        stdout
            .flush()
            .await
            .map_err(|e| Err(format!("writing locally: {e}")))?;
        Ok(total)
    };
    let copy_err = async {
        let mut kept = Vec::new();
        let mut buf = vec![0u8; 16 << 10];
        loop {
            match err_r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    kept.extend_from_slice(&buf[..n]);
                    if kept.len() > 2 * STDERR_KEEP {
                        kept.drain(..kept.len() - STDERR_KEEP);
                    }
                }
            }
        }
        if kept.len() > STDERR_KEEP {
            kept.drain(..kept.len() - STDERR_KEEP);
        }
        String::from_utf8_lossy(&kept).into_owned()
    };

    let outs = async { tokio::join!(copy_out, copy_err) };
    tokio::pin!(copy_in);
    tokio::pin!(outs);
    tokio::pin!(status);
    let mut got_status: Option<Status> = None;
    let mut in_done = None;
    let mut outs_done = None;
    // Once the command exited and its output is in, stdin no longer matters (a command that
    // failed early stops reading it): wait only briefly for the upload to wind down.
    let grace = Duration::from_secs(2);
    let work = async {
        loop {
            if outs_done.is_some() && (in_done.is_some() || got_status.is_some()) {
                if in_done.is_none() {
                    tokio::select! {
                        r = &mut copy_in => in_done = Some(r),
                        _ = tokio::time::sleep(grace) => {}
                    }
                }
                break Ok(());
            }
            tokio::select! {
                r = &mut copy_in, if in_done.is_none() => in_done = Some(r),
                r = &mut outs, if outs_done.is_none() => outs_done = Some(r),
                s = &mut status, if got_status.is_none() => match s {
                    Some(s) => got_status = Some(s),
                    // The message loop ended without a status: the connection is gone.
                    None => break Err(()),
                },
            }
        }
    };
    let outcome = match tokio::time::timeout(limits.total, work).await {
        Err(_) => {
            proc.abort();
            return Err(KubeError::Timeout {
                step: format!("{during} in {}/{}: {cmdline}", at.pod, at.container),
                after: limits.total,
            });
        }
        Ok(o) => o,
    };
    if outcome.is_err() {
        let detail = match tokio::time::timeout(Duration::from_secs(5), proc.join()).await {
            Ok(Err(e)) => e.to_string(),
            _ => "the connection closed before the command's exit status arrived".into(),
        };
        return Err(lost(detail));
    }
    let (in_res, in_w) = in_done.unwrap_or((Err(Err("stdin not finished".into())), None));
    let (out_res, stderr) = outs_done.expect("outputs done");
    if got_status.is_none() {
        got_status =
            tokio::time::timeout(idle, &mut status)
                .await
                .map_err(|_| KubeError::Timeout {
                    step: format!(
                        "{during}: waiting for the exit of `{cmdline}` in {}/{}",
                        at.pod, at.container
                    ),
                    after: idle,
                })?;
    }
    drop(in_w);
    let join = tokio::time::timeout(Duration::from_secs(5), proc.join()).await;
    let Some(status) = got_status else {
        let detail = match join {
            Ok(Err(e)) => e.to_string(),
            _ => "the connection closed before the command's exit status arrived".into(),
        };
        return Err(lost(detail));
    };
    match exit_code(&status) {
        Ok(0) => {}
        Ok(code) => {
            return Err(KubeError::CommandFailed {
                pod: at.pod.to_owned(),
                container: at.container.to_owned(),
                command: cmdline,
                code,
                stderr,
            });
        }
        Err(message) => {
            return Err(KubeError::ExecFailed {
                pod: at.pod.to_owned(),
                container: at.container.to_owned(),
                command: cmdline,
                message: format!("{message}{}", stderr_tail(&stderr)),
            });
        }
    }
    // The command succeeded: a stream error on our side still means we lack data.
    if let Err(e) = in_res {
        return Err(match e {
            Ok(what) => idle_timeout(what),
            Err(detail) => lost(detail),
        });
    }
    match out_res {
        Ok(_) => {}
        Err(Ok(what)) => return Err(idle_timeout(what)),
        Err(Err(detail)) => return Err(lost(detail)),
    };
    Ok(ExecOutput { stderr })
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
