//! What can go wrong talking to the cluster, phrased for the operator.

use std::path::PathBuf;
use std::time::Duration;

/// Why a Kubernetes operation failed.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// The kubeconfig could not be loaded or has no such context.
    #[error(
        "kubeconfig: {0} (set KUBECONFIG or -c/--context; or use --local to work on the daemons of this host)"
    )]
    Config(String),
    /// The pod (or its namespace) does not exist.
    #[error(
        "pod {namespace}/{pod} not found: no such pod or namespace (StatefulSet {statefulset}; check -n/--namespace and -s/--statefulset)"
    )]
    PodNotFound {
        /// Namespace.
        namespace: String,
        /// The pod looked for.
        pod: String,
        /// The StatefulSet it belongs to.
        statefulset: String,
    },
    /// The pod has no such container.
    #[error("pod {pod} has no container {container} (it has: {})", available.join(", "))]
    MissingContainer {
        /// The pod.
        pod: String,
        /// The container wanted.
        container: String,
        /// The containers it has.
        available: Vec<String>,
    },
    /// RBAC forbids a request.
    #[error(
        "forbidden: the Kubernetes user may not {verb} {resource} in namespace {namespace} (the chart's operator Role grants pods get/list/watch/delete and pods/exec create/get): {message}"
    )]
    Forbidden {
        /// The verb missing (`get`, `delete`, `create`).
        verb: &'static str,
        /// The resource (`pods`, `pods/exec`).
        resource: &'static str,
        /// The namespace.
        namespace: String,
        /// The API server's message.
        message: String,
    },
    /// A command run in the pod exited non-zero.
    #[error(
        "command failed in {pod}/{container} with exit code {code}: {command}{}",
        stderr_suffix(stderr)
    )]
    CommandFailed {
        /// The pod.
        pod: String,
        /// The container.
        container: String,
        /// The command line.
        command: String,
        /// Its exit code.
        code: i32,
        /// Its standard error (last 64 KiB).
        stderr: String,
    },
    /// The command could not be run at all (e.g. the binary is missing in the container).
    #[error("cannot run in {pod}/{container}: {command}: {message}")]
    ExecFailed {
        /// The pod.
        pod: String,
        /// The container.
        container: String,
        /// The command line.
        command: String,
        /// The API server's message.
        message: String,
    },
    /// The connection broke before the command finished.
    #[error("connection to {pod}/{container} lost during {during}: {detail}")]
    ConnectionLost {
        /// The pod.
        pod: String,
        /// The container.
        container: String,
        /// What was under way.
        during: String,
        /// What is known about it.
        detail: String,
    },
    /// A step did not finish in time.
    #[error("timed out after {}s: {step}", after.as_secs())]
    Timeout {
        /// The step.
        step: String,
        /// The limit.
        after: Duration,
    },
    /// An archive failed verification (nothing was changed).
    #[error("{}: verification failed:\n  {}", path.display(), problems.join("\n  "))]
    Verify {
        /// The archive.
        path: PathBuf,
        /// Every problem.
        problems: Vec<String>,
    },
    /// The in-pod command produced output this version does not understand.
    #[error("unexpected output from {command}: {detail}")]
    Protocol {
        /// The command.
        command: String,
        /// What was wrong.
        detail: String,
    },
    /// After a restore, the pod does not serve what was restored.
    #[error("restore not confirmed: {0}")]
    NotConfirmed(String),
    /// The restore stopped part-way: what is restored, what is not, and how to finish (a
    /// [`crate::restore::RestoreError::Incomplete`], as a local restore reports it).
    #[error(transparent)]
    Incomplete(Box<crate::restore::RestoreError>),
    /// A check before the first change failed; nothing was changed.
    #[error(transparent)]
    Preflight(#[from] crate::preflight::PreflightError),
    /// An archive operation failed locally.
    #[error(transparent)]
    Archive(#[from] crate::archive::ArchiveError),
    /// The local fixed-name archive was kept: the new backup's counts dropped too far against
    /// it. The timestamped archive was downloaded.
    #[error(transparent)]
    Shrink(#[from] Box<crate::backup::ShrinkRefused>),
    /// A local file-system step failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The API server rejected the credentials (401).
    #[error(
        "the Kubernetes API server rejected the credentials (401 Unauthorized): renew the kubeconfig's token or certificate (e.g. log in again), or use --local on the host running the daemons"
    )]
    Unauthorized,
    /// The API server could not be reached.
    #[error(
        "cannot reach the Kubernetes API server: {detail} (is the cluster up and the kubeconfig's server address right? or use --local on the host running the daemons)"
    )]
    Unreachable {
        /// What the connection attempt said.
        detail: String,
    },
    /// The pod runs another dnsdhcp version than this one.
    #[error(
        "the dnsdhcp in pod {pod} is {theirs:?}, this is {ours:?}: use the same version on both sides (upgrade the chart's image or this binary)"
    )]
    VersionMismatch {
        /// The pod.
        pod: String,
        /// Its `dnsdhcp --version`.
        theirs: String,
        /// This binary's.
        ours: String,
    },
    /// Any other API error.
    #[error("kubernetes API: {context}: {source}")]
    Api {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: Box<kube::Error>,
    },
}

