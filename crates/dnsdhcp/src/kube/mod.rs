//! The Kubernetes target: the same operations as `--local`, run inside the StatefulSet's pod.
//!
//! Nothing here re-implements a backup or a restore. The pod already holds this binary
//! (`/dnsdhcp/bin/dnsdhcp`, mounted in `backup`, `knot-auth` and `kea-dhcp4`), so each operation
//! execs the `--local` command in the right container ([`WORK_CONTAINER`] when the pod has it)
//! and moves bytes over the exec streams:
//!
//! * backup: `dnsdhcp backup zones|leases --local -b /tmp/dnsdhcp-XXXX --json --name STS` in
//!   the container, then every archive out with `dnsdhcp pod send-file` into a hidden temporary
//!   file here (mode 0600), checked against the sender's size and SHA-256, verified
//!   ([`crate::archive::verify`]) and only then renamed to its final name; the pod's temporary
//!   directory is removed.
//! * restore: archives verified here first, streamed in with `dnsdhcp pod receive-file` (length
//!   and digest first, so exec protocol v4 works), `zones.tar.gz` into the zones volume and
//!   `kea-leases.tar.gz` beside the lease file, where the pod's own start-up roles restore them;
//!   the pod is deleted, the StatefulSet's replacement (a new uid) awaited until Ready, and the
//!   restore confirmed from inside: the zones serve the archived serials
//!   (`dnsdhcp zones status --local --json`) and Kea holds the archived lease count
//!   (`dnsdhcp leases count --local`). `--live` instead runs `dnsdhcp restore --local` in the
//!   pod on archives streamed to its `/tmp`.
//! * records plan/apply, leases count/list/wipe, zones status: the values files are streamed to
//!   the pod's `/tmp`, the `--local` command runs there, its output is returned.
//!
//! [`Cluster`] is the async core; [`block_on`] runs it from synchronous code (the CLI).

mod error;
mod exec;
pub mod inpod;
mod pods;
mod progress;
mod transfer;

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

pub use error::KubeError;
pub use exec::{STREAM_BUF, exit_code};
pub use inpod::ZoneServing;
pub use pods::{check_container, containers, is_ready, uid};
pub use progress::ProgressMode;

use crate::archive::{self, ArchiveKind, Limits, VerifyReport};
use crate::backup::{
    BackupReport, LEASES_ARCHIVE, LeasesBackup, ShrinkGuard, Written, ZONES_ARCHIVE, ZonesBackup,
};
use crate::restore::{LeasesRestore, PodRestore, RestoreReport, RestoredZone, ZonesRestore};
use crate::zones::Method;
use error::{Req, io_at};
use exec::{ExecLimits, Place};
use transfer::{Check, RemoteDest};

/// The container running Knot.
pub const KNOT_CONTAINER: &str = "knot-auth";
/// The container running Kea DHCPv4.
pub const KEA_CONTAINER: &str = "kea-dhcp4";
/// The chart's container for the tool's own work (`dnsdhcp agent`; both volumes and both
/// control sockets mounted, its own memory limit): the in-pod work of Knot and Kea runs there
/// when the pod has it, in `knot-auth` and `kea-dhcp4` otherwise (releases before it).
pub const WORK_CONTAINER: &str = "backup";
/// Where the chart mounts this binary in both containers.
pub const POD_BINARY: &str = "/dnsdhcp/bin/dnsdhcp";
/// The pods' scratch directory (an emptyDir in both containers).
pub const POD_TMP: &str = "/tmp";

/// Which StatefulSet, through which kubeconfig context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeTarget {
    /// Kubeconfig context (None: the current one).
    pub context: Option<String>,
    /// Namespace.
    pub namespace: String,
    /// StatefulSet name; its pod is `<statefulset>-0`.
    pub statefulset: String,
    /// Name used in archive names (default: the StatefulSet).
    pub name: Option<String>,
}

/// Time limits of every step.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// One API request (get, delete) and opening an exec stream.
    pub request: Duration,
    /// No byte moving (and no exit) during an exec for this long.
    pub idle: Duration,
    /// One command in the pod, transfers included.
    pub command: Duration,
    /// The pod being recreated and Ready after a delete.
    pub pod_ready: Duration,
    /// Between two looks at the pod while waiting.
    pub poll: Duration,
    /// Zones and leases confirmed after the new pod is Ready.
    pub confirm: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            request: Duration::from_secs(30),
            idle: Duration::from_secs(120),
            command: Duration::from_secs(3600),
            pod_ready: Duration::from_secs(600),
            poll: Duration::from_secs(2),
            confirm: Duration::from_secs(120),
        }
    }
}

/// Runs a future to completion on the process's one multi-threaded runtime (the CLI's entry
/// point). One runtime for the whole process: a [`Cluster`]'s client keeps background tasks on
/// the runtime it was created in, so every call must use the same one.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("tokio runtime")
        })
        .block_on(f)
}

/// A connection to the StatefulSet's pod.
#[derive(Clone)]
pub struct Cluster {
    client: Client,
    pods: Api<Pod>,
    /// Kubeconfig context (None: the current one).
    pub context: Option<String>,
    /// What archives made through this connection record as their source:
    /// `kubernetes:<context>/<namespace>/<statefulset>`.
    pub source: String,
    /// Namespace.
    pub namespace: String,
    /// StatefulSet.
    pub statefulset: String,
    /// The pod (`<statefulset>-0`).
    pub pod: String,
    /// Name used in archive names.
    pub name: String,
    /// Path of dnsdhcp in the containers.
    pub binary: String,
    /// Time limits.
    pub timeouts: Timeouts,
    /// How progress is shown.
    pub progress: ProgressMode,
    /// Whether the pod has [`WORK_CONTAINER`], learnt from the first look at the pod.
    has_work_container: std::sync::OnceLock<bool>,
}

/// A zone after a restore: archived and served serials.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ZoneConfirmed {
    /// The zone.
    pub zone: String,
    /// Serial in the archive.
    pub archived: u32,
    /// Serial served by the new pod.
    pub serving: u32,
    /// Records in the archived zone file.
    pub records: u64,
}

