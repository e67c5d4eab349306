//! `dnsdhcp pod ...`: the in-pod roles run by the Helm chart, and the in-pod halves of the
//! Kubernetes transport.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};

use dnsdhcp::records::ApplyOptions;
use dnsdhcp::target::{self, LocalTarget};
use dnsdhcp::{kube, pod, preflight, probe};

use super::Ctx;
use super::output::Out;

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
        /// Also keep the DDNS TSIG key here: generated once, then kept (`secret` and Knot's
        /// `knot-key.conf`).
        #[arg(long, env = "DNSDHCP_TSIG_DIR")]
        tsig_dir: Option<PathBuf>,
        /// The TSIG key's name (Knot's key id, Kea's key name).
        #[arg(long, env = "DNSDHCP_TSIG_KEY_NAME", default_value = "kea-ddns")]
        tsig_key_name: String,
        /// The TSIG algorithm, in Knot's spelling (e.g. hmac-sha256).
        #[arg(long, env = "DNSDHCP_TSIG_ALGORITHM", default_value = "hmac-sha256")]
        tsig_algorithm: String,
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
    /// The chart's probes: ask a daemon over its control socket; exit 0 when it answers.
    Probe(ProbeArgs),
    /// Write FILE to stdout, then its size and SHA-256 as a JSON line on stderr (used by the
    /// Kubernetes target to copy archives out of the pod).
    SendFile {
        /// The file.
        path: PathBuf,
    },
    /// Read exactly SIZE bytes from stdin into DEST: a temporary file, digest checked, fsynced,
    /// renamed; removed on short input (used by the Kubernetes target to copy files in).
    ReceiveFile(ReceiveFileArgs),
    /// Check this container's daemons can take a restore (the daemon half of the restore
    /// preflight): reads what the restore needs as JSON of exactly --needs-size bytes from
    /// stdin, prints the result as JSON; changes nothing (used by the Kubernetes target).
    #[command(hide = true)]
    Preflight(PreflightArgs),
}

#[derive(Args, Debug)]
pub struct PreflightArgs {
    /// Bytes of JSON to read from stdin.
    #[arg(long)]
    needs_size: u64,
    /// Where the zone archive is staged and extracted (default: the zones volume).
    #[arg(long)]
    stage_dir: Option<PathBuf>,
    /// The zones volume.
    #[arg(long, env = "DNSDHCP_ZONES_DIR", default_value = "/var/lib/knot/zones")]
    zones_dir: PathBuf,
    /// Knot's control socket.
    #[arg(long, env = "DNSDHCP_KNOT_SOCKET", default_value = target::DEFAULT_KNOT_SOCKET)]
    knot_socket: PathBuf,
    /// Kea DHCPv4's control socket.
    #[arg(long, env = "DNSDHCP_KEA_SOCKET", default_value = target::DEFAULT_KEA_SOCKET)]
    kea_socket: PathBuf,
    /// Kea's memfile lease file.
    #[arg(long, env = "DNSDHCP_KEA_LEASE_FILE", default_value = target::DEFAULT_KEA_LEASE_FILE)]
    kea_lease_file: PathBuf,
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

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeWhat {
    /// Knot answers `status` on its control socket (or, while a long operation holds that
    /// socket, a DNS query on --knot-dns).
    Knot,
    /// Kea DHCPv4 answers `status-get` on its control socket.
    KeaDhcp4,
    /// Kea's DHCP-DDNS daemon answers `status-get` on its control socket.
    KeaDhcpDdns,
}

#[derive(Args, Debug)]
pub struct ProbeArgs {
    /// The daemon to ask.
    #[arg(value_enum)]
    what: ProbeWhat,
    /// knot: also require post-start to have finished and left the pod ready (readiness).
    #[arg(long)]
    ready: bool,
    /// Knot's control socket.
    #[arg(long, env = "DNSDHCP_KNOT_SOCKET", default_value = target::DEFAULT_KNOT_SOCKET)]
    knot_socket: PathBuf,
    /// Where Knot answers DNS (asked when its control socket is busy).
    #[arg(long, default_value = "127.0.0.1:53")]
    knot_dns: std::net::SocketAddr,
    /// Kea DHCPv4's control socket.
    #[arg(long, env = "DNSDHCP_KEA_SOCKET", default_value = target::DEFAULT_KEA_SOCKET)]
    kea_socket: PathBuf,
    /// kea-dhcp-ddns' control socket.
    #[arg(
        long,
        env = "DNSDHCP_KEA_DDNS_SOCKET",
        default_value = "/run/kea/kea-ddns-ctrl-socket"
    )]
    kea_ddns_socket: PathBuf,
    /// The state post-start leaves (--ready).
    #[arg(
        long,
        env = "DNSDHCP_POST_START_STATE",
        default_value = DEFAULT_POST_START_STATE
    )]
    state_file: PathBuf,
    /// Seconds to wait for each answer (keep it below the probe's timeoutSeconds).
    #[arg(long, default_value_t = 4)]
    timeout_secs: u64,
}

