//! `dnsdhcp pod ...`: the in-pod roles run by the Helm chart, and the in-pod halves of the
//! Kubernetes transport.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};

use dnsdhcp::records::ApplyOptions;
use dnsdhcp::target::{self, LocalTarget};
use dnsdhcp::{kube, pod};

use super::Ctx;

#[derive(Subcommand, Debug)]
pub enum PodCommand {
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
pub enum ReceiveInto {
    /// DEST is relative to the zones volume ($DNSDHCP_ZONES_DIR).
    ZonesDir,
    /// DEST is relative to the directory of Kea's lease file ($DNSDHCP_KEA_LEASE_FILE).
    LeaseDir,
}

#[derive(Args, Debug)]
pub struct ReceiveFileArgs {
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
pub struct PostStartArgs {
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

/// Runs an in-pod role.
pub fn run(cmd: PodCommand, ctx: &mut Ctx) -> Result<ExitCode> {
    let out = &mut ctx.out;
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
