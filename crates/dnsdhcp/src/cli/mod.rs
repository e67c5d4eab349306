//! The command line: one module per command group (argument definitions and the code that
//! runs it), and the one place that prints ([`output`]).
//!
//! Arguments are parsed by clap, then resolved once (target flags into a
//! [`dnsdhcp::target::Target`]; contradictory flags are usage errors) before anything runs.

mod agent;
mod backup;
mod backups;
mod import;
mod leases;
mod output;
mod pod;
mod records;
mod restore;
mod target;
mod values;
mod verify;
mod zones;

use std::fmt::Display;
use std::process::ExitCode;

use anyhow::Result;
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};

use dnsdhcp::kube::{self, Cluster, KubeTarget};
use dnsdhcp::target::{LocalTarget, Target};

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
    /// zones.tar.gz and kea-leases.tar.gz (what a restarting pod restores) are kept, and the
    /// command exits 1, when the new backup's zone, record or lease count drops to zero or by
    /// more than --shrink-limit against them (default 50 %), unless --allow-shrink.
    /// With --to URL, the timestamped archives are then uploaded to object storage (encrypted
    /// first with --recipient).
    Backup(backup::BackupArgs),
    /// Restore zones and/or leases from archives (verified first; nothing changes if one is bad).
    Restore(restore::RestoreArgs),
    /// Check archives: checksums, every zone file and every lease row. Exits 1 on any problem.
    Verify(verify::VerifyArgs),
    /// Scheduled backups to object storage (verified, uploaded, pruned), with Prometheus
    /// metrics on /metrics and /healthz: the chart's backup container.
    Agent(agent::AgentArgs),
    /// Backups in object storage: list them, or prune them by a retention policy.
    #[command(subcommand)]
    Backups(backups::BackupsCommand),
    /// Static records declared in Helm values: show the plan, or apply it.
    #[command(subcommand)]
    Records(records::RecordsCommand),
    /// Kea's leases on the target: count, list or wipe.
    #[command(subcommand)]
    Leases(leases::LeasesCommand),
    /// Knot's zones on the target: the serial each one serves.
    #[command(subcommand)]
    Zones(zones::ZonesCommand),
    /// The in-pod roles run by the Helm chart's init containers and postStart hook.
    #[command(subcommand)]
    Pod(pod::PodCommand),
    /// Convert the original chart's backups (restore-scripts/ archives, tar archives of zone or
    /// lease files) into verified archives of this tool. Nothing in them is executed.
    Import(import::ImportArgs),
    /// Helm values: convert values written for the original chart.
    #[command(subcommand)]
    Values(values::ValuesCommand),
}

/// What the command line said beyond the parsed values: which flags were given explicitly,
/// and the (sub)command for usage errors.
pub struct Given {
    matches: ArgMatches,
    command: clap::Command,
}

impl Given {
    /// Whether the argument `id` was given on the command line (not from the environment or
    /// a default).
    pub fn on_command_line(&self, id: &str) -> bool {
        self.matches.ids().any(|i| i.as_str() == id)
            && self.matches.value_source(id) == Some(ValueSource::CommandLine)
    }

    /// A usage error of the command being run (exit code 2, with its usage line).
    pub fn usage_error(&self, kind: clap::error::ErrorKind, message: impl Display) -> clap::Error {
        self.command.clone().error(kind, message)
    }
}

/// What every command gets besides its arguments.
pub struct Ctx {
    /// Standard output.
    pub out: Out,
    /// The command line as given.
    pub given: Given,
}

/// Parses the command line (exits with clap's usage error on bad arguments).
pub fn parse() -> (Cli, Ctx) {
    let mut root = Cli::command();
    let matches = root
        .clone()
        .try_get_matches()
        .unwrap_or_else(|e| usage_exit(e));
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| usage_exit(e));
    root.build();
    let (mut m, mut c) = (&matches, &root);
    let mut path = vec![root.get_name().to_owned()];
    while let Some((name, sub)) = m.subcommand() {
        c = c
            .find_subcommand(name)
            .expect("clap matched a subcommand it defines");
        path.push(name.to_owned());
        m = sub;
    }
    let given = Given {
        matches: m.clone(),
        command: c.clone().bin_name(path.join(" ")),
    };
    (
        cli,
        Ctx {
            out: Out::stdout(),
            given,
        },
    )
}