/// What a restore into the pod did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KubeRestore {
    /// `kubernetes:<context>/<namespace>/<statefulset>`.
    pub target: String,
    /// The pod.
    pub pod: String,
    /// Its uid before.
    pub old_uid: String,
    /// The replacement's uid (None with `--live`).
    pub new_uid: Option<String>,
    /// Zones confirmed served with the archived serials.
    pub zones: Vec<ZoneConfirmed>,
    /// Leases in the lease archive, if one was restored.
    pub leases_archived: Option<u64>,
    /// Leases Kea holds afterwards.
    pub leases_held: Option<u64>,
    /// The zone archive, as the operator named it.
    pub zones_archive: Option<PathBuf>,
    /// The lease archive, as the operator named it.
    pub leases_archive: Option<PathBuf>,
    /// Transactions an interrupted dnsdhcp left open on the archived zones (aborted by the
    /// restore in the pod before its first change).
    pub aborted: Vec<crate::txn::Aborted>,
    /// With `--live`: what the in-pod `restore --local` runs reported (zones from Knot's
    /// container, leases from Kea's).
    pub live: Option<RestoreReport>,
}

impl KubeRestore {
    /// The report `restore --json` prints: the same shape as a `--local` restore's, each zone
    /// with the serial the pod serves now, each archive named as the operator gave it.
    pub fn report(&self) -> RestoreReport {
        let live = self.live.as_ref();
        let zones = self.zones_archive.as_ref().map(|archive| {
            let serving = |zone: &str| {
                self.zones
                    .iter()
                    .find(|c| c.zone.eq_ignore_ascii_case(zone))
                    .map(|c| c.serving)
            };
            match live.and_then(|l| l.zones.clone()) {
                Some(mut z) => {
                    z.archive = archive.clone();
                    for r in &mut z.zones {
                        r.serial = serving(&r.zone).unwrap_or(r.serial);
                    }
                    z
                }
                None => ZonesRestore {
                    archive: archive.clone(),
                    method: "post-start".into(),
                    zones: self
                        .zones
                        .iter()
                        .map(|c| RestoredZone {
                            zone: c.zone.clone(),
                            serial: c.serving,
                            records: c.records,
                            method: Method::PostStart,
                        })
                        .collect(),
                },
            }
        });
        let leases = match (&self.leases_archive, self.leases_archived, self.leases_held) {
            (Some(archive), Some(archived), Some(held)) => Some(LeasesRestore {
                archive: archive.clone(),
                archived,
                held,
            }),
            _ => None,
        };
        RestoreReport {
            target: self.target.clone(),
            aborted: live.map_or_else(|| self.aborted.clone(), |l| l.aborted.clone()),
            notes: live.map_or_else(Vec::new, |l| l.notes.clone()),
            zones,
            leases,
            pod: Some(PodRestore {
                name: self.pod.clone(),
                old_uid: self.old_uid.clone(),
                new_uid: self.new_uid.clone(),
            }),
        }
    }

    /// Human-readable lines.
    pub fn summary(&self) -> Vec<String> {
        let mut lines = Vec::new();
        match &self.new_uid {
            Some(u) => lines.push(format!(
                "pod {} restarted (uid {} -> {u}) and Ready",
                self.pod, self.old_uid
            )),
            None => lines.push(format!(
                "restored live into pod {} (not restarted)",
                self.pod
            )),
        }
        for z in &self.zones {
            lines.push(format!(
                "zone {} serves serial {} (archived {})",
                z.zone, z.serving, z.archived
            ));
        }
        if let (Some(a), Some(h)) = (self.leases_archived, self.leases_held) {
            lines.push(format!("Kea holds {h} lease(s) (archived {a})"));
        }
        lines
    }
}

/// Why no configuration could be inferred, in one line: the kubeconfig's own error if there is
/// one, else that there is none (the in-cluster attempt only matters inside a pod).
fn no_config() -> KubeError {
    match Kubeconfig::read() {
        Ok(_) => KubeError::Config("the kubeconfig has no usable current context".into()),
        Err(e) => {
            let from = std::env::var("KUBECONFIG").unwrap_or_else(|_| "~/.kube/config".into());
            KubeError::Config(format!(
                "no usable kubeconfig ({from}: {}) and not running inside a cluster",
                e.to_string().lines().next().unwrap_or_default()
            ))
        }
    }
}

/// A restore's archives, ready: converted when written the original chart's way (no
/// manifest; the pod receives project archives), then checked by the preflight's archive half
/// (every archive verified in full and of its slot's kind; the daemons' half runs in the
/// pod). The conversions live in a scratch directory removed on drop.
struct Prepared {
    zones: Option<(PathBuf, Option<crate::legacy::Converted>)>,
    leases: Option<(PathBuf, Option<crate::legacy::Converted>)>,
    archives: crate::preflight::Archives,
    _scratch: tempfile::TempDir,
}

impl Prepared {
    /// Converts and checks, on the blocking pool (reading and hashing whole archives).
    async fn new(zones: Option<&Path>, leases: Option<&Path>) -> Result<Prepared, KubeError> {
        let (z, l) = (zones.map(Path::to_owned), leases.map(Path::to_owned));
        transfer::blocking(&std::env::temp_dir(), move || {
            let scratch = tempfile::tempdir().map_err(io_at(std::env::temp_dir()))?;
            let convert = |p: PathBuf| {
                let c = crate::legacy::convert_if_legacy(&p, scratch.path()).map_err(|e| {
                    KubeError::Verify {
                        path: p.clone(),
                        problems: vec![e.to_string()],
                    }
                })?;
                Ok::<_, KubeError>((p, c))
            };
            let zones = z.map(convert).transpose()?;
            let leases = l.map(convert).transpose()?;
            let archives = crate::preflight::check_archives(
                zones.as_ref().map(effective),
                leases.as_ref().map(effective),
            )?;
            Ok(Prepared {
                zones,
                leases,
                archives,
                _scratch: scratch,
            })
        })
        .await
    }

    fn zones(&self) -> Option<&Path> {
        self.zones.as_ref().map(effective)
    }

    fn leases(&self) -> Option<&Path> {
        self.leases.as_ref().map(effective)
    }
}

/// The archive to use: the converted one, if any, else the one given.
fn effective((given, converted): &(PathBuf, Option<crate::legacy::Converted>)) -> &Path {
    converted.as_ref().map_or(given.as_path(), |c| c.path())
}

/// The in-pod backup's report lacks the section asked for.
/// The file name of an archive the in-pod backup reported.
fn file_name_of(remote: &Written) -> Result<&std::ffi::OsStr, KubeError> {
    remote
        .path
        .file_name()
        .filter(|n| !n.is_empty() && *n != "." && *n != "..")
        .ok_or_else(|| KubeError::Protocol {
            command: "dnsdhcp backup --json".into(),
            detail: format!("archive path {} has no file name", remote.path.display()),
        })
}

fn no_section(what: &str) -> KubeError {
    KubeError::Protocol {
        command: format!("dnsdhcp backup {what} --json"),
        detail: format!("the report has no `{what}` section"),
    }
}

