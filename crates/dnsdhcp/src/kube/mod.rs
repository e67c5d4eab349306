//! The Kubernetes target: the same operations as `--local`, run inside the StatefulSet's pod.
//!
//! Nothing here re-implements a backup or a restore. The pod already holds this binary
//! (`/dnsdhcp/bin/dnsdhcp`, mounted in `knot-auth` and `kea-dhcp4`), so each operation execs
//! the `--local` command in the right container and moves bytes over the exec streams:
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

use crate::archive::{self, ArchiveKind, Limits, Manifest, VerifyReport};
use crate::backup::{LEASES_ARCHIVE, LeasesBackup, Written, ZONES_ARCHIVE, ZonesBackup};
use error::{Req, io_at};
use exec::{ExecLimits, Place};
use transfer::{Check, RemoteDest};

/// The container running Knot.
pub const KNOT_CONTAINER: &str = "knot-auth";
/// The container running Kea DHCPv4.
pub const KEA_CONTAINER: &str = "kea-dhcp4";
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
}

/// What a restore into the pod did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KubeRestore {
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
    /// With `--live`: the JSON the in-pod `restore --local` printed, per container.
    pub live: serde_json::Map<String, serde_json::Value>,
}

impl KubeRestore {
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
            container,
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
        for c in containers {
            check_container(&pod, c)?;
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
        match r {
            Ok(_) => Ok((0, out)),
            Err(KubeError::CommandFailed { code, .. }) if accepted.contains(&code) => {
                Ok((code, out))
            }
            Err(e) => Err(e),
        }
    }

    async fn run_json(
        &self,
        container: &str,
        args: &[String],
    ) -> Result<serde_json::Value, KubeError> {
        let out = self.run(container, args).await?;
        serde_json::from_slice(&out).map_err(|e| KubeError::Protocol {
            command: format!("dnsdhcp {}", args.join(" ")),
            detail: format!("not JSON: {e}: {}", String::from_utf8_lossy(&out)),
        })
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
                "warning: could not remove {dir} in {container}: {e}"
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
        let (_, [full, zones]) = self
            .backup_in(KNOT_CONTAINER, "zones", ["full", "zones"], out_dir)
            .await?;
        Ok(ZonesBackup { full, zones })
    }

    /// Backs up the leases: a snapshot in `kea-dhcp4`, both archives streamed into `out_dir`.
    pub async fn backup_leases(&self, out_dir: &Path) -> Result<LeasesBackup, KubeError> {
        let (l, [archive, latest]) = self
            .backup_in(KEA_CONTAINER, "leases", ["archive", "latest"], out_dir)
            .await?;
        let skipped_rows = serde_json::from_value(l["skipped_rows"].clone()).unwrap_or_default();
        let snapshot_attempts = l["snapshot_attempts"].as_u64().unwrap_or(1) as u32;
        Ok(LeasesBackup {
            archive,
            latest,
            skipped_rows,
            snapshot_attempts,
        })
    }

    /// Runs `backup WHAT --local` in `container` into a fresh directory under the pod's /tmp,
    /// streams the two archives its JSON report names under `archives` into `out_dir`, and
    /// removes the remote directory whatever happened. Returns the report's `WHAT` section.
    async fn backup_in(
        &self,
        container: &str,
        what: &str,
        archives: [&str; 2],
        out_dir: &Path,
    ) -> Result<(serde_json::Value, [Written; 2]), KubeError> {
        self.pod(&[container]).await?;
        let remote = format!("{POD_TMP}/dnsdhcp-{}", random_suffix());
        let r = self
            .backup_via(container, what, archives, &remote, out_dir)
            .await;
        self.remove_remote(container, &remote).await;
        r
    }

    async fn backup_via(
        &self,
        container: &str,
        what: &str,
        archives: [&str; 2],
        remote: &str,
        out_dir: &Path,
    ) -> Result<(serde_json::Value, [Written; 2]), KubeError> {
        self.progress.step(format!(
            "backing up {what} in {}/{} ({container})",
            self.namespace, self.pod
        ));
        let mut v = self
            .run_json(container, &self.backup_args(what, remote))
            .await?;
        let section = v[what].take();
        let first = self
            .fetch_written(container, &section[archives[0]], out_dir)
            .await?;
        let second = self
            .fetch_written(container, &section[archives[1]], out_dir)
            .await?;
        Ok((section, [first, second]))
    }

    fn backup_args(&self, what: &str, remote: &str) -> Vec<String> {
        [
            "backup", what, "--local", "-b", remote, "--json", "--name", &self.name,
        ]
        .map(String::from)
        .to_vec()
    }