/// Where post-start leaves its state for the readiness probe (Knot's run directory).
const DEFAULT_POST_START_STATE: &str = "/run/knot/dnsdhcp-post-start.json";

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
    /// What a failed static-record merge does: `fail` leaves the pod not Ready (see `pod probe
    /// knot --ready`), `warn` only logs it.
    #[arg(long, env = "DNSDHCP_RECORDS_ON_ERROR", default_value = "fail")]
    on_merge_error: probe::OnMergeError,
    /// Where to leave the outcome for the readiness probe.
    #[arg(
        long,
        env = "DNSDHCP_POST_START_STATE",
        default_value = DEFAULT_POST_START_STATE
    )]
    state_file: PathBuf,
}

/// Runs an in-pod role.
pub fn run(cmd: PodCommand, ctx: &mut Ctx) -> Result<ExitCode> {
    let out = &mut ctx.out;
    match cmd {
        PodCommand::SendFile { path } => {
            let mut stdout = kube::inpod::raw_stdout()?;
            kube::inpod::send_file(&path, &mut stdout, &mut std::io::stderr())?;
        }
        PodCommand::ReceiveFile(a) => receive_file(a, out)?,
        PodCommand::Preflight(a) => run_preflight(a, out)?,
        PodCommand::CopyBinary { dest } => {
            pod::copy_binary(&dest)?;
            out.line(format!("copied dnsdhcp to {}", dest.display()));
        }
        PodCommand::InitZones {
            initial_dir,
            zones_dir,
            tsig_dir,
            tsig_key_name,
            tsig_algorithm,
        } => {
            if let Some(dir) = tsig_dir {
                init_tsig(&dir, &tsig_key_name, &tsig_algorithm, out)?;
            }
            init_zones(&initial_dir, &zones_dir, out)?;
        }
        PodCommand::InitLeases {
            kea_lease_file,
            kea_socket,
        } => init_leases(&kea_lease_file, kea_socket.as_deref(), out)?,
        PodCommand::PostStart(a) => return Ok(post_start(a, out)),
        PodCommand::Probe(a) => out.line(run_probe(&a)?),
    }
    Ok(ExitCode::SUCCESS)
}

/// `pod receive-file`: stdin into the file, then a JSON line saying what was received.
fn receive_file(a: ReceiveFileArgs, out: &mut Out) -> Result<()> {
    let into_volume = a.into.is_some();
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
    if into_volume {
        pod::own_like_parent(&dest)?;
    }
    out.json_line(&kube::inpod::Received {
        version: kube::inpod::FORMAT_VERSION,
        path: dest.display().to_string(),
        size: a.size,
    })
}

/// `pod preflight`: what the restore needs, from stdin; this container's answer as JSON.
fn run_preflight(a: PreflightArgs, out: &mut Out) -> Result<()> {
    let needs: preflight::Needs =
        kube::inpod::read_json(&mut kube::inpod::raw_stdin()?, a.needs_size).map_err(|e| {
            anyhow::anyhow!("pod preflight: reading what the restore needs from stdin: {e}")
        })?;
    let target = LocalTarget {
        knot_socket: a.knot_socket,
        kea_socket: a.kea_socket,
        kea_lease_file: a.kea_lease_file,
        ..LocalTarget::default()
    };
    let places = preflight::Places {
        zones_dir: a.stage_dir.unwrap_or(a.zones_dir),
    };
    out.json_line(&preflight::TargetCheck::run(&target, &needs, &places))
}