/// `out` with every pod-side path in `names` replaced by the operator's file it stands for.
fn name_back(out: &[u8], names: &[(String, String)]) -> Vec<u8> {
    match std::str::from_utf8(out) {
        Ok(text)
            if names
                .iter()
                .any(|(remote, _)| text.contains(remote.as_str())) =>
        {
            let mut text = text.to_owned();
            for (remote, local) in names {
                text = text.replace(remote.as_str(), local);
            }
            text.into_bytes()
        }
        _ => out.to_vec(),
    }
}

/// The context's name: the one given, else the kubeconfig's current one, else `in-cluster`
/// (no kubeconfig: the service account's configuration).
fn context_name(given: Option<&str>) -> String {
    given
        .map(str::to_owned)
        .or_else(|| Kubeconfig::read().ok()?.current_context)
        .unwrap_or_else(|| "in-cluster".into())
}

fn random_suffix() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    format!("{:016x}", h.finish())
}

fn verified(path: &Path) -> Result<VerifyReport, KubeError> {
    let report = archive::verify(path, &Limits::default());
    if report.ok {
        Ok(report)
    } else {
        Err(KubeError::Verify {
            path: path.to_owned(),
            problems: report.problems.iter().map(|p| p.to_string()).collect(),
        })
    }
}

impl Cluster {
    /// Connects through the kubeconfig (the given context, or the current one; in-cluster
    /// configuration when there is no kubeconfig and no context is named).
    pub async fn connect(target: &KubeTarget) -> Result<Cluster, KubeError> {
        let config = match &target.context {
            Some(ctx) => {
                let kc = Kubeconfig::read().map_err(|e| KubeError::Config(e.to_string()))?;
                if !kc.contexts.iter().any(|c| &c.name == ctx) {
                    let known: Vec<&str> = kc.contexts.iter().map(|c| c.name.as_str()).collect();
                    return Err(KubeError::Config(format!(
                        "unknown context {ctx:?} (the kubeconfig has: {})",
                        known.join(", ")
                    )));
                }
                Config::from_custom_kubeconfig(
                    kc,
                    &KubeConfigOptions {
                        context: Some(ctx.clone()),
                        ..KubeConfigOptions::default()
                    },
                )
                .await
                .map_err(|e| KubeError::Config(format!("context {ctx}: {e}")))?
            }
            None => Config::infer().await.map_err(|_| no_config())?,
        };
        let client = Client::try_from(config).map_err(|e| KubeError::Config(e.to_string()))?;
        Ok(Cluster::new(client, target))
    }

    /// Wraps an existing client (tests use a mock service or a fake API server).
    pub fn new(client: Client, target: &KubeTarget) -> Cluster {
        let pods = Api::namespaced(client.clone(), &target.namespace);
        Cluster {
            client,
            pods,
            context: target.context.clone(),
            source: format!(
                "kubernetes:{}/{}/{}",
                context_name(target.context.as_deref()),
                target.namespace,
                target.statefulset
            ),
            namespace: target.namespace.clone(),
            statefulset: target.statefulset.clone(),
            pod: format!("{}-0", target.statefulset),
            name: target
                .name
                .clone()
                .unwrap_or_else(|| target.statefulset.clone()),
            binary: POD_BINARY.into(),
            timeouts: Timeouts::default(),
            progress: ProgressMode::Auto,
            has_work_container: std::sync::OnceLock::new(),
        }
    }