/// Runs the parsed command.
pub fn run(cli: Cli, ctx: &mut Ctx) -> Result<ExitCode> {
    match cli.command {
        Command::Backup(a) => backup::run(a, ctx),
        Command::Restore(a) => restore::run(a, ctx),
        Command::Verify(a) => verify::run(a, ctx),
        Command::Backups(c) => backups::run(c, ctx),
        Command::Agent(a) => agent::run(a, ctx),
        Command::Records(c) => records::run(c, ctx),
        Command::Leases(c) => leases::run(c, ctx),
        Command::Zones(c) => zones::run(c, ctx),
        Command::Pod(c) => pod::run(c, ctx),
        Command::Import(a) => import::run(a, ctx),
        Command::Values(c) => values::run(c, ctx),
    }
}

/// A resolved target, opened: this host's daemons, or a connection to the StatefulSet's pod.
pub enum On {
    /// `--local`.
    Local(LocalTarget),
    /// Through the Kubernetes API.
    Kube(Box<Cluster>),
}

impl On {
    /// Opens the target (connects to the cluster for a Kubernetes target).
    pub fn open(target: Target) -> Result<On> {
        Ok(match target {
            Target::Local(t) => On::Local(t),
            Target::Kube(k) => On::Kube(Box::new(connect(&k)?)),
        })
    }
}

/// Connects to the StatefulSet's pod and checks it runs this dnsdhcp version.
pub fn connect(k: &KubeTarget) -> Result<Cluster> {
    let c = kube::block_on(Cluster::connect(k))?;
    kube::block_on(c.check_version())?;
    Ok(c)
}

/// Writes a pod command's output as it came.
fn print_raw(bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    o.write_all(bytes)?;
    o.flush()?;
    Ok(())
}

/// Exit code: a usage error (bad or contradictory flags; nothing was done).
pub const EXIT_USAGE: u8 = 64;
/// Exit code of `records plan --exit-code` when the plan has changes.
pub const EXIT_CHANGES: u8 = 2;
/// Ends the process for a clap error: help and version as clap does (exit 0), a usage error
/// with its message and [`EXIT_USAGE`].
pub fn usage_exit(e: clap::Error) -> ! {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => e.exit(),
        _ => {
            let _ = e.print();
            std::process::exit(i32::from(EXIT_USAGE))
        }
    }
}

/// Prints a failed command's error (each cause once, a hint saying what to do; a JSON error
/// object on stdout too with `--json`) and returns the exit code. A broken pipe ends quietly.
pub fn report_error(e: &anyhow::Error, ctx: &mut Ctx) -> ExitCode {
    if broken_pipe(e) {
        return ExitCode::SUCCESS;
    }
    let message = one_line(e);
    let hint = hint(e);
    eprintln!("error: {message}");
    if let Some(h) = &hint {
        eprintln!("hint: {h}");
    }
    if ctx.given.on_command_line("json") {
        let kept = e
            .downcast_ref::<backup::Refused>()
            .and_then(|r| serde_json::to_value(&r.0).ok());
        let doc = kube::inpod::Report::new(
            "error",
            kube::inpod::ErrorReport {
                error: message,
                hint,
                incomplete: incomplete(e),
                kept,
            },
        );
        let _ = ctx.out.json(&doc);
    }
    ExitCode::FAILURE
}

/// The parts of a restore that stopped part-way, if that is what failed.
fn incomplete(e: &anyhow::Error) -> Option<kube::inpod::Incomplete> {
    e.chain().find_map(|c| {
        if let Some(r) = c.downcast_ref::<dnsdhcp::restore::RestoreError>() {
            return kube::inpod::Incomplete::of(r);
        }
        match c.downcast_ref::<kube::KubeError>() {
            Some(kube::KubeError::Incomplete(r)) => kube::inpod::Incomplete::of(r),
            _ => None,
        }
    })
}

/// The error and its causes, each printed once (a cause whose text the message already holds
/// is not repeated).
fn one_line(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

fn broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// What to do about errors whose fix is always the same.
fn hint(e: &anyhow::Error) -> Option<String> {
    for cause in e.chain() {
        if let Some(k) = cause.downcast_ref::<knot_ctl::Error>()
            && matches!(k, knot_ctl::Error::Io(_) | knot_ctl::Error::Timeout(_))
        {
            return Some(
                "is knotd running? set --knot-socket or DNSDHCP_KNOT_SOCKET to its control socket"
                    .into(),
            );
        }
        if let Some(kea_leases::ControlError::Io(_)) =
            cause.downcast_ref::<kea_leases::ControlError>()
        {
            return Some(
                "is kea-dhcp4 running? set --kea-socket or DNSDHCP_KEA_SOCKET to its control socket"
                    .into(),
            );
        }
    }
    None
}
