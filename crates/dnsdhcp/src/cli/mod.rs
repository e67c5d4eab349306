//! Argument definitions (clap) and the one place that prints.

mod output;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};

use dnsdhcp::kube::{self, Cluster, KubeTarget};
use dnsdhcp::records::{self, ApplyOptions, SafetyLimit};
use dnsdhcp::target::{self, LocalTarget};
use dnsdhcp::{archive, backup, pod, restore};

use output::Out;

/// Back up, restore and declaratively manage Knot DNS zones and Kea DHCPv4 leases.
///
/// Targets: `--local` works on daemons on this host (UNIX sockets and files); otherwise the
/// Kubernetes StatefulSet named by -c/-n/-s.
#[derive(Parser, Debug)]
#[command(name = "dnsdhcp", version, about, long_about, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Back up zones (Knot's zone-backup) and/or leases (a consistent snapshot) into tar.gz
    /// archives.
    ///
    /// Writes knot-zones-<name>-<stamp>.tar.gz and zones.tar.gz, and/or
    /// kea-leases-<name>-<stamp>.tar.gz and kea-leases.tar.gz, each atomically and mode 0600.
    Backup(BackupArgs),
    /// Restore zones and/or leases from archives (verified first; nothing changes if one is bad).
    Restore(RestoreArgs),
    /// Check archives: checksums, every zone file and every lease row. Exits 1 on any problem.
    Verify(VerifyArgs),
    /// Static records declared in Helm values: show the plan, or apply it.
    #[command(subcommand)]
    Records(RecordsCommand),
    /// Kea's leases on the target: count, list or wipe.
    #[command(subcommand)]
    Leases(LeasesCommand),
    /// Knot's zones on the target: the serial each one serves.
    #[command(subcommand)]
    Zones(ZonesCommand),
    /// The in-pod roles run by the Helm chart's init containers and postStart hook.
    #[command(subcommand)]
    Pod(PodCommand),
}

/// Where the daemons are.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Target")]
struct TargetArgs {
    /// Work on Knot and Kea running on this host (control sockets and lease files).
    #[arg(long)]
    local: bool,
    /// Knot's control socket (with --local).
    #[arg(long, env = "DNSDHCP_KNOT_SOCKET", default_value = target::DEFAULT_KNOT_SOCKET)]
    knot_socket: PathBuf,
    /// Kea DHCPv4's control socket (with --local).
    #[arg(long, env = "DNSDHCP_KEA_SOCKET", default_value = target::DEFAULT_KEA_SOCKET)]
    kea_socket: PathBuf,
    /// Kea DHCPv4's memfile lease file (with --local).
    #[arg(long, env = "DNSDHCP_KEA_LEASE_FILE", default_value = target::DEFAULT_KEA_LEASE_FILE)]
    kea_lease_file: PathBuf,
    /// Name used in archive names and manifests (default: the StatefulSet, or the host name
    /// with --local).
    #[arg(long, env = "DNSDHCP_NAME")]
    name: Option<String>,
    /// Kubernetes context (default: the kubeconfig's current context).
    #[arg(short = 'c', long, env = "DNSDHCP_CONTEXT")]
    context: Option<String>,
    /// Kubernetes namespace.
    #[arg(
        short = 'n',
        long,
        env = "DNSDHCP_NAMESPACE",
        default_value = "dns-dhcp"
    )]
    namespace: String,
    /// The StatefulSet running Knot and Kea.
    #[arg(
        short = 's',
        long,
        env = "DNSDHCP_STATEFULSET",
        default_value = "unified-dns-dhcp"
    )]
    statefulset: String,
}

impl TargetArgs {
    /// The StatefulSet's pod (when --local is not given).
    fn cluster(&self) -> Result<Option<Cluster>> {
        if self.local {
            return Ok(None);
        }
        let t = KubeTarget {
            context: self.context.clone(),
            namespace: self.namespace.clone(),
            statefulset: self.statefulset.clone(),
            name: self.name.clone(),
        };
        Ok(Some(kube::block_on(Cluster::connect(&t))?))
    }