    /// The container that does the in-pod work of `daemon` (`knot-auth` or `kea-dhcp4`):
    /// [`WORK_CONTAINER`] when the pod has it.
    pub fn container_for<'a>(&self, daemon: &'a str) -> &'a str {
        let daemon_work = daemon == KNOT_CONTAINER || daemon == KEA_CONTAINER;
        if daemon_work && self.has_work_container.get() == Some(&true) {
            WORK_CONTAINER
        } else {
            daemon
        }
    }

    /// Notes from the pod whether it has [`WORK_CONTAINER`] (once; a pod without it gets a
    /// one-line note, since its daemons' containers share their memory limit with the work).
    fn learn_containers(&self, pod: &Pod) {
        let has = containers(pod).iter().any(|c| c == WORK_CONTAINER);
        if self.has_work_container.set(has).is_ok() && !has {
            self.progress.step(format!(
                "note: pod {} has no {WORK_CONTAINER} container (a release before it): the work \
                 runs in {KNOT_CONTAINER} and {KEA_CONTAINER}",
                self.pod
            ));
        }
    }

    /// The client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    fn req(&self) -> Req<'_> {
        Req {
            verb: "get",
            resource: "pods",
            namespace: &self.namespace,
            pod: &self.pod,
            statefulset: &self.statefulset,
        }
    }

    fn place<'a>(&'a self, container: &'a str) -> Place<'a> {
        Place {
            client: &self.client,
            namespace: &self.namespace,
            pod: &self.pod,
            statefulset: &self.statefulset,
            container: self.container_for(container),
        }
    }

    fn limits(&self) -> ExecLimits {
        ExecLimits {
            connect: self.timeouts.request,
            idle: self.timeouts.idle,
            total: self.timeouts.command,
        }
    }

    /// The pod, which must exist and have `containers`.
    pub async fn pod(&self, containers: &[&str]) -> Result<Pod, KubeError> {
        let pod = pods::get(&self.pods, self.req(), self.timeouts.request)
            .await?
            .ok_or_else(|| KubeError::PodNotFound {
                namespace: self.namespace.clone(),
                pod: self.pod.clone(),
                statefulset: self.statefulset.clone(),
            })?;
        self.learn_containers(&pod);
        for c in containers {
            check_container(&pod, self.container_for(c))?;
        }
        Ok(pod)
    }

    /// Deletes the pod and waits until the StatefulSet's replacement (same name, another uid)
    /// is Ready. Returns the old uid and the new pod.
    pub async fn restart_pod(&self) -> Result<(String, Pod), KubeError> {
        let pod = self.pod(&[]).await?;
        let old = uid(&pod).unwrap_or_default().to_owned();
        let new = pods::delete_and_wait(
            &self.pods,
            self.req(),
            &old,
            self.timeouts.request,
            self.timeouts.pod_ready,
            self.timeouts.poll,
            self.progress,
        )
        .await?;
        Ok((old, new))
    }

    /// The version handshake: the pod's `dnsdhcp --version` must be this binary's, since the
    /// in-pod commands' output is read as this version writes it.
    pub async fn check_version(&self) -> Result<(), KubeError> {
        self.pod(&[KNOT_CONTAINER]).await?;
        let out = self.run(KNOT_CONTAINER, &["--version".to_owned()]).await?;
        let theirs = String::from_utf8_lossy(&out).trim().to_owned();
        let ours = format!("dnsdhcp {}", env!("CARGO_PKG_VERSION"));
        if theirs == ours {
            Ok(())
        } else {
            Err(KubeError::VersionMismatch {
                pod: self.pod.clone(),
                theirs,
                ours,
            })
        }
    }

    /// Runs `dnsdhcp ARGS` in `container` and returns its stdout.
    pub async fn run(&self, container: &str, args: &[String]) -> Result<Vec<u8>, KubeError> {
        self.run_with_code(container, args, &[])
            .await
            .map(|(_, out)| out)
    }

    /// Runs `dnsdhcp ARGS` in `container`; an exit code in `accepted` (besides 0) is a result,
    /// not an error. Returns the exit code and stdout.
    pub async fn run_with_code(
        &self,
        container: &str,
        args: &[String],
        accepted: &[i32],
    ) -> Result<(i32, Vec<u8>), KubeError> {
        let (r, out) = self.run_capture(container, args).await;
        match r {
            Ok(()) => Ok((0, out)),
            Err(KubeError::CommandFailed { code, .. }) if accepted.contains(&code) => {
                Ok((code, out))
            }
            Err(e) => Err(e),
        }
    }

    /// Runs `dnsdhcp ARGS` in `container`; returns how it ended and its stdout, which a
    /// failed command may have written too (its JSON error object).
    async fn run_capture(
        &self,
        container: &str,
        args: &[String],
    ) -> (Result<(), KubeError>, Vec<u8>) {
        let mut command = vec![self.binary.clone()];
        command.extend(args.iter().cloned());
        let mut out = Vec::new();
        // A command may work for long without output (a large backup): only its total time
        // is bounded.
        let limits = ExecLimits {
            idle: self.timeouts.command,
            ..self.limits()
        };
        let r = exec::exec(
            &self.place(container),
            &command,
            None,
            &mut out,
            None,
            limits,
            &format!("`dnsdhcp {}`", args.join(" ")),
        )
        .await;
        (r.map(drop), out)
    }

    /// Runs `dnsdhcp ARGS` (ending in `--json`) in `container` and parses its report of
    /// `kind` into the type the pod printed it from.
    async fn run_report<T: serde::de::DeserializeOwned>(
        &self,
        container: &str,
        args: &[&str],
        kind: &str,
    ) -> Result<T, KubeError> {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let out = self.run(container, &args).await?;
        inpod::parse_report(&out, &format!("dnsdhcp {}", args.join(" ")), kind)
    }

    /// Removes a temporary directory in the container (best effort).
    async fn remove_remote(&self, container: &str, dir: &str) {
        let cmd = vec!["rm".to_owned(), "-rf".into(), "--".into(), dir.to_owned()];
        let mut sink = tokio::io::sink();
        if let Err(e) = exec::exec(
            &self.place(container),
            &cmd,
            None,
            &mut sink,
            None,
            self.limits(),
            "cleanup",
        )
        .await
        {
            self.progress.step(format!(
                "warning: could not remove {dir} in {}: {e}",
                self.container_for(container)
            ));
        }
    }

    /// Downloads a file from the container to `local` (atomic; verified as an archive).
    pub async fn download_archive(
        &self,
        container: &str,
        remote: &str,
        local: &Path,
    ) -> Result<u64, KubeError> {
        transfer::download(
            &self.place(container),
            &self.binary,
            remote,
            local,
            Check::Archive,
            self.limits(),
            self.progress,
        )
        .await
    }

    /// Downloads any file from the container to `local` (atomic; size and digest checked).
    pub async fn download_file(
        &self,
        container: &str,
        remote: &str,
        local: &Path,
    ) -> Result<u64, KubeError> {
        transfer::download(
            &self.place(container),
            &self.binary,
            remote,
            local,
            Check::None,
            self.limits(),
            self.progress,
        )
        .await
    }

    /// Uploads `local` to the absolute path `remote` in the container (written there only when
    /// complete and with the right digest).
    pub async fn upload_file(
        &self,
        container: &str,
        local: &Path,
        remote: &str,
    ) -> Result<u64, KubeError> {
        self.upload(container, local, &RemoteDest::Path(remote.to_owned()))
            .await
            .map(|(n, _)| n)
    }

    async fn upload(
        &self,
        container: &str,
        local: &Path,
        dest: &RemoteDest,
    ) -> Result<(u64, String), KubeError> {
        transfer::upload(
            &self.place(container),
            &self.binary,
            local,
            dest,
            self.limits(),
            self.progress,
        )
        .await
    }

    /// Backs up the zones: Knot's backup in `knot-auth`, both archives streamed into `out_dir`.
    pub async fn backup_zones(&self, out_dir: &Path) -> Result<ZonesBackup, KubeError> {
        self.backup_zones_with(out_dir, &ShrinkGuard::default())
            .await
    }

    /// [`backup_zones`](Self::backup_zones), replacing `zones.tar.gz` in `out_dir` only when
    /// `guard` accepts the new counts against it.
    pub async fn backup_zones_with(
        &self,
        out_dir: &Path,
        guard: &ShrinkGuard,
    ) -> Result<ZonesBackup, KubeError> {
        let report = self
            .backup_in(KNOT_CONTAINER, "zones", out_dir, guard)
            .await?;
        report.zones.ok_or_else(|| no_section("zones"))
    }

    /// Backs up the leases: a snapshot in `kea-dhcp4`, both archives streamed into `out_dir`.
    pub async fn backup_leases(&self, out_dir: &Path) -> Result<LeasesBackup, KubeError> {
        self.backup_leases_with(out_dir, &ShrinkGuard::default())
            .await
    }

    /// [`backup_leases`](Self::backup_leases), replacing `kea-leases.tar.gz` in `out_dir` only
    /// when `guard` accepts the new lease count against it.
    pub async fn backup_leases_with(
        &self,
        out_dir: &Path,
        guard: &ShrinkGuard,
    ) -> Result<LeasesBackup, KubeError> {
        let report = self
            .backup_in(KEA_CONTAINER, "leases", out_dir, guard)
            .await?;
        report.leases.ok_or_else(|| no_section("leases"))
    }

    /// Runs `backup WHAT --local` in `container` into a fresh directory under the pod's /tmp,
    /// streams every archive its report names into `out_dir`, and removes the remote directory
    /// whatever happened. Returns the report, naming the local archives. The fixed-name
    /// archive replaces the local one only when `guard` accepts it.
    async fn backup_in(
        &self,
        container: &str,
        what: &str,
        out_dir: &Path,
        guard: &ShrinkGuard,
    ) -> Result<BackupReport, KubeError> {
        self.pod(&[container]).await?;
        let remote = format!("{POD_TMP}/dnsdhcp-{}", random_suffix());
        let r = async {
            self.progress.step(format!(
                "backing up {what} in {}/{} ({})",
                self.namespace,
                self.pod,
                self.container_for(container)
            ));
            let args = self.backup_args(what, &remote);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let mut report: BackupReport = self.run_report(container, &args, "backup").await?;
            // Stream the archives out while the remote directory exists.
            if let Some(z) = report.zones.take() {
                let full = self.fetch_written(container, &z.full, out_dir).await?;
                let zones = self
                    .fetch_fixed(container, &z.zones, out_dir, guard, &full)
                    .await?;
                report.zones = Some(ZonesBackup { full, zones });
            }
            if let Some(l) = report.leases.take() {
                let archive = self.fetch_written(container, &l.archive, out_dir).await?;
                let latest = self
                    .fetch_fixed(container, &l.latest, out_dir, guard, &archive)
                    .await?;
                report.leases = Some(LeasesBackup {
                    archive,
                    latest,
                    ..l
                });
            }
            Ok(report)
        }
        .await;
        self.remove_remote(container, &remote).await;
        r
    }

    fn backup_args(&self, what: &str, remote: &str) -> Vec<String> {
        [
            "backup",
            what,
            "--local",
            "-b",
            remote,
            "--json",
            "--name",
            &self.name,
            "--source",
            &self.source,
        ]
        .map(String::from)
        .to_vec()
    }

    /// Streams one timestamped archive the in-pod backup reported into `out_dir` under the
    /// same name (`-2`, `-3`, ... added when an earlier backup has it:
    /// [`crate::backup::free_path`]).
    async fn fetch_written(
        &self,
        container: &str,
        remote: &Written,
        out_dir: &Path,
    ) -> Result<Written, KubeError> {
        // A timestamped archive never replaces an earlier one (two backups in one second).
        let name = file_name_of(remote)?.to_string_lossy();
        let local = crate::backup::free_path(out_dir, &name);
        let remote_path = remote.path.to_string_lossy();
        self.download_archive(container, &remote_path, &local)
            .await?;
        Ok(Written {
            path: local,
            manifest: remote.manifest.clone(),
        })
    }

    /// Streams the fixed-name archive the in-pod backup reported beside its local namesake in
    /// `out_dir`, and replaces that one only when `guard` accepts the new counts against it
    /// (the timestamped archive `stamped` is already here either way).
    async fn fetch_fixed(
        &self,
        container: &str,
        remote: &Written,
        out_dir: &Path,
        guard: &ShrinkGuard,
        stamped: &Written,
    ) -> Result<Written, KubeError> {
        let fixed = out_dir.join(file_name_of(remote)?);
        let candidate = crate::backup::candidate_path(&fixed).map_err(io_at(out_dir))?;
        let remote_path = remote.path.to_string_lossy();
        self.download_archive(container, &remote_path, &candidate)
            .await?;
        let (guard, stamped, dest) = (*guard, stamped.path.clone(), fixed.clone());
        let manifest = remote.manifest.clone();
        tokio::task::spawn_blocking(move || -> Result<(), KubeError> {
            guard.check(&dest, &manifest, Some(&stamped))?;
            Ok(crate::archive::publish_file(candidate, &dest)?)
        })
        .await
        .map_err(|e| io_at(&fixed)(std::io::Error::other(e)))??;
        Ok(Written {
            path: fixed,
            manifest: remote.manifest.clone(),
        })
    }
    /// Restores archives into the pod: verified here, streamed into the volumes, pod deleted
    /// and awaited, result confirmed from inside. With `live`, restored into the running
    /// daemons instead (no restart).
    pub async fn restore(
        &self,
        zones: Option<&Path>,
        leases: Option<&Path>,
        live: bool,
    ) -> Result<KubeRestore, KubeError> {
        self.restore_with(zones, leases, live, false).await
    }

    /// [`restore`](Self::restore); with `keep_serial` (live only) the zones serve the archived
    /// serials exactly instead of moving past them.
    pub async fn restore_with(
        &self,
        zones: Option<&Path>,
        leases: Option<&Path>,
        live: bool,
        keep_serial: bool,
    ) -> Result<KubeRestore, KubeError> {
        let (given_zones, given_leases) = (zones, leases);
        let prepared = Prepared::new(zones, leases).await?;
        let (zones, leases) = (prepared.zones(), prepared.leases());
        let archives = &prepared.archives;
        let needs = archives.needs();
        let zones_report = archives.zones.as_ref().map(|s| &s.report);
        let leases_report = archives.leases.as_ref().map(|s| &s.report);
        let mut wanted = Vec::new();
        if zones.is_some() {
            wanted.push(KNOT_CONTAINER);
        }
        if leases.is_some() {
            wanted.push(KEA_CONTAINER);
        }
        let pod = self.pod(&wanted).await?;
        // The preflight's daemon half, in the containers, before the first change.
        let aborted = self.check_target(&needs, live).await?;
        // A restored zone serves a serial past the one it serves now (unless the archived one
        // is kept): the confirmation must not take the damaged zone's serial for the restore's.
        let served_before = match (zones_report, keep_serial) {
            (Some(_), false) => self.zones_served().await?,
            _ => Vec::new(),
        };
        let old_uid = uid(&pod).unwrap_or_default().to_owned();
        let mut result = KubeRestore {
            target: self.source.clone(),
            pod: self.pod.clone(),
            old_uid: old_uid.clone(),
            new_uid: None,
            zones: Vec::new(),
            leases_archived: leases_report.as_ref().map(|r| r.lease_count),
            leases_held: None,
            zones_archive: given_zones.map(Path::to_owned),
            leases_archive: given_leases.map(Path::to_owned),
            aborted,
            live: None,
        };
        if live {
            let originals = [given_zones, given_leases];
            self.restore_live([zones, leases], originals, keep_serial, &mut result)
                .await?;
        } else {
            self.restore_by_restart(zones, zones_report, leases, &old_uid, &mut result)
                .await?;
        }
        if let Err(cause) = self
            .confirm(
                zones_report,
                &served_before,
                leases_report.map(|r| r.lease_count),
                &mut result,
            )
            .await
        {
            return Err(match live {
                true => cause,
                false => self.unconfirmed_after_restart(cause, zones_report, &result),
            });
        }
        // Removing the scratch directory is file-system work too.
        transfer::blocking(&std::env::temp_dir(), move || {
            drop(prepared);
            Ok(())
        })
        .await?;
        Ok(result)
    }

    /// `restore --local` in each container concerned, zones first. Leases failing after the
    /// zones were restored is [`KubeError::Incomplete`]: what is restored, what is not, and the
    /// command that finishes the job.
    async fn restore_live(
        &self,
        archives: [Option<&Path>; 2],
        originals: [Option<&Path>; 2],
        keep_serial: bool,
        result: &mut KubeRestore,
    ) -> Result<(), KubeError> {
        let steps = [
            (KNOT_CONTAINER, archives[0], originals[0], "--zones"),
            (KEA_CONTAINER, archives[1], originals[1], "--leases"),
        ];
        for (container, local, _, flag) in steps {
            let Some(local) = local else { continue };
            let r = match self
                .restore_live_one(container, local, flag, keep_serial)
                .await
            {
                Ok(r) => r,
                Err((cause, None)) if result.live.is_none() => return Err(cause),
                Err((cause, partial)) => {
                    // This step and every later one are still to do.
                    let todo: Vec<(&str, &Path)> = steps
                        .iter()
                        .skip_while(|s| s.3 != flag)
                        .filter_map(|s| Some((s.3, s.2.or(s.1)?)))
                        .collect();
                    return Err(self.live_incomplete(result, &todo, partial, cause));
                }
            };
            match &mut result.live {
                None => result.live = Some(r),
                Some(done) => {
                    done.aborted.extend(r.aborted);
                    done.zones = done.zones.take().or(r.zones);
                    done.leases = done.leases.take().or(r.leases);
                }
            }
        }
        Ok(())
    }

    /// A live restore that stopped part-way: what earlier steps restored, what the failed
    /// step restored before it stopped (`partial`, as the pod reported it), what is still to
    /// do (`todo`: the failed step and every later one, as flag and the operator's archive),
    /// and the command that finishes the job (rerunning a zone restore leaves the zones that
    /// already match alone).
    fn live_incomplete(
        &self,
        result: &KubeRestore,
        todo: &[(&str, &Path)],
        partial: Option<inpod::Incomplete>,
        cause: KubeError,
    ) -> KubeError {
        let mut restored: Vec<String> = result
            .live
            .iter()
            .flat_map(|l| &l.zones)
            .flat_map(|z| &z.zones)
            .map(|z| format!("zone {}", z.zone))
            .collect();
        let mut not_restored = Vec::new();
        for (i, (flag, archive)) in todo.iter().enumerate() {
            let what = flag.trim_start_matches('-');
            match (&partial, i) {
                (Some(p), 0) => {
                    restored.extend(p.restored.iter().cloned());
                    not_restored.extend(p.not_restored.iter().cloned());
                }
                _ => not_restored.push(format!("{what} from {}", archive.display())),
            }
        }
        let archives: Vec<String> = todo
            .iter()
            .map(|(flag, archive)| format!("{flag} {}", archive.display()))
            .collect();
        KubeError::Incomplete(Box::new(crate::restore::RestoreError::Incomplete {
            restored,
            not_restored,
            finish: format!(
                "dnsdhcp restore --live {} {}",
                archives.join(" "),
                self.target_flags()
            ),
            cause: Box::new(cause),
        }))
    }

    /// The flags naming this StatefulSet (`-c CTX -n NS -s STS`).
    pub fn target_flags(&self) -> String {
        let ctx = self
            .context
            .as_deref()
            .map(|c| format!("-c {c} "))
            .unwrap_or_default();
        format!("{ctx}-n {} -s {}", self.namespace, self.statefulset)
    }

    /// Streams one archive into the container's `/tmp` and runs `restore --local` on it there;
    /// returns the in-pod report.
    async fn restore_live_one(
        &self,
        container: &str,
        local: &Path,
        flag: &str,
        keep_serial: bool,
    ) -> Result<RestoreReport, (KubeError, Option<inpod::Incomplete>)> {
        let remote_dir = format!("{POD_TMP}/dnsdhcp-{}", random_suffix());
        let name = local
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "archive.tar.gz".into());
        let remote = format!("{remote_dir}/{name}");
        let r = async {
            self.upload(container, local, &RemoteDest::Path(remote.clone()))
                .await
                .map_err(|e| (e, None))?;
            self.progress.step(format!(
                "restoring {name} live in {}/{}",
                self.pod,
                self.container_for(container)
            ));
            let mut args = vec!["restore", "--local", flag, &remote, "--json"];
            if keep_serial && flag == "--zones" {
                args.push("--keep-serial");
            }
            let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            let command = format!("dnsdhcp {}", args.join(" "));
            let (r, out) = self.run_capture(container, &args).await;
            match r {
                Ok(()) => inpod::parse_report(&out, &command, "restore").map_err(|e| (e, None)),
                // Its JSON error object says whether it stopped part-way.
                Err(e @ KubeError::CommandFailed { .. }) => {
                    let report = inpod::parse_report::<inpod::ErrorReport>(&out, &command, "error");
                    Err((e, report.ok().and_then(|r| r.incomplete)))
                }
                Err(e) => Err((e, None)),
            }
        }
        .await;
        self.remove_remote(container, &remote_dir).await;
        let names = [(remote, local.display().to_string())];
        r.map_err(|(e, partial)| {
            let partial = partial.map(|p| inpod::Incomplete {
                restored: p.restored,
                not_restored: p
                    .not_restored
                    .iter()
                    .map(|s| String::from_utf8_lossy(&name_back(s.as_bytes(), &names)).into())
                    .collect(),
                finish: p.finish,
            });
            (e.naming(&names), partial)
        })
    }

    /// The preflight's daemon half, run in each container concerned (`dnsdhcp pod
    /// preflight`): Knot answering with every archived zone configured and no transaction in
    /// the way, Kea answering, room where the archives are staged. Every container's
    /// problems are collected; any is a [`KubeError::Preflight`] and nothing is changed.
    pub async fn check_target(
        &self,
        needs: &crate::preflight::Needs,
        live: bool,
    ) -> Result<Vec<crate::txn::Aborted>, KubeError> {
        let mut problems = Vec::new();
        let mut abandoned = Vec::new();
        for (container, part) in [
            (KNOT_CONTAINER, needs.zones_part()),
            (KEA_CONTAINER, needs.leases_part()),
        ] {
            if part.is_empty() {
                continue;
            }
            let check = self.preflight_in(container, &part, live).await?;
            problems.extend(
                check
                    .problems
                    .into_iter()
                    .map(|p| format!("in {}/{}: {p}", self.pod, self.container_for(container))),
            );
            abandoned.extend(check.ready.abandoned);
            for note in check.ready.notes {
                self.progress
                    .step(format!("note: in {}/{container}: {note}", self.pod));
            }
        }
        if problems.is_empty() {
            Ok(abandoned)
        } else {
            Err(crate::preflight::PreflightError { problems }.into())
        }
    }

    /// Runs `dnsdhcp pod preflight` in `container` on `needs` (sent on stdin).
    async fn preflight_in(
        &self,
        container: &str,
        needs: &crate::preflight::Needs,
        live: bool,
    ) -> Result<crate::preflight::TargetCheck, KubeError> {
        let json = serde_json::to_vec(needs).map_err(|e| KubeError::Protocol {
            command: "dnsdhcp pod preflight".into(),
            detail: e.to_string(),
        })?;
        let mut command = vec![
            self.binary.clone(),
            "pod".into(),
            "preflight".into(),
            "--needs-size".into(),
            json.len().to_string(),
        ];
        if live {
            // `restore --local` in the pod stages in its temporary directory.
            command.extend(["--stage-dir".into(), POD_TMP.into()]);
        }
        self.progress.step(format!(
            "checking {}/{} can take the restore",
            self.pod,
            self.container_for(container)
        ));
        let mut out = Vec::new();
        let mut input: &[u8] = &json;
        exec::exec(
            &self.place(container),
            &command,
            Some(exec::Stdin {
                reader: &mut input,
                len: json.len() as u64,
            }),
            &mut out,
            None,
            self.limits(),
            "`dnsdhcp pod preflight`",
        )
        .await?;
        inpod::parse_result(
            &out,
            "dnsdhcp pod preflight",
            |c: &crate::preflight::TargetCheck| c.version,
        )
    }

    async fn restore_by_restart(
        &self,
        zones: Option<&Path>,
        zones_report: Option<&VerifyReport>,
        leases: Option<&Path>,
        old_uid: &str,
        result: &mut KubeRestore,
    ) -> Result<(), KubeError> {
        let (scratch, zones_file) = zone_files_archive(zones, zones_report).await?;
        let mut staged: Vec<(&str, String)> = Vec::new();
        let staging = self.stage(zones_file.as_deref(), leases, &mut staged).await;
        let deleted = match staging {
            Ok(()) => {
                pods::delete_and_wait(
                    &self.pods,
                    self.req(),
                    old_uid,
                    self.timeouts.request,
                    self.timeouts.pod_ready,
                    self.timeouts.poll,
                    self.progress,
                )
                .await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = &deleted
            && !matches!(e, KubeError::Timeout { .. })
        {
            // Nothing may stay staged in a pod that was not restarted: it would be restored
            // at some later restart.
            for (container, path) in &staged {
                self.remove_remote(container, path).await;
            }
        }
        let scratch_dir = std::env::temp_dir();
        transfer::blocking(&scratch_dir, move || {
            drop(scratch);
            Ok(())
        })
        .await?;
        let pod = deleted?;
        result.new_uid = uid(&pod).map(str::to_owned);
        Ok(())
    }

    /// Uploads the zones archive and the lease archive (either may be absent) to where the
    /// restarting pod restores them from; each staged file is listed in `staged` as soon as
    /// it is in place, so that a failure can remove what was staged.
    async fn stage(
        &self,
        zones_file: Option<&Path>,
        leases: Option<&Path>,
        staged: &mut Vec<(&'static str, String)>,
    ) -> Result<(), KubeError> {
        let archives = [
            (
                KNOT_CONTAINER,
                zones_file,
                RemoteDest::ZonesDir(ZONES_ARCHIVE.into()),
            ),
            (
                KEA_CONTAINER,
                leases,
                RemoteDest::LeaseDir(LEASES_ARCHIVE.into()),
            ),
        ];
        for (container, file, dest) in archives {
            if let Some(file) = file {
                let (_, path) = self.upload(container, file, &dest).await?;
                staged.push((container, path));
            }
        }
        Ok(())
    }

    /// Confirms from inside the pod that the zones and leases are in place; what is confirmed
    /// is recorded in `result` as it is seen, so a failure still tells what is.
    async fn confirm(
        &self,
        zones: Option<&VerifyReport>,
        served_before: &[inpod::ZoneServing],
        archived_leases: Option<u64>,
        result: &mut KubeRestore,
    ) -> Result<(), KubeError> {
        // Both are looked at even when the zones are not confirmed, so that a failure says
        // whether the leases are in place.
        let zones_confirmed = match zones {
            Some(r) => {
                self.confirm_zones(r, served_before, &mut result.zones)
                    .await
            }
            None => Ok(()),
        };
        if let Some(n) = archived_leases {
            result.leases_held = Some(self.confirm_leases(n).await?);
        }
        zones_confirmed
    }

    /// A restore by restart the new pod does not confirm, reported like a restore that stopped
    /// part-way: the zones and leases the pod serves, those it does not, and the command that
    /// restores the rest into the running daemons.
    fn unconfirmed_after_restart(
        &self,
        cause: KubeError,
        zones: Option<&VerifyReport>,
        result: &KubeRestore,
    ) -> KubeError {
        if !matches!(cause, KubeError::NotConfirmed(_)) {
            return cause;
        }
        let mut restored: Vec<String> = result
            .zones
            .iter()
            .map(|z| format!("zone {} (serial {})", z.zone, z.serving))
            .collect();
        let mut not_restored: Vec<String> = zones
            .into_iter()
            .flat_map(|r| &r.zones)
            .filter(|z| !result.zones.iter().any(|c| c.zone == z.name))
            .map(|z| format!("zone {}", z.name))
            .collect();
        let mut finish = Vec::new();
        if let (false, Some(a)) = (not_restored.is_empty(), &result.zones_archive) {
            finish.push(format!("--zones {}", a.display()));
        }
        match (result.leases_held, &result.leases_archive) {
            (Some(n), _) => restored.push(format!("leases ({n} held)")),
            (None, Some(a)) => {
                not_restored.push(format!("leases from {}", a.display()));
                finish.push(format!("--leases {}", a.display()));
            }
            (None, None) => {}
        }
        KubeError::Incomplete(Box::new(crate::restore::RestoreError::Incomplete {
            restored,
            not_restored,
            finish: format!(
                "dnsdhcp restore --live {} {}",
                finish.join(" "),
                self.target_flags()
            ),
            cause: Box::new(cause),
        }))
    }

    /// The zones Knot serves now, with their serials.
    async fn zones_served(&self) -> Result<Vec<inpod::ZoneServing>, KubeError> {
        Ok(self
            .run_report::<inpod::ZonesStatus>(
                KNOT_CONTAINER,
                &["zones", "status", "--local", "--json"],
                "zones-status",
            )
            .await?
            .items)
    }

    /// Waits (bounded) until every archived zone is served with its archived serial or a newer
    /// one (post-start's static-record merge runs right after the restore), and newer than the
    /// serial in `served_before` (empty when the archived serial is kept). `confirmed` holds
    /// the zones confirmed at the last look.
    async fn confirm_zones(
        &self,
        report: &VerifyReport,
        served_before: &[inpod::ZoneServing],
        confirmed: &mut Vec<ZoneConfirmed>,
    ) -> Result<(), KubeError> {
        let start = std::time::Instant::now();
        loop {
            let served = self.zones_served().await?;
            confirmed.clear();
            let mut wrong = Vec::new();
            for z in &report.zones {
                let serial_in = |list: &[inpod::ZoneServing]| {
                    list.iter()
                        .find(|s| crate::zones::same_zone(&s.zone, &z.name))
                        .and_then(|s| s.serial)
                };
                let (serving, before) = (serial_in(&served), serial_in(served_before));
                // Past the serial served before the restore (a restore always moves it), and
                // equal to or newer than the archived one in RFC 1982 arithmetic: post-start
                // merges the static records right after the restore (and DDNS may update).
                let moved = |s: u32| before.is_none_or(|b| crate::zones::serial_newer(s, b));
                match serving {
                    // An imported zone keeps the target's SOA: any new serial shows it is served.
                    Some(s)
                        if moved(s)
                            && (z.apex_from_target || s.wrapping_sub(z.serial) < 1 << 31) =>
                    {
                        confirmed.push(ZoneConfirmed {
                            zone: z.name.clone(),
                            archived: z.serial,
                            serving: s,
                            records: z.records,
                        })
                    }
                    other => wrong.push(format!(
                        "{} serves {} (archived {}{})",
                        z.name,
                        other.map_or("nothing".into(), |s| format!("serial {s}")),
                        z.serial,
                        before.map_or(String::new(), |b| format!(", served {b} before"))
                    )),
                }
            }
            if wrong.is_empty() {
                self.progress.step(format!(
                    "confirmed: {} zone(s) serve the archived serials",
                    confirmed.len()
                ));
                return Ok(());
            }
            if start.elapsed() >= self.timeouts.confirm {
                return Err(KubeError::NotConfirmed(format!(
                    "after {}s: {} (see `kubectl logs {} -c {KNOT_CONTAINER}` for post-start's report)",
                    self.timeouts.confirm.as_secs(),
                    wrong.join("; "),
                    self.pod
                )));
            }
            tokio::time::sleep(self.timeouts.poll).await;
        }
    }

    /// Waits (bounded) until Kea holds at least the archived number of leases.
    async fn confirm_leases(&self, archived: u64) -> Result<u64, KubeError> {
        let start = std::time::Instant::now();
        loop {
            let held = self
                .run_report::<inpod::LeasesCount>(
                    KEA_CONTAINER,
                    &["leases", "count", "--local", "--json"],
                    "leases-count",
                )
                .await?
                .count;
            if held >= archived {
                self.progress
                    .step(format!("confirmed: Kea holds the {held} archived lease(s)"));
                return Ok(held);
            }
            if start.elapsed() >= self.timeouts.confirm {
                return Err(KubeError::NotConfirmed(format!(
                    "Kea holds {held} lease(s), the archive has {archived}"
                )));
            }
            tokio::time::sleep(self.timeouts.poll).await;
        }
    }

    /// `records plan|apply` in `knot-auth` on the given values files (validate them locally
    /// first); `extra` are further arguments (`--force`, `--max-change N`, `--json`,
    /// `--exit-code`). Returns the command's exit code (0, or 2 for a plan with changes under
    /// `--exit-code`) and stdout.
    pub async fn records(
        &self,
        values: &[PathBuf],
        apply: bool,
        extra: &[String],
    ) -> Result<(i32, Vec<u8>), KubeError> {
        self.pod(&[KNOT_CONTAINER]).await?;
        let remote_dir = format!("{POD_TMP}/dnsdhcp-{}", random_suffix());
        // The pod's copies, and the operator's files they stand for.
        let names: Vec<(String, String)> = values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                (
                    format!("{remote_dir}/values-{i}.yaml"),
                    v.display().to_string(),
                )
            })
            .collect();
        let r = async {
            let mut args: Vec<String> = vec![
                "records".into(),
                if apply { "apply" } else { "plan" }.into(),
                "--local".into(),
            ];
            for (v, (remote, _)) in values.iter().zip(&names) {
                self.upload_file(KNOT_CONTAINER, v, remote).await?;
                args.extend(["-f".into(), remote.clone()]);
            }
            args.extend(extra.iter().cloned());
            // `records plan --exit-code` exits 2 when the plan has changes.
            self.run_with_code(KNOT_CONTAINER, &args, &[2]).await
        }
        .await;
        self.remove_remote(KNOT_CONTAINER, &remote_dir).await;
        match r {
            Ok((code, out)) => Ok((code, name_back(&out, &names))),
            Err(e) => Err(e.naming(&names)),
        }
    }
}

/// The archive the pod's post-start role restores zones from (`zones.tar.gz`, zone files only):
/// a full Knot backup is reduced to its zone files in a scratch directory (returned, to be
/// removed once the archive is uploaded); any other zone archive is used as it is.
async fn zone_files_archive(
    zones: Option<&Path>,
    zones_report: Option<&VerifyReport>,
) -> Result<(Option<tempfile::TempDir>, Option<PathBuf>), KubeError> {
    match (zones, zones_report) {
        (Some(p), Some(r)) if r.kind == Some(ArchiveKind::ZonesFull) => {
            let src = p.to_owned();
            let (scratch, out) = transfer::blocking(p, move || {
                let scratch = tempfile::tempdir().map_err(io_at(std::env::temp_dir()))?;
                let out = scratch.path().join(ZONES_ARCHIVE);
                archive::filter_archive(&src, &out, ArchiveKind::Zones, &Limits::default(), |m| {
                    m.starts_with(crate::backup::ZONEFILES_DIR)
                })?;
                verified(&out)?;
                Ok((scratch, out))
            })
            .await?;
            Ok((Some(scratch), Some(out)))
        }
        (Some(p), _) => Ok((None, Some(p.to_owned()))),
        _ => Ok((None, None)),
    }
}