    /// Streams one archive the in-pod backup reported into `out_dir` under the same name.
    async fn fetch_written(
        &self,
        container: &str,
        v: &serde_json::Value,
        out_dir: &Path,
    ) -> Result<Written, KubeError> {
        let bad = |detail: &str| KubeError::Protocol {
            command: "dnsdhcp backup --json".into(),
            detail: format!("{detail}: {v}"),
        };
        let remote = v["path"].as_str().ok_or_else(|| bad("no archive path"))?;
        let manifest: Manifest =
            serde_json::from_value(v["manifest"].clone()).map_err(|_| bad("no manifest"))?;
        let name = Path::new(remote)
            .file_name()
            .filter(|n| !n.is_empty() && *n != "." && *n != "..")
            .ok_or_else(|| bad("archive path has no file name"))?;
        let local = out_dir.join(name);
        self.download_archive(container, remote, &local).await?;
        Ok(Written {
            path: local,
            manifest,
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
        // Archives written the original chart's way (no manifest) are checked and converted
        // here; the pod receives project archives.
        let scratch = tempfile::tempdir().map_err(io_at(std::env::temp_dir()))?;
        let legacy = |p: &Path| {
            crate::legacy::convert_if_legacy(p, scratch.path()).map_err(|e| KubeError::Verify {
                path: p.to_owned(),
                problems: vec![e.to_string()],
            })
        };
        let zones_converted = zones.map(legacy).transpose()?.flatten();
        let leases_converted = leases.map(legacy).transpose()?.flatten();
        let zones = zones_converted.as_ref().map(|c| c.path()).or(zones);
        let leases = leases_converted.as_ref().map(|c| c.path()).or(leases);
        // The preflight's archive half, off the async runtime: every archive verified in full
        // and of its slot's kind before anything changes (the daemons' half runs in the pod).
        let (zp, lp) = (zones.map(Path::to_owned), leases.map(Path::to_owned));
        let archives = tokio::task::spawn_blocking(move || {
            crate::preflight::check_archives(zp.as_deref(), lp.as_deref())
        })
        .await
        .map_err(|e| io_at(std::env::temp_dir())(std::io::Error::other(e)))??;
        let zones_report = archives.zones.map(|s| s.report);
        let leases_report = archives.leases.map(|s| s.report);
        let mut wanted = Vec::new();
        if zones.is_some() {
            wanted.push(KNOT_CONTAINER);
        }
        if leases.is_some() {
            wanted.push(KEA_CONTAINER);
        }
        let pod = self.pod(&wanted).await?;
        let old_uid = uid(&pod).unwrap_or_default().to_owned();
        let mut result = KubeRestore {
            pod: self.pod.clone(),
            old_uid: old_uid.clone(),
            new_uid: None,
            zones: Vec::new(),
            leases_archived: leases_report.as_ref().map(|r| r.lease_count),
            leases_held: None,
            live: serde_json::Map::new(),
        };
        if live {
            self.restore_live(zones, leases, keep_serial, &mut result)
                .await?;
        } else {
            self.restore_by_restart(zones, zones_report.as_ref(), leases, &old_uid, &mut result)
                .await?;
        }
        if let Some(r) = &zones_report {
            result.zones = self.confirm_zones(r).await?;
        }
        if let Some(r) = &leases_report {
            result.leases_held = Some(self.confirm_leases(r.lease_count).await?);
        }
        Ok(result)
    }

    async fn restore_live(
        &self,
        zones: Option<&Path>,
        leases: Option<&Path>,
        keep_serial: bool,
        result: &mut KubeRestore,
    ) -> Result<(), KubeError> {
        for (container, local, flag) in [
            (KNOT_CONTAINER, zones, "--zones"),
            (KEA_CONTAINER, leases, "--leases"),
        ] {
            let Some(local) = local else { continue };
            let remote_dir = format!("{POD_TMP}/dnsdhcp-{}", random_suffix());
            let name = local
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "archive.tar.gz".into());
            let remote = format!("{remote_dir}/{name}");
            let r = async {
                self.upload(container, local, &RemoteDest::Path(remote.clone()))
                    .await?;
                self.progress
                    .step(format!("restoring {name} live in {}/{container}", self.pod));
                let mut args = vec!["restore", "--local", flag, &remote, "--json"];
                if keep_serial && flag == "--zones" {
                    args.push("--keep-serial");
                }
                self.run_json(
                    container,
                    &args.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
                )
                .await
            }
            .await;
            self.remove_remote(container, &remote_dir).await;
            let v = r?;
            let key = flag.trim_start_matches('-');
            result
                .live
                .insert(key.to_owned(), v.get(key).cloned().unwrap_or(v));
        }
        Ok(())
    }

    async fn restore_by_restart(
        &self,
        zones: Option<&Path>,
        zones_report: Option<&VerifyReport>,
        leases: Option<&Path>,
        old_uid: &str,
        result: &mut KubeRestore,
    ) -> Result<(), KubeError> {
        // The pod's post-start role restores zones.tar.gz (zone files only): a full Knot backup
        // is reduced to its zone files here.
        let scratch = tempfile::tempdir().map_err(io_at(std::env::temp_dir()))?;
        let zones_file = match (zones, zones_report) {
            (Some(p), Some(r)) if r.kind == Some(ArchiveKind::ZonesFull) => {
                let out = scratch.path().join(ZONES_ARCHIVE);
                let (src, dst) = (p.to_owned(), out.clone());
                tokio::task::spawn_blocking(move || -> Result<(), KubeError> {
                    archive::filter_archive(
                        &src,
                        &dst,
                        ArchiveKind::Zones,
                        &Limits::default(),
                        |m| m.starts_with(crate::backup::ZONEFILES_DIR),
                    )?;
                    verified(&dst).map(drop)
                })
                .await
                .map_err(|e| io_at(&out)(std::io::Error::other(e)))??;
                Some(out)
            }
            (Some(p), _) => Some(p.to_owned()),
            _ => None,
        };
        let mut staged: Vec<(&str, String)> = Vec::new();
        let staging = async {
            if let Some(z) = &zones_file {
                let (_, path) = self
                    .upload(
                        KNOT_CONTAINER,
                        z,
                        &RemoteDest::ZonesDir(ZONES_ARCHIVE.into()),
                    )
                    .await?;
                staged.push((KNOT_CONTAINER, path));
            }
            if let Some(l) = leases {
                let (_, path) = self
                    .upload(
                        KEA_CONTAINER,
                        l,
                        &RemoteDest::LeaseDir(LEASES_ARCHIVE.into()),
                    )
                    .await?;
                staged.push((KEA_CONTAINER, path));
            }
            Ok::<(), KubeError>(())
        }
        .await;
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
        let pod = deleted?;
        result.new_uid = uid(&pod).map(str::to_owned);
        Ok(())
    }

    /// Waits (bounded) until every archived zone is served with its archived serial or a newer
    /// one (post-start's static-record merge runs right after the restore).
    async fn confirm_zones(&self, report: &VerifyReport) -> Result<Vec<ZoneConfirmed>, KubeError> {
        let start = std::time::Instant::now();
        loop {
            let mut doc = self
                .run_json(
                    KNOT_CONTAINER,
                    &["zones", "status", "--local", "--json"].map(String::from),
                )
                .await?;
            // The report's list is under `items` (a bare list from dnsdhcp before 0.2).
            let list = match doc.get_mut("items") {
                Some(items) => items.take(),
                None => doc,
            };
            let served: Vec<ZoneServing> =
                serde_json::from_value(list).map_err(|e| KubeError::Protocol {
                    command: "dnsdhcp zones status".into(),
                    detail: e.to_string(),
                })?;
            let mut confirmed = Vec::new();
            let mut wrong = Vec::new();
            for z in &report.zones {
                let serving = served
                    .iter()
                    .find(|s| {
                        s.zone
                            .trim_end_matches('.')
                            .eq_ignore_ascii_case(z.name.trim_end_matches('.'))
                    })
                    .and_then(|s| s.serial);
                // Equal, or newer in RFC 1982 serial arithmetic: post-start merges the static
                // records right after the restore (and DDNS may update), which advances it.
                match serving {
                    // An imported zone keeps the target's SOA: any serial shows it is served.
                    Some(s) if z.apex_from_target || s.wrapping_sub(z.serial) < 1 << 31 => {
                        confirmed.push(ZoneConfirmed {
                            zone: z.name.clone(),
                            archived: z.serial,
                            serving: s,
                        })
                    }
                    other => wrong.push(format!(
                        "{} serves {} (archived {})",
                        z.name,
                        other.map_or("nothing".into(), |s| format!("serial {s}")),
                        z.serial
                    )),
                }
            }
            if wrong.is_empty() {
                self.progress.step(format!(
                    "confirmed: {} zone(s) serve the archived serials",
                    confirmed.len()
                ));
                return Ok(confirmed);
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
            let out = self
                .run(
                    KEA_CONTAINER,
                    &["leases", "count", "--local"].map(String::from),
                )
                .await?;
            let text = String::from_utf8_lossy(&out);
            let held: u64 = text.trim().parse().map_err(|_| KubeError::Protocol {
                command: "dnsdhcp leases count".into(),
                detail: format!("not a number: {text:?}"),
            })?;
            if held == archived {
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
        let r = async {
            let mut args: Vec<String> = vec![
                "records".into(),
                if apply { "apply" } else { "plan" }.into(),
                "--local".into(),
            ];
            for (i, v) in values.iter().enumerate() {
                let remote = format!("{remote_dir}/values-{i}.yaml");
                self.upload_file(KNOT_CONTAINER, v, &remote).await?;
                args.extend(["-f".into(), remote]);
            }
            args.extend(extra.iter().cloned());
            // `records plan --exit-code` exits 2 when the plan has changes.
            self.run_with_code(KNOT_CONTAINER, &args, &[2]).await
        }
        .await;
        self.remove_remote(KNOT_CONTAINER, &remote_dir).await;
        r
    }
}
