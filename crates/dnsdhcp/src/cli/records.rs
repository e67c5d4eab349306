//! `dnsdhcp records plan|apply`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use dnsdhcp::kube;
use dnsdhcp::records::{self, ApplyOptions, SafetyLimit};

use super::target::TargetArgs;
use super::{Ctx, EXIT_CHANGES, On, print_raw};

#[derive(Subcommand, Debug)]
pub enum RecordsCommand {
    /// Show what `apply` would change, per zone.
    Plan(RecordsArgs),
    /// Apply the plan: one Knot transaction per changed zone, aborted on any error.
    Apply(RecordsArgs),
}

#[derive(Args, Debug)]
pub struct RecordsArgs {
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
    /// `plan` only: exit 2 when the plan has changes, 0 when the zones already match (for CI).
    #[arg(long)]
    exit_code: bool,
    #[command(flatten)]
    target: TargetArgs,
}

/// Runs `records plan` or `records apply` on the resolved target.
pub fn run(cmd: RecordsCommand, ctx: &mut Ctx) -> Result<ExitCode> {
    let (a, apply) = match cmd {
        RecordsCommand::Plan(a) => (a, false),
        RecordsCommand::Apply(a) => (a, true),
    };
    if apply && a.exit_code {
        return Err(ctx
            .given
            .usage_error(
                clap::error::ErrorKind::ArgumentConflict,
                "--exit-code is for `records plan` (exit 2 when there are changes)",
            )
            .into());
    }
    let target = a.target.resolve(&ctx.given)?;
    let values = records::load_values(&a.values)?;
    let t = match On::open(target)? {
        On::Kube(c) => {
            let mut extra = vec!["--max-change".to_owned(), a.max_change.to_string()];
            extra.extend(a.force.then(|| "--force".to_owned()));
            extra.extend(a.json.then(|| "--json".to_owned()));
            extra.extend(a.exit_code.then(|| "--exit-code".to_owned()));
            let (code, stdout) = kube::block_on(c.records(&a.values, apply, &extra))?;
            print_raw(&stdout)?;
            return Ok(if code == i32::from(EXIT_CHANGES) {
                ExitCode::from(EXIT_CHANGES)
            } else {
                ExitCode::SUCCESS
            });
        }
        On::Local(t) => t,
    };
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
            ctx.out.report("records-apply", &outcome)?;
        } else {
            for aborted in &outcome.aborted {
                ctx.out.line(aborted.to_string());
            }
            ctx.out.plan(&outcome.plan);
            ctx.out.applied(&outcome.committed);
        }
    } else {
        let (_, plan) = records::plan_from_knot(&mut client, &values)?;
        if a.json {
            ctx.out.report("records-plan", &plan)?;
        } else {
            ctx.out.plan(&plan);
        }
        if a.exit_code && !plan.is_empty() {
            return Ok(ExitCode::from(EXIT_CHANGES));
        }
    }
    Ok(ExitCode::SUCCESS)
}