    fn local(&self) -> Result<LocalTarget> {
        if !self.local {
            bail!("internal: local target asked for without --local");
        }
        Ok(LocalTarget {
            knot_socket: self.knot_socket.clone(),
            kea_socket: self.kea_socket.clone(),
            kea_lease_file: self.kea_lease_file.clone(),
            name: self.name.clone().unwrap_or_else(target::host_name),
        })
    }
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum What {
    /// DNS zones (Knot).
    Zones,
    /// DHCP leases (Kea).
    Leases,
    /// Both.
    All,
}

#[derive(Args, Debug)]
struct BackupArgs {
    /// What to back up.
    what: What,
    /// Directory for the archives (created if missing).
    #[arg(short = 'b', long = "backup-dir", default_value = "./backups")]
    dir: PathBuf,
    /// Print what was written as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    target: TargetArgs,
}

#[derive(Args, Debug)]
struct RestoreArgs {
    /// Zone archive: knot-zones-*.tar.gz (restored with Knot's zone-restore) or zones.tar.gz.
    #[arg(long, value_name = "ARCHIVE")]
    zones: Option<PathBuf>,
    /// Lease archive: kea-leases*.tar.gz.
    #[arg(long, value_name = "ARCHIVE")]
    leases: Option<PathBuf>,
    /// Restore into the running daemons without restarting them (the default with --local).
    #[arg(long)]
    live: bool,
    /// Print what was restored as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    target: TargetArgs,
}

#[derive(Args, Debug)]
struct VerifyArgs {
    /// Archives to check.
    #[arg(required = true, value_name = "ARCHIVE")]
    archives: Vec<PathBuf>,
    /// Print the reports as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand, Debug)]
enum RecordsCommand {
    /// Show what `apply` would change, per zone.
    Plan(RecordsArgs),
    /// Apply the plan: one Knot transaction per changed zone, aborted on any error.
    Apply(RecordsArgs),
}

#[derive(Args, Debug)]
struct RecordsArgs {
    /// Helm values files with `zones` and `staticRecords` (repeatable; later files win).
    #[arg(short = 'f', long = "values", required = true, value_name = "VALUES")]
    values: Vec<PathBuf>,
    /// Apply even if a zone would lose or change more than the safety limit allows.
    #[arg(long)]
    force: bool,
    /// Safety limit: the largest share (0-100 %) of a zone's managed records one apply may
    /// delete or change, for zones managing at least 10 records.
    #[arg(long, default_value_t = 30.0, value_name = "PERCENT")]
    max_change: f64,
    /// Print the plan (and outcome) as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    target: TargetArgs,
}

#[derive(Subcommand, Debug)]
enum LeasesCommand {
    /// How many leases Kea holds.
    Count(LeasesArgs),
    /// Every lease Kea holds, as JSON lines.
    List(LeasesArgs),
    /// Delete every lease Kea holds (lease4-wipe).
    Wipe(LeasesArgs),
}

#[derive(Args, Debug)]
struct LeasesArgs {
    #[command(flatten)]
    target: TargetArgs,
}

#[derive(Subcommand, Debug)]
enum ZonesCommand {
    /// Every zone Knot serves and its SOA serial.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: TargetArgs,
    },
}

#[derive(Subcommand, Debug)]
enum PodCommand {
    /// Copy this binary to DEST (the chart shares it with the other containers).
    CopyBinary {
        /// Where to put the binary.
        dest: PathBuf,
    },
    /// Copy the chart's initial zone files into the zones volume where absent (never
    /// overwrites).
    InitZones {
        /// The chart's initial zone files.
        #[arg(
            long,
            env = "DNSDHCP_INITIAL_ZONES_DIR",
            default_value = "/etc/dnsdhcp/initial-zones"
        )]
        initial_dir: PathBuf,
        /// The zones volume.
        #[arg(long, env = "DNSDHCP_ZONES_DIR", default_value = "/var/lib/knot/zones")]
        zones_dir: PathBuf,
    },
    /// Restore kea-leases.tar.gz from the lease volume, if present, before Kea starts.
    InitLeases {
        /// Kea's memfile lease file; the archive is looked for beside it.
        #[arg(long, env = "DNSDHCP_KEA_LEASE_FILE", default_value = target::DEFAULT_KEA_LEASE_FILE)]
        kea_lease_file: PathBuf,
        /// Kea's control socket: its directory is created with mode 0750, as Kea 2.6 demands.
        #[arg(long, env = "DNSDHCP_KEA_SOCKET")]
        kea_socket: Option<PathBuf>,
    },
    /// After Knot starts: abort stale transactions, restore zones.tar.gz, merge static records.
    PostStart(PostStartArgs),
    /// Write FILE to stdout, then its size and SHA-256 as a JSON line on stderr (used by the
    /// Kubernetes target to copy archives out of the pod).
    SendFile {
        /// The file.
        path: PathBuf,
    },
    /// Read exactly SIZE bytes from stdin into DEST: a temporary file, digest checked, fsynced,
    /// renamed; removed on short input (used by the Kubernetes target to copy files in).
    ReceiveFile(ReceiveFileArgs),
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum ReceiveInto {
    /// DEST is relative to the zones volume ($DNSDHCP_ZONES_DIR).
    ZonesDir,
    /// DEST is relative to the directory of Kea's lease file ($DNSDHCP_KEA_LEASE_FILE).
    LeaseDir,
}

