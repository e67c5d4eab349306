//! Target flags: parsed loosely by clap, then resolved once into a [`Target`] (or a usage
//! error for contradictory flags) before the command does anything.

use std::path::PathBuf;

use clap::Args;
use clap::error::ErrorKind;

use dnsdhcp::kube::KubeTarget;
use dnsdhcp::target::{self, LocalTarget, Target};

use super::Given;

/// Where the daemons are.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Target")]
pub struct TargetArgs {
    /// Work on Knot and Kea running on this host (control sockets and lease files).
    /// Without it, the target is the Kubernetes StatefulSet named by -c/-n/-s.
    #[arg(long)]
    local: bool,
    /// Knot's control socket (only with --local).
    #[arg(long, env = "DNSDHCP_KNOT_SOCKET", default_value = target::DEFAULT_KNOT_SOCKET)]
    knot_socket: PathBuf,
    /// Kea DHCPv4's control socket (only with --local).
    #[arg(long, env = "DNSDHCP_KEA_SOCKET", default_value = target::DEFAULT_KEA_SOCKET)]
    kea_socket: PathBuf,
    /// Kea DHCPv4's memfile lease file (only with --local).
    #[arg(long, env = "DNSDHCP_KEA_LEASE_FILE", default_value = target::DEFAULT_KEA_LEASE_FILE)]
    kea_lease_file: PathBuf,
    /// Name used in archive names and manifests (default: the StatefulSet, or the host name
    /// with --local).
    #[arg(long, env = "DNSDHCP_NAME")]
    name: Option<String>,
    /// Kubernetes context (default: the kubeconfig's current context; not with --local).
    #[arg(short = 'c', long, env = "DNSDHCP_CONTEXT")]
    context: Option<String>,
    /// Kubernetes namespace (not with --local).
    #[arg(
        short = 'n',
        long,
        env = "DNSDHCP_NAMESPACE",
        default_value = "dns-dhcp"
    )]
    namespace: String,
    /// The StatefulSet running Knot and Kea (not with --local).
    #[arg(
        short = 's',
        long,
        env = "DNSDHCP_STATEFULSET",
        default_value = "unified-dns-dhcp"
    )]
    statefulset: String,
}

/// Flags that only make sense for one kind of target. Values from the environment never
/// contradict (they are defaults); flags given on the command line do.
const LOCAL_ONLY: [(&str, &str); 3] = [
    ("knot_socket", "--knot-socket"),
    ("kea_socket", "--kea-socket"),
    ("kea_lease_file", "--kea-lease-file"),
];
const KUBE_ONLY: [(&str, &str); 3] = [
    ("context", "-c/--context"),
    ("namespace", "-n/--namespace"),
    ("statefulset", "-s/--statefulset"),
];

impl TargetArgs {
    /// Resolves the flags into one target; contradictory flags are usage errors.
    pub fn resolve(&self, given: &Given) -> Result<Target, clap::Error> {
        if self.local {
            if let Some((_, flag)) = KUBE_ONLY.iter().find(|(id, _)| given.on_command_line(id)) {
                return Err(given.usage_error(
                    ErrorKind::ArgumentConflict,
                    format!(
                        "{flag} names a Kubernetes target, but --local works on this host's daemons: give one or the other"
                    ),
                ));
            }
            return Ok(Target::Local(LocalTarget {
                knot_socket: self.knot_socket.clone(),
                kea_socket: self.kea_socket.clone(),
                kea_lease_file: self.kea_lease_file.clone(),
                name: self.name.clone().unwrap_or_else(target::host_name),
            }));
        }
        if let Some((_, flag)) = LOCAL_ONLY.iter().find(|(id, _)| given.on_command_line(id)) {
            return Err(given.usage_error(
                ErrorKind::MissingRequiredArgument,
                format!(
                    "{flag} works only with --local (without --local the target is the Kubernetes StatefulSet): add --local"
                ),
            ));
        }
        Ok(Target::Kube(KubeTarget {
            context: self.context.clone(),
            namespace: self.namespace.clone(),
            statefulset: self.statefulset.clone(),
            name: self.name.clone(),
        }))
    }
}
