//! `dnsdhcp zones status`.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use dnsdhcp::kube;

use super::target::TargetArgs;
use super::{Ctx, On, print_raw};

#[derive(Subcommand, Debug)]
pub enum ZonesCommand {
    /// Every zone Knot serves and its SOA serial.
    Status(StatusArgs),
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    target: TargetArgs,
}

/// Runs a `zones` command on the resolved target.
pub fn run(cmd: ZonesCommand, ctx: &mut Ctx) -> Result<ExitCode> {
    let ZonesCommand::Status(a) = cmd;
    let t = match On::open(a.target.resolve(&ctx.given)?)? {
        On::Kube(c) => {
            let mut args = vec!["zones".to_owned(), "status".into(), "--local".into()];
            args.extend(a.json.then(|| "--json".to_owned()));
            print_raw(&kube::block_on(c.run(kube::KNOT_CONTAINER, &args))?)?;
            return Ok(ExitCode::SUCCESS);
        }
        On::Local(t) => t,
    };
    let zones = kube::inpod::zones_status(&t).context("zone-status")?;
    if a.json {
        ctx.out
            .report("zones-status", &kube::inpod::ZonesStatus { items: zones })?;
    } else {
        for z in zones {
            let serial = z
                .serial
                .map_or("not loaded".into(), |s| format!("serial {s}"));
            ctx.out.line(format!("{} {serial}", z.zone));
        }
    }
    Ok(ExitCode::SUCCESS)
}
