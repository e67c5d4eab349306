//! `dnsdhcp restore`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::error::ErrorKind;
use clap::{ArgGroup, Args};

use dnsdhcp::kube::{self, Cluster};
use dnsdhcp::restore;
use dnsdhcp::target::{LocalTarget, Target};

use super::Ctx;
use super::target::TargetArgs;

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("archives").required(true).multiple(true).args(["zones", "leases"])))]
pub struct RestoreArgs {
    /// Zone archive: knot-zones-*.tar.gz (restored with Knot's zone-restore) or zones.tar.gz.
    #[arg(long, value_name = "ARCHIVE")]
    zones: Option<PathBuf>,
    /// Lease archive: kea-leases*.tar.gz.
    #[arg(long, value_name = "ARCHIVE")]
    leases: Option<PathBuf>,
    /// Kubernetes: restore into the running pod's daemons instead of restarting the pod
    /// (--local always restores into the running daemons).
    #[arg(long)]
    live: bool,
    /// Serve the archived SOA serials exactly. By default a restored zone's serial moves past
    /// both the one served before and the archived one, so secondaries transfer it. (Kubernetes:
    /// with --live only.)
    #[arg(long)]
    keep_serial: bool,
    /// Kubernetes: seconds to wait for the StatefulSet's new pod to be Ready after the old one
    /// is deleted.
    #[arg(long, value_name = "SECONDS", default_value_t = 600)]
    timeout: u64,
    /// Print what was restored as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    target: TargetArgs,
}

/// Runs `restore` on the resolved target.
pub fn run(a: RestoreArgs, ctx: &mut Ctx) -> Result<ExitCode> {
    let target = a.target.resolve(&ctx.given)?;
    match target {
        Target::Local(t) => {
            for (id, flag) in [("live", "--live"), ("timeout", "--timeout")] {
                if ctx.given.on_command_line(id) {
                    return Err(ctx
                        .given
                        .usage_error(
                            ErrorKind::ArgumentConflict,
                            format!(
                                "{flag} is for the Kubernetes target; --local always restores into the running daemons"
                            ),
                        )
                        .into());
                }
            }
            local(&a, &t, ctx)
        }
        Target::Kube(k) => {
            if a.keep_serial && !a.live {
                return Err(ctx
                    .given
                    .usage_error(
                        ErrorKind::ArgumentConflict,
                        "--keep-serial needs --live with the Kubernetes target (after a pod restart the zones are restored by the pod's post-start hook, which moves serials forward)",
                    )
                    .into());
            }
            let mut c = super::connect(&k)?;
            c.timeouts.pod_ready = Duration::from_secs(a.timeout);
            in_cluster(&a, &c, ctx)
        }
    }
}

fn local(a: &RestoreArgs, t: &LocalTarget, ctx: &mut Ctx) -> Result<ExitCode> {
    let opts = restore::ZoneRestoreOptions {
        keep_serial: a.keep_serial,
    };
    let r = restore::restore_local(t, a.zones.as_deref(), a.leases.as_deref(), &opts)?;
    if a.json {
        ctx.out.json(&r)?;
    } else {
        for aborted in &r.aborted {
            ctx.out.line(aborted.to_string());
        }
        if let Some(z) = &r.zones {
            ctx.out.zones_restore(z);
        }
        if let Some(l) = &r.leases {
            ctx.out.leases_restore(l);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn in_cluster(a: &RestoreArgs, c: &Cluster, ctx: &mut Ctx) -> Result<ExitCode> {
    let r = kube::block_on(c.restore_with(
        a.zones.as_deref(),
        a.leases.as_deref(),
        a.live,
        a.keep_serial,
    ))
    .context("restore failed")?;
    if a.json {
        ctx.out.json(&r)?;
    } else {
        for line in r.summary() {
            ctx.out.line(line);
        }
    }
    Ok(ExitCode::SUCCESS)
}