/// `pod init-zones --tsig-dir`: the DDNS key, generated once, then kept.
fn init_tsig(dir: &Path, name: &str, algorithm: &str, out: &mut Out) -> Result<()> {
    let what = match pod::init_tsig(dir, name, algorithm)? {
        pod::TsigInit::Generated => "generated a new",
        pod::TsigInit::Kept => "kept the",
    };
    out.line(format!(
        "init-zones: {what} TSIG key {name} in {}",
        dir.display()
    ));
    Ok(())
}

/// `pod init-zones`: the initial zone files copied where a zone has none.
fn init_zones(initial_dir: &Path, zones_dir: &Path, out: &mut Out) -> Result<()> {
    let copied = pod::init_zones(initial_dir, zones_dir)?;
    if copied.is_empty() {
        out.line(format!(
            "init-zones: every zone already has a file in {}",
            zones_dir.display()
        ));
    }
    for p in copied {
        out.line(format!("init-zones: created {}", p.display()));
    }
    Ok(())
}

/// `pod init-leases`: a staged lease archive restored into Kea's lease file.
fn init_leases(kea_lease_file: &Path, kea_socket: Option<&Path>, out: &mut Out) -> Result<()> {
    if let Some(dir) = kea_socket.and_then(|s| s.parent()) {
        pod::prepare_socket_dir(dir)?;
    }
    let line = match pod::init_leases(kea_lease_file)? {
        pod::LeasesInit::NothingToRestore => "init-leases: no archive to restore".into(),
        pod::LeasesInit::Restored { leases } => {
            format!(
                "init-leases: restored {leases} lease(s) into {}",
                kea_lease_file.display()
            )
        }
        pod::LeasesInit::Completed => "init-leases: completed a restore interrupted earlier".into(),
        pod::LeasesInit::Rejected { moved_to, reason } => format!(
            "init-leases: error: archive rejected and moved to {}; leases unchanged: {reason}",
            moved_to.display()
        ),
    };
    out.line(line);
    Ok(())
}

/// `pod post-start`: zones restored, static records merged, the readiness state written; every
/// line also goes to knotd's log. Fails (exit 1) only when the merge could not run.
fn post_start(a: PostStartArgs, out: &mut Out) -> ExitCode {
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
    // The PID file is read for every line: knotd writes it only once it runs, and the hook
    // starts together with knotd.
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
    if let Err(e) = probe::clear_post_start_state(&a.state_file) {
        log(format!("warning: {}: {e}", a.state_file.display()));
    }
    let records = match pod::post_start(&cfg, &mut log) {
        Ok(records) => records,
        Err(e) => {
            log(format!("error: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let state = probe::PostStartState::new(records, a.on_merge_error);
    if !state.ready {
        log("the pod stays not Ready: postStart.onMergeError is `fail`".into());
    }
    if let Err(e) = state.write(&a.state_file) {
        log(format!("warning: {}: {e}", a.state_file.display()));
    }
    ExitCode::SUCCESS
}

/// `pod probe`: asks the daemon; the line to print when it answered.
fn run_probe(a: &ProbeArgs) -> Result<String> {
    let timeout = Duration::from_secs(a.timeout_secs);
    Ok(match a.what {
        ProbeWhat::Knot => {
            let how = probe::knot(&a.knot_socket, a.knot_dns, timeout)?;
            if a.ready {
                probe::post_start_ready(&a.state_file)?;
            }
            match how {
                probe::KnotAnswer::Control => "knot answers status".to_owned(),
                probe::KnotAnswer::Dns => format!(
                    "knot answers DNS on {} (its control socket is busy)",
                    a.knot_dns
                ),
            }
        }
        ProbeWhat::KeaDhcp4 => {
            probe::kea(&a.kea_socket, timeout)?;
            "kea-dhcp4 answers status-get".to_owned()
        }
        ProbeWhat::KeaDhcpDdns => {
            probe::kea(&a.kea_ddns_socket, timeout)?;
            "kea-dhcp-ddns answers status-get".to_owned()
        }
    })
}