impl KubeError {
    /// This error with every pod-side path in `names` (pod path, operator's path) replaced by
    /// the operator's file it is a copy of: in-pod errors name the files the operator gave.
    pub fn naming(self, names: &[(String, String)]) -> KubeError {
        let map = |text: String| {
            names
                .iter()
                .fold(text, |t, (remote, local)| t.replace(remote.as_str(), local))
        };
        match self {
            KubeError::CommandFailed {
                pod,
                container,
                command,
                code,
                stderr,
            } => KubeError::CommandFailed {
                pod,
                container,
                command: map(command),
                code,
                stderr: map(stderr),
            },
            KubeError::Protocol { command, detail } => KubeError::Protocol {
                command: map(command),
                detail: map(detail),
            },
            other => other,
        }
    }
}

fn stderr_suffix(stderr: &str) -> String {
    let s = stderr.trim_end();
    if s.is_empty() {
        String::new()
    } else {
        format!("\n  stderr: {}", s.replace('\n', "\n          "))
    }
}

/// The request being made, for turning API errors into operator messages.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Req<'a> {
    pub verb: &'static str,
    pub resource: &'static str,
    pub namespace: &'a str,
    pub pod: &'a str,
    pub statefulset: &'a str,
}

impl Req<'_> {
    /// Maps an API error: 403 names the verb and resource, 404 the pod.
    pub(crate) fn map(&self, e: kube::Error) -> KubeError {
        if let Some(mapped) = transport(&e) {
            return mapped;
        }
        if let kube::Error::Api(status) = &e {
            match status.code {
                403 => {
                    return KubeError::Forbidden {
                        verb: self.verb,
                        resource: self.resource,
                        namespace: self.namespace.to_owned(),
                        message: status.message.clone(),
                    };
                }
                404 => {
                    return KubeError::PodNotFound {
                        namespace: self.namespace.to_owned(),
                        pod: self.pod.to_owned(),
                        statefulset: self.statefulset.to_owned(),
                    };
                }
                _ => {}
            }
        }
        KubeError::Api {
            context: format!(
                "{} {} {}/{}",
                self.verb, self.resource, self.namespace, self.pod
            ),
            source: Box::new(e),
        }
    }
}

/// 401 and connection failures, which mean the same whatever the request was.
pub(crate) fn transport(e: &kube::Error) -> Option<KubeError> {
    match e {
        kube::Error::Api(status) if status.code == 401 => Some(KubeError::Unauthorized),
        kube::Error::HyperError(_) | kube::Error::Service(_) => Some(KubeError::Unreachable {
            detail: one_line(e),
        }),
        _ => None,
    }
}

/// An error and its causes on one line, each cause once.
fn one_line(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = c.source();
    }
    out
}

pub(crate) fn io_at(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> KubeError {
    let path = path.into();
    move |source| KubeError::Io { path, source }
}