#[derive(Args, Debug)]
struct ReceiveFileArgs {
    /// Bytes to read from stdin.
    #[arg(long)]
    size: u64,
    /// Their expected SHA-256 (hex).
    #[arg(long)]
    sha256: String,
    /// Resolve DEST inside this directory (a bare file name then).
    #[arg(long, value_enum)]
    into: Option<ReceiveInto>,
    /// The zones volume.
    #[arg(long, env = "DNSDHCP_ZONES_DIR", default_value = "/var/lib/knot/zones")]
    zones_dir: PathBuf,
    /// Kea's memfile lease file.
    #[arg(long, env = "DNSDHCP_KEA_LEASE_FILE", default_value = target::DEFAULT_KEA_LEASE_FILE)]
    kea_lease_file: PathBuf,
    /// Where to write.
    dest: PathBuf,
}

#[derive(Args, Debug)]
struct PostStartArgs {
    /// Knot's control socket.
    #[arg(long, env = "DNSDHCP_KNOT_SOCKET", default_value = target::DEFAULT_KNOT_SOCKET)]
    knot_socket: PathBuf,
    /// The zones volume, where zones.tar.gz is looked for.
    #[arg(long, env = "DNSDHCP_ZONES_DIR", default_value = "/var/lib/knot/zones")]
    zones_dir: PathBuf,
    /// Values file with `zones` and `staticRecords` (skipped if missing).
    #[arg(
        long,
        env = "DNSDHCP_VALUES_FILE",
        default_value = "/etc/dnsdhcp/values/values.yaml"
    )]
    values: PathBuf,
    /// Seconds to wait for Knot to answer and for the zones to load.
    #[arg(long, env = "DNSDHCP_POST_START_TIMEOUT_SECS", default_value_t = 120)]
    timeout_secs: u64,
    /// Also append every log line to this file (e.g. /proc/1/fd/1, the container's log: a
    /// postStart hook's own output is discarded).
    #[arg(long, env = "DNSDHCP_LOG_TO")]
    log_to: Option<PathBuf>,
    /// Also write every log line to the standard output of the process whose PID this file
    /// holds (e.g. /run/knot/knot.pid: the lines then appear in `kubectl logs` of knot-auth).
    #[arg(long, env = "DNSDHCP_LOG_TO_PID_FILE", conflicts_with = "log_to")]
    log_to_pid_file: Option<PathBuf>,
    /// Apply static records even over the safety limit.
    #[arg(long, env = "DNSDHCP_RECORDS_FORCE")]
    force: bool,
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> Result<ExitCode> {
    let mut out = Out::stdout();
    match cli.command {
        Command::Backup(a) => {
            if let Some(c) = a.target.cluster()? {
                return kube_backup(&c, &a, &mut out);
            }
            let t = a.target.local()?;
            let mut written = serde_json::Map::new();
            if matches!(a.what, What::Zones | What::All) {
                let z = backup::backup_zones(&t, &a.dir).context("zone backup failed")?;
                if !a.json {
                    out.zones_backup(&z);
                }
                written.insert("zones".into(), serde_json::to_value(&z)?);
            }
            if matches!(a.what, What::Leases | What::All) {
                let l = backup::backup_leases(&t, &a.dir).context("lease backup failed")?;
                if !a.json {
                    out.leases_backup(&l);
                }
                written.insert("leases".into(), serde_json::to_value(&l)?);
            }
            if a.json {
                out.json(&written)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Restore(a) => {
            if a.zones.is_none() && a.leases.is_none() {
                bail!("nothing to restore: give --zones ARCHIVE and/or --leases ARCHIVE");
            }
            if let Some(c) = a.target.cluster()? {
                let r = kube::block_on(c.restore(a.zones.as_deref(), a.leases.as_deref(), a.live))
                    .context("restore failed")?;
                if a.json {
                    out.json(&r)?;
                } else {
                    for line in r.summary() {
                        out.line(line);
                    }
                }
                return Ok(ExitCode::SUCCESS);
            }
            let t = a.target.local()?;
            let _ = a.live; // --local always restores live
            // Verify everything before changing anything.
            for p in a.zones.iter().chain(&a.leases) {
                restore::verified(p)?;
            }
            let mut done = serde_json::Map::new();
            if let Some(z) = &a.zones {
                let r = restore::restore_zones(&t, z).context("zone restore failed")?;
                if !a.json {
                    out.zones_restore(&r);
                }
                done.insert("zones".into(), serde_json::to_value(&r)?);
            }
            if let Some(l) = &a.leases {
                let r = restore::restore_leases(&t, l).context("lease restore failed")?;
                if !a.json {
                    out.leases_restore(&r);
                }
                done.insert("leases".into(), serde_json::to_value(&r)?);
            }
            if a.json {
                out.json(&done)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify(a) => {
            let reports: Vec<_> = a
                .archives
                .iter()
                .map(|p| archive::verify(p, &archive::Limits::default()))
                .collect();
            if a.json {
                out.json(&reports)?;
            } else {
                for r in &reports {
                    out.verify_report(r);
                }
            }
            Ok(if reports.iter().all(|r| r.ok) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Records(cmd) => {
            let (a, apply) = match cmd {
                RecordsCommand::Plan(a) => (a, false),
                RecordsCommand::Apply(a) => (a, true),
            };
            let values = records::load_values(&a.values)?;
            if let Some(c) = a.target.cluster()? {
                let mut extra = vec!["--max-change".to_owned(), a.max_change.to_string()];
                extra.extend(a.force.then(|| "--force".to_owned()));
                extra.extend(a.json.then(|| "--json".to_owned()));
                let stdout = kube::block_on(c.records(&a.values, apply, &extra))?;
                print_raw(&stdout)?;
                return Ok(ExitCode::SUCCESS);
            }
            let t = a.target.local()?;
            let mut client = t.knot().context("connecting to Knot")?;
            if apply {
                let opts = ApplyOptions {
                    force: a.force,
                    limit: SafetyLimit {
                        max_share: a.max_change / 100.0,
                        ..SafetyLimit::default()
                    },
                };
                let outcome = records::apply(&mut client, &values, &opts)?;
                if a.json {
                    out.json(&outcome)?;
                } else {
                    out.plan(&outcome.plan);
                    out.applied(&outcome.committed);
                }
            } else {
                let (_, plan) = records::plan_from_knot(&mut client, &values)?;
                if a.json {
                    out.json(&plan)?;
                } else {
                    out.plan(&plan);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Leases(cmd) => {
            let (a, action) = match cmd {
                LeasesCommand::Count(a) => (a, "count"),
                LeasesCommand::List(a) => (a, "list"),
                LeasesCommand::Wipe(a) => (a, "wipe"),
            };
            if let Some(c) = a.target.cluster()? {
                let args = ["leases", action, "--local"].map(String::from);
                print_raw(&kube::block_on(c.run(kube::KEA_CONTAINER, &args))?)?;
                return Ok(ExitCode::SUCCESS);
            }
            let t = a.target.local()?;
            let kea = t.kea();
            match action {
                "count" => out.line(restore::count_leases(&t)?.to_string()),
                "list" => {
                    for lease in kea.lease4_get_all_paged(1000)? {
                        out.json_line(&lease)?;
                    }
                }
                _ => {
                    kea.lease4_wipe(None)?;
                    out.line("all leases wiped".into());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Zones(ZonesCommand::Status { json, target }) => {
            if let Some(c) = target.cluster()? {
                let mut args = vec!["zones".to_owned(), "status".into(), "--local".into()];
                args.extend(json.then(|| "--json".to_owned()));
                print_raw(&kube::block_on(c.run(kube::KNOT_CONTAINER, &args))?)?;
                return Ok(ExitCode::SUCCESS);
            }
            let zones = kube::inpod::zones_status(&target.local()?).context("zone-status")?;
            if json {
                out.json(&zones)?;
            } else {
                for z in zones {
                    let serial = z
                        .serial
                        .map_or("not loaded".into(), |s| format!("serial {s}"));
                    out.line(format!("{} {serial}", z.zone));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Pod(cmd) => run_pod(cmd, &mut out),
    }
}

/// Writes a pod command's output as it came.
fn print_raw(bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    o.write_all(bytes)?;
    o.flush()?;
    Ok(())
}

/// `backup` against the StatefulSet's pod: the same archives, streamed out and verified.
fn kube_backup(c: &Cluster, a: &BackupArgs, out: &mut Out) -> Result<ExitCode> {
    let mut written = serde_json::Map::new();
    if matches!(a.what, What::Zones | What::All) {
        let z = kube::block_on(c.backup_zones(&a.dir)).context("zone backup failed")?;
        if !a.json {
            out.zones_backup(&z);
        }
        written.insert("zones".into(), serde_json::to_value(&z)?);
    }
    if matches!(a.what, What::Leases | What::All) {
        let l = kube::block_on(c.backup_leases(&a.dir)).context("lease backup failed")?;
        if !a.json {
            out.leases_backup(&l);
        }
        written.insert("leases".into(), serde_json::to_value(&l)?);
    }
    if a.json {
        out.json(&written)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn run_pod(cmd: PodCommand, out: &mut Out) -> Result<ExitCode> {
    match cmd {
        PodCommand::SendFile { path } => {
            let mut stdout = kube::inpod::raw_stdout()?;
            kube::inpod::send_file(&path, &mut stdout, &mut std::io::stderr())?;
        }
        PodCommand::ReceiveFile(a) => {
            let dest = match a.into {
                None => a.dest,
                Some(ReceiveInto::ZonesDir) => a.zones_dir.join(&a.dest),
                Some(ReceiveInto::LeaseDir) => a
                    .kea_lease_file
                    .parent()
                    .unwrap_or(std::path::Path::new("."))
                    .join(&a.dest),
            };
            kube::inpod::receive_file(&dest, a.size, &a.sha256, &mut kube::inpod::raw_stdin()?)?;
            out.json_line(&serde_json::json!({ "path": dest, "size": a.size }))?;
        }
        PodCommand::CopyBinary { dest } => {
            pod::copy_binary(&dest)?;
            out.line(format!("copied dnsdhcp to {}", dest.display()));
        }
        PodCommand::InitZones {
            initial_dir,
            zones_dir,
        } => {
            let copied = pod::init_zones(&initial_dir, &zones_dir)?;
            if copied.is_empty() {
                out.line(format!(
                    "init-zones: every zone already has a file in {}",
                    zones_dir.display()
                ));
            }
            for p in copied {
                out.line(format!("init-zones: created {}", p.display()));
            }
        }
        PodCommand::InitLeases {
            kea_lease_file,
            kea_socket,
        } => {
            if let Some(dir) = kea_socket.as_deref().and_then(|s| s.parent()) {
                pod::prepare_socket_dir(dir)?;
            }
            let line = match pod::init_leases(&kea_lease_file)? {
                pod::LeasesInit::NothingToRestore => "init-leases: no archive to restore".into(),
                pod::LeasesInit::Restored { leases } => {
                    format!(
                        "init-leases: restored {leases} lease(s) into {}",
                        kea_lease_file.display()
                    )
                }
                pod::LeasesInit::Completed => {
                    "init-leases: completed a restore interrupted earlier".into()
                }
                pod::LeasesInit::Rejected { moved_to, reason } => format!(
                    "init-leases: error: archive rejected and moved to {}; leases unchanged: {reason}",
                    moved_to.display()
                ),
            };
            out.line(line);
        }
        PodCommand::PostStart(a) => {
            let cfg = pod::PostStartConfig {
                target: LocalTarget {
                    knot_socket: a.knot_socket,
                    ..LocalTarget::default()
                },
                zones_dir: a.zones_dir,
                values_files: vec![a.values],
                timeout: Duration::from_secs(a.timeout_secs),
                apply: ApplyOptions {
                    force: a.force,
                    ..ApplyOptions::default()
                },
            };
            // The PID file is read for every line: knotd writes it only once it runs, and the
            // hook starts together with knotd.
            let (log_to, pid_file) = (a.log_to, a.log_to_pid_file);
            let mut log = |line: String| {
                let line = format!("dnsdhcp post-start: {line}");
                let target = log_to.clone().or_else(|| {
                    let pid = std::fs::read_to_string(pid_file.as_ref()?).ok()?;
                    Some(PathBuf::from(format!("/proc/{}/fd/1", pid.trim())))
                });
                if let Some(p) = &target {
                    pod::append_line(p, &line);
                }
                out.line(line);
            };
            if let Err(e) = pod::post_start(&cfg, &mut log) {
                log(format!("error: {e}"));
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
